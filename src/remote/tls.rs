//! https for remote-write: rustls's client side, with the server's own
//! trimmed ring provider (`crypto::provider`, TLS 1.3) and trust
//! anchors from a PEM file: `SOCKAGENT_REMOTE_WRITE_CA`, else
//! `SSL_CERT_FILE`, else the system's bundle (no roots crate linked).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where Debian, Ubuntu, Alpine and Arch keep the system's bundle.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The client config; an unreadable or empty bundle is one line naming it.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let (var, path) = match ca {
        Some(p) => ("SOCKAGENT_REMOTE_WRITE_CA", p.to_path_buf()),
        None => match std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            Some(p) => ("SSL_CERT_FILE", PathBuf::from(p)),
            None => ("the system's CA bundle", PathBuf::from(SYSTEM_BUNDLE)),
        },
    };
    let err = |what: &dyn std::fmt::Display| format!("{var} ({}): {what}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&path).map_err(|e| err(&e))? {
        // a bundle may hold a certificate webpki cannot take; skip it
        let _ = roots.add(c.map_err(|e| err(&e))?);
    }
    if roots.is_empty() {
        return Err(err(&"no certificate in it"));
    }
    let provider = Arc::new(crate::crypto::provider(true));
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
