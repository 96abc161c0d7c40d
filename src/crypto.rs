//! The TLS crypto provider both sides share (the server's wss:// and
//! remote-write's https client): ring's, trimmed to what the agent uses.
//! A leaf: it imports nothing of the crate.

use rustls::pki_types::PrivateKeyDer;
use std::sync::Arc;

/// ring's signature verifiers for client certificates, as rustls's ring
/// provider lists them (`SUPPORTED_SIG_ALGS`, private there): ECDSA
/// P-256/P-384, Ed25519, RSA PKCS#1 and PSS (2048-8192 bits).
static VERIFIERS: rustls::crypto::WebPkiSupportedAlgorithms = {
    use rustls::SignatureScheme as S;
    use webpki::ring as alg;
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                S::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                S::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (S::ED25519, &[alg::ED25519]),
            (
                S::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                S::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (S::RSA_PKCS1_SHA512, &[alg::RSA_PKCS1_2048_8192_SHA512]),
            (S::RSA_PKCS1_SHA384, &[alg::RSA_PKCS1_2048_8192_SHA384]),
            (S::RSA_PKCS1_SHA256, &[alg::RSA_PKCS1_2048_8192_SHA256]),
        ],
    }
};

/// ring's provider, less what this server never uses: no ChaCha20-Poly1305
/// (every TLS 1.3 client must offer TLS_AES_128_GCM_SHA256, RFC 8446 §9.1)
/// and, unless client certificates are asked for (`verify`), no signature
/// verification (it only verifies client certificates). Naming only what is
/// used lets the linker drop the rest (benches/README.md, "Binary size").
/// Keys are loaded as by the default provider: RSA, ECDSA (P-256, P-384)
/// and Ed25519; with `verify`, client certificates are checked with ring's
/// own set: ECDSA P-256/P-384, Ed25519, RSA PKCS#1 and PSS.
pub(crate) fn provider(verify: bool) -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    use rustls::crypto::{CryptoProvider, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms};
    #[derive(Debug)]
    struct Ring;
    impl SecureRandom for Ring {
        fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
                .map_err(|_| rustls::crypto::GetRandomFailed)
        }
    }
    impl KeyProvider for Ring {
        fn load_private_key(
            &self,
            key: PrivateKeyDer<'static>,
        ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
            rustls::crypto::ring::sign::any_supported_type(&key)
        }
    }
    let signature_verification_algorithms = if verify {
        VERIFIERS
    } else {
        WebPkiSupportedAlgorithms {
            all: &[],
            mapping: &[],
        }
    };
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms,
        secure_random: &Ring,
        key_provider: &Ring,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifiers_are_rustls_ring_set() {
        // The same schemes, in the same order, and as many algorithms as
        // rustls's ring provider has (a rustls upgrade that changes its
        // list shows up here).
        let theirs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let schemes = |a: &rustls::crypto::WebPkiSupportedAlgorithms| {
            a.mapping
                .iter()
                .map(|(s, v)| (*s, v.len()))
                .collect::<Vec<_>>()
        };
        assert_eq!(schemes(&VERIFIERS), schemes(&theirs));
        assert_eq!(VERIFIERS.all.len(), theirs.all.len());
        assert!(provider(false)
            .signature_verification_algorithms
            .all
            .is_empty());
        assert_eq!(
            provider(true).signature_verification_algorithms.all.len(),
            14
        );
    }
}
