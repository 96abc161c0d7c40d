//! TLS: the certificate (load, generate with rcgen, renew when x509-cert
//! reads it expired) and the rustls config. The connections themselves are
//! driven by the event loop (see `conn.rs`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The certificate's notAfter, epoch seconds (x509-cert's DER decoding);
/// `None` for what is not one certificate.
pub fn not_after(cert_der: &[u8]) -> Option<i64> {
    use x509_cert::der::Decode as _;
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let t = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration();
    i64::try_from(t.as_secs()).ok()
}

/// True for a name a dNSName (an IA5String) can hold and a client can
/// match: printable ASCII, no spaces, not empty.
pub fn valid_dns(name: &str) -> bool {
    !name.is_empty() && name.len() < 254 && name.bytes().all(|b| b.is_ascii_graphic())
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

fn cert_err(what: &str, e: &dyn std::fmt::Display) -> String {
    format!("TLS certificate: {what}: {e}")
}

/// Generates a self-signed pair: ECDSA P-256 with SHA-256, the key as
/// PKCS#8 in mode 0600, in `dir` made mode 0700.
fn generate(
    dir: &Path,
    cert: &Path,
    key: &Path,
    hostname: &str,
    extra: &str,
) -> Result<(), String> {
    use rcgen::KeyPair;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| cert_err(&format!("cannot create {}", dir.display()), &e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let params = cert_params(hostname, subject_alt_names(hostname, extra))?;
    let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| cert_err("key generation", &e))?;
    let signed = params
        .self_signed(&kp)
        .map_err(|e| cert_err("signing", &e))?;
    let mut kf = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key)
        .map_err(|e| cert_err(&format!("cannot write {}", key.display()), &e))?;
    let _ = fs::set_permissions(key, fs::Permissions::from_mode(0o600));
    kf.write_all(kp.serialize_pem().as_bytes())
        .map_err(|e| cert_err("writing the key", &e))?;
    fs::write(cert, signed.pem())
        .map_err(|e| cert_err(&format!("cannot write {}", cert.display()), &e))?;
    log::info!(
        "generated a self-signed TLS certificate at {} (key {})",
        cert.display(),
        key.display()
    );
    Ok(())
}

/// The names a generated certificate holds: the host name, localhost, the
/// loopback addresses, then each valid name or address of `extra`
/// (`SOCKTOP_AGENT_EXTRA_SANS`, comma-separated).
fn subject_alt_names(hostname: &str, extra: &str) -> Vec<rcgen::SanType> {
    use rcgen::SanType;
    let dns = |n: &str| {
        valid_dns(n)
            .then(|| n.to_string().try_into().ok())
            .flatten()
            .map(SanType::DnsName)
    };
    let mut sans = Vec::new();
    for n in [hostname, "localhost"] {
        if let Some(san) = dns(n).filter(|s| !sans.contains(s)) {
            sans.push(san);
        }
    }
    sans.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    sans.push(SanType::IpAddress(IpAddr::from(
        std::net::Ipv6Addr::LOCALHOST,
    )));
    for s in extra.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match (s.parse::<IpAddr>(), dns(s)) {
            (Ok(ip), _) => sans.push(SanType::IpAddress(ip)),
            (Err(_), Some(san)) => sans.push(san),
            (Err(_), None) => log::warn!("SOCKTOP_AGENT_EXTRA_SANS: ignoring invalid name {s:?}"),
        }
    }
    sans
}

/// The subject, a random serial and the validity period of a new
/// certificate for `hostname`.
fn cert_params(
    hostname: &str,
    sans: Vec<rcgen::SanType>,
) -> Result<rcgen::CertificateParams, String> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, SerialNumber};
    use ring::rand::SecureRandom as _;
    let mut serial = [0u8; 20];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| cert_err("serial number", &"the system's random source failed"))?;
    // Positive, 20 bytes, minimal DER.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    // Valid from yesterday (clock skew) for 397 days, as the reference,
    // midnight to midnight UTC.
    let day = now_epoch().div_euclid(86_400);
    let midnight = |d: i64| {
        time::OffsetDateTime::from_unix_timestamp(d * 86_400)
            .map_err(|e| cert_err("the validity period", &e))
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, hostname);
    params.subject_alt_names = sans;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = midnight(day - 1)?;
    params.not_after = midnight(day + 397)?;
    Ok(params)
}

/// The rustls server config for a PEM chain and key; with `client_ca`,
/// clients must present a certificate signed by one of its CAs, and the
/// others fail the handshake.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read key {}: {e}", key.display()))?;
    let provider = Arc::new(crate::crypto::provider(client_ca.is_some()));
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(client_roots(ca)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("client CA file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS: certificate and key do not fit together: {e}"))?;
    // No resumption: no TLS 1.3 tickets and no session cache. A ticket
    // sent right after the handshake lost the upgrade request of a client
    // that reads on one thread while it writes on another (Python's
    // `websockets` sync client, issue 25), and resumption buys nothing
    // here: the agent keeps no ticket key across restarts.
    cfg.send_tls13_tickets = 0;
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(cfg))
}

/// Every certificate in the PEM file `path`, as trust anchors for client
/// certificates; an unreadable file, a bad certificate or none at all is an
/// error naming the file.
pub fn client_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let err = |what: &dyn std::fmt::Display| format!("client CA file {}: {what}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(&e))?;
    if certs.is_empty() {
        return Err(err(&"no certificate in it"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| err(&e))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_reads_both_time_forms() {
        // rcgen writes UTCTime through 2049, GeneralizedTime after.
        for ((y, m, d), want) in [
            ((2049, 12, 31), 2_524_521_600i64),
            ((2050, 1, 1), 2_524_608_000),
        ] {
            let mut p = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
            p.not_after = rcgen::date_time_ymd(y, m, d);
            let kp = rcgen::KeyPair::generate().unwrap();
            let c = p.self_signed(&kp).unwrap();
            assert_eq!(not_after(c.der()), Some(want), "{y}");
        }
    }

    #[test]
    fn names_a_dns_san_can_hold() {
        assert!(valid_dns("host-1.lan"));
        assert!(!valid_dns(""));
        assert!(!valid_dns("a b"));
        assert!(!valid_dns("hôte"));
        assert!(!valid_dns(&"a".repeat(254)));
    }

    #[test]
    fn generate_reuse_and_renew() {
        let dir = std::env::temp_dir().join(format!("sockagent-tls-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (cert, key) = ensure_self_signed(&dir, "testhost", "10.0.0.9, example.lan").unwrap();
        let der = first_cert(&cert).unwrap();
        let after = not_after(&der).unwrap();
        assert!(after > now_epoch() + 390 * 86_400 && after < now_epoch() + 400 * 86_400);
        assert_eq!(after % 86_400, 0, "midnight UTC");
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
        assert!(server_config(&cert, &key, None).is_ok());
        // The certificate is its own CA: a client CA file of one.
        assert!(server_config(&cert, &key, Some(&cert)).is_ok());
        assert_eq!(client_roots(&cert).unwrap().len(), 1);
        let e = client_roots(&key).unwrap_err();
        assert!(
            e.contains(&*key.to_string_lossy()) && e.contains("no certificate"),
            "{e}"
        );
        let missing = dir.join("missing.pem");
        let e = server_config(&cert, &key, Some(&missing)).unwrap_err();
        assert!(e.contains(&*missing.to_string_lossy()), "{e}");
        assert!(!e.contains('\n'), "{e}");
        // The signature verifies with the key's public half, over the TBS
        // bytes as they stand in the certificate; CN is the host name.
        use x509_cert::der::{Decode, Encode};
        let cert_der = &der;
        let parsed = x509_cert::Certificate::from_der(cert_der).unwrap();
        let tbs = parsed.tbs_certificate().to_der().unwrap();
        assert!(cert_der.windows(tbs.len()).any(|w| w == &tbs[..]));
        assert_eq!(
            parsed.tbs_certificate().subject().to_string(),
            "CN=testhost"
        );
        assert_eq!(
            parsed.tbs_certificate().serial_number().as_bytes().len(),
            20
        );
        let pkcs8 = PrivateKeyDer::from_pem_file(&key).unwrap();
        use ring::signature::{self as sig, KeyPair};
        let kp = sig::EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.secret_der(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_ASN1, kp.public_key().as_ref())
            .verify(&tbs, parsed.signature().raw_bytes())
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
