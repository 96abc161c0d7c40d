//! TLS: the certificate (load, generate, renew) and the rustls config. The
//! connections themselves are driven by the event loop (see `conn.rs`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the reference agent keeps its certificate, so a user switching
/// agents keeps the certificate their TUI pins:
/// `$XDG_CONFIG_HOME/socktop_agent/tls` or `~/.config/socktop_agent/tls`.
pub fn config_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    env("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("socktop_agent")
        .join("tls")
}

// --- A minimal DER walk to the certificate's notAfter -------------------

/// (tag, content, rest) of the DER element at the start of `b`.
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, b) = b.split_first()?;
    let (len, b) = if l0 < 0x80 {
        (usize::from(l0), b)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (lb, rest) = (b.get(..n)?, b.get(n..)?);
        (
            lb.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x)),
            rest,
        )
    };
    Some((tag, b.get(..len)?, b.get(len..)?))
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |a, &c| {
        c.is_ascii_digit().then(|| a * 10 + i64::from(c - b'0'))
    })
}

/// Days from 1970-01-01 to y-m-d (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) → epoch s.
fn asn1_time(tag: u8, v: &[u8]) -> Option<i64> {
    let (y, rest) = match tag {
        0x17 => {
            let yy = digits(v.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, v.get(2..)?)
        }
        0x18 => (digits(v.get(..4)?)?, v.get(4..)?),
        _ => return None,
    };
    let f = |i: usize| rest.get(i..i + 2).and_then(digits);
    let (mo, d, h, mi, s) = (f(0)?, f(2)?, f(4)?, f(6)?, f(8)?);
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// The certificate's notAfter, epoch seconds.
pub fn not_after(cert_der: &[u8]) -> Option<i64> {
    let (_, cert, _) = der(cert_der)?; // Certificate
    let (_, tbs, _) = der(cert)?; // TBSCertificate
    let mut rest = tbs;
    let (tag, _, r) = der(rest)?;
    if tag == 0xa0 {
        rest = r; // [0] version
    }
    let (_, _, rest) = der(rest)?; // serialNumber
    let (_, _, rest) = der(rest)?; // signature
    let (_, _, rest) = der(rest)?; // issuer
    let (_, validity, _) = der(rest)?;
    let (_, _, after) = der(validity)?; // skip notBefore
    let (tag, v, _) = der(after)?;
    asn1_time(tag, v)
}

// --- Certificates ---------------------------------------------------------

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn first_cert(path: &Path) -> Option<Vec<u8>> {
    CertificateDer::pem_file_iter(path)
        .ok()?
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// Makes sure a usable self-signed pair exists in `dir` and returns its
/// paths: an existing, unexpired pair is reused byte for byte; a missing or
/// expired one is (re)generated, key mode 0600 in a 0700 directory.
pub fn ensure_self_signed(
    dir: &Path,
    hostname: &str,
    extra_sans: &str,
) -> Result<(PathBuf, PathBuf), String> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        match first_cert(&cert).and_then(|d| not_after(&d)) {
            Some(t) if t > now_epoch() => {
                tighten(&key);
                return Ok((cert, key));
            }
            Some(_) => log::warn!(
                "the certificate {} has expired; generating a new one",
                cert.display()
            ),
            None => log::warn!(
                "cannot read the certificate {}; generating a new one",
                cert.display()
            ),
        }
    }
    generate(dir, &cert, &key, hostname, extra_sans)?;
    Ok((cert, key))
}

fn tighten(key: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = fs::metadata(key) {
        if m.permissions().mode() & 0o077 != 0 {
            let _ = fs::set_permissions(key, fs::Permissions::from_mode(0o600));
        }
    }
}

fn generate(
    dir: &Path,
    cert: &Path,
    key: &Path,
    hostname: &str,
    extra: &str,
) -> Result<(), String> {
    use super::cert::{self as x509, San};
    use ring::rand::SecureRandom as _;
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING as ALG};
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let err = |what: &str, e: &dyn std::fmt::Display| format!("TLS certificate: {what}: {e}");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(&format!("cannot create {}", dir.display()), &e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let mut sans = Vec::new();
    for n in [hostname, "localhost"] {
        if x509::valid_dns(n) && !sans.contains(&San::Dns(n.to_string())) {
            sans.push(San::Dns(n.to_string()));
        }
    }
    sans.push(San::Ip(IpAddr::from([127, 0, 0, 1])));
    sans.push(San::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)));
    for s in extra.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match s.parse::<IpAddr>() {
            Ok(ip) => sans.push(San::Ip(ip)),
            Err(_) if x509::valid_dns(s) => sans.push(San::Dns(s.to_string())),
            Err(_) => log::warn!("SOCKTOP_AGENT_EXTRA_SANS: ignoring invalid name {s:?}"),
        }
    }
    let rng = ring::rand::SystemRandom::new();
    let fail = |what: &str| err(what, &"the system's random source or ring failed");
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &rng).map_err(|_| fail("key generation"))?;
    let kp =
        EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &rng).map_err(|_| fail("key generation"))?;
    let mut serial = [0u8; 20];
    rng.fill(&mut serial).map_err(|_| fail("serial number"))?;
    // Positive, 20 bytes, minimal DER.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    // Valid from yesterday (clock skew) for 397 days, as the reference.
    let day = now_epoch().div_euclid(86_400);
    let tbs = x509::tbs(
        &serial,
        hostname,
        &sans,
        day - 1,
        day + 397,
        kp.public_key().as_ref(),
    );
    let sig = kp.sign(&rng, &tbs).map_err(|_| fail("signing"))?;
    let der = x509::certificate(&tbs, sig.as_ref());
    let mut kf = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key)
        .map_err(|e| err(&format!("cannot write {}", key.display()), &e))?;
    let _ = fs::set_permissions(key, fs::Permissions::from_mode(0o600));
    kf.write_all(x509::pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
        .map_err(|e| err("writing the key", &e))?;
    fs::write(cert, x509::pem("CERTIFICATE", &der))
        .map_err(|e| err(&format!("cannot write {}", cert.display()), &e))?;
    log::info!(
        "generated a self-signed TLS certificate at {} (key {})",
        cert.display(),
        key.display()
    );
    Ok(())
}

/// The rustls server config for a PEM chain and key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read key {}: {e}", key.display()))?;
    let provider = Arc::new(provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS: certificate and key do not fit together: {e}"))?;
    Ok(Arc::new(cfg))
}

/// ring's provider, less what a server without client certificates never
/// uses: no signature verification (it only verifies client certificates)
/// and no ChaCha20-Poly1305 (every TLS 1.3 client must offer
/// TLS_AES_128_GCM_SHA256, RFC 8446 §9.1). Naming only what is used lets the
/// linker drop the rest: 80 KB of the binary (benches/README.md, "Binary
/// size"). Keys are loaded as by the default provider: RSA, ECDSA (P-256,
/// P-384) and Ed25519.
fn provider() -> rustls::crypto::CryptoProvider {
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
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: WebPkiSupportedAlgorithms {
            all: &[],
            mapping: &[],
        },
        secure_random: &Ring,
        key_provider: &Ring,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(asn1_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(0x18, b"20500101000000Z"), Some(2_524_608_000));
        assert_eq!(asn1_time(0x17, b"x"), None);
        for d in [-1000i64, 0, 11_017, 20_000, 30_000] {
            let (y, m, dd) = crate::collect::journal::civil_from_days(d);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(dd)), d);
        }
    }

    #[test]
    fn generate_reuse_and_renew() {
        let dir = std::env::temp_dir().join(format!("sockagent-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (cert, key) = ensure_self_signed(&dir, "testhost", "10.0.0.9, example.lan").unwrap();
        let der = first_cert(&cert).unwrap();
        let after = not_after(&der).unwrap();
        assert!(after > now_epoch() + 390 * 86_400 && after < now_epoch() + 400 * 86_400);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let before = fs::read(&cert).unwrap();
        ensure_self_signed(&dir, "testhost", "").unwrap();
        assert_eq!(
            fs::read(&cert).unwrap(),
            before,
            "an unexpired pair is reused as is"
        );
        assert!(server_config(&cert, &key).is_ok());
        // The signature verifies with the key's public half, over the TBS
        // bytes as they stand in the certificate.
        let cert_der = &der;
        let der = super::der;
        let (_, body, _) = der(cert_der).unwrap();
        let (_, tbs_body, rest) = der(body).unwrap();
        let tbs = &body[..body.len() - rest.len()];
        assert!(tbs.len() > tbs_body.len());
        let (_, _, rest) = der(rest).unwrap(); // signatureAlgorithm
        let (tag, bits, _) = der(rest).unwrap();
        assert_eq!((tag, bits[0]), (0x03, 0));
        let pkcs8 = PrivateKeyDer::from_pem_file(&key).unwrap();
        use ring::signature::{self as sig, KeyPair};
        let kp = sig::EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.secret_der(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_ASN1, kp.public_key().as_ref())
            .verify(tbs, &bits[1..])
            .expect("the self-signature verifies");
        // Every name asked for is in the subjectAltName, IPs as 4 or 16 bytes.
        for want in [
            &b"\x82\x08testhost"[..],
            b"\x82\x09localhost",
            b"\x87\x04\x7f\0\0\x01",
            b"\x87\x04\x0a\0\0\x09",
            b"\x82\x0bexample.lan",
        ] {
            assert!(cert_der.windows(want.len()).any(|w| w == want), "{want:?}");
        }
        assert!(not_after(b"\x30\x03\x02\x01\x00").is_none());
        assert!(not_after(b"").is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
