//! wss:// with the real connector pinning the agent's certificate.
#![cfg(feature = "tls")]

mod common;
use common::Agent;
use socktop_connector::{AgentRequest, AgentResponse};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sockagent-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(xdg: &std::path::Path, env: &[(&str, &str)]) -> Agent {
    let mut e = vec![("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
    e.extend_from_slice(env);
    Agent::start(&["--enableSSL"], &e)
}

fn wss(agent: &Agent) -> String {
    format!("wss://127.0.0.1:{}/ws", agent.port)
}

#[tokio::test(flavor = "current_thread")]
async fn connector_pins_the_generated_certificate() {
    let xdg = tempdir("tls-pin");
    let cert = xdg.join("socktop_agent/tls/cert.pem");
    let first = {
        let agent = start(&xdg, &[]);
        assert!(cert.exists());
        let mut c = socktop_connector::connect_to_socktop_agent_with_tls(
            wss(&agent),
            cert.to_str().unwrap(),
            false,
        )
        .await
        .expect("TLS connect pinning the cert");
        let AgentResponse::Metrics(m) = c.request(AgentRequest::Metrics).await.unwrap() else {
            panic!()
        };
        assert!(m.mem_total > 0);
        let AgentResponse::Disks(d) = c.request(AgentRequest::Disks).await.unwrap() else {
            panic!()
        };
        assert!(!d.is_empty());
        let AgentResponse::Processes(p) = c.request(AgentRequest::Processes).await.unwrap() else {
            panic!()
        };
        assert!(p.top_processes.iter().any(|r| r.pid == std::process::id()));
        std::fs::read(&cert).unwrap()
    };
    use std::os::unix::fs::PermissionsExt;
    let key = xdg.join("socktop_agent/tls/key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A restart reuses the pair unchanged, so the pinned TUI keeps working.
    let agent = start(&xdg, &[]);
    assert_eq!(std::fs::read(&cert).unwrap(), first);
    let mut c = socktop_connector::connect_to_socktop_agent_with_tls(
        wss(&agent),
        cert.to_str().unwrap(),
        false,
    )
    .await
    .expect("reconnect after restart");
    assert!(c.request(AgentRequest::Metrics).await.is_ok());
    std::fs::remove_dir_all(&xdg).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn an_expired_certificate_is_replaced() {
    let xdg = tempdir("tls-expired");
    let dir = xdg.join("socktop_agent/tls");
    std::fs::create_dir_all(&dir).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let kp = rcgen::KeyPair::generate().unwrap();
    let old = params.self_signed(&kp).unwrap().pem();
    std::fs::write(dir.join("cert.pem"), &old).unwrap();
    std::fs::write(dir.join("key.pem"), kp.serialize_pem()).unwrap();
    let agent = start(&xdg, &[]);
    let new = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    assert_ne!(new, old, "the expired certificate must be replaced");
    let cert = dir.join("cert.pem");
    let mut c = socktop_connector::connect_to_socktop_agent_with_tls(
        wss(&agent),
        cert.to_str().unwrap(),
        false,
    )
    .await
    .expect("connect with the renewed cert");
    assert!(c.request(AgentRequest::Metrics).await.is_ok());
    assert!(agent.log().contains("expired"));
    std::fs::remove_dir_all(&xdg).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_token_over_tls_is_refused_before_upgrade() {
    let xdg = tempdir("tls-token");
    let agent = start(&xdg, &[("SOCKTOP_TOKEN", "t0k")]);
    let cert = xdg.join("socktop_agent/tls/cert.pem");
    let url = format!("{}?token=bad", wss(&agent));
    let r =
        socktop_connector::connect_to_socktop_agent_with_tls(url, cert.to_str().unwrap(), false)
            .await;
    assert!(r.is_err());
    let err = r.err().unwrap().to_string();
    assert!(err.contains("401"), "{err}");
    let url = format!("{}?token=t0k", wss(&agent));
    let mut c =
        socktop_connector::connect_to_socktop_agent_with_tls(url, cert.to_str().unwrap(), false)
            .await
            .unwrap();
    assert!(c.request(AgentRequest::Metrics).await.is_ok());
    std::fs::remove_dir_all(&xdg).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn stalled_and_plaintext_clients_are_dropped_others_served() {
    let xdg = tempdir("tls-stall");
    let agent = start(&xdg, &[("SOCKAGENT_HANDSHAKE_TIMEOUT_MS", "500")]);
    let cert = xdg.join("socktop_agent/tls/cert.pem");
    // 3 bytes of a TLS record header, then nothing.
    let mut stalled = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    // Plain HTTP on the TLS port.
    let mut plain = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // Meanwhile a real client is served.
    let mut c = socktop_connector::connect_to_socktop_agent_with_tls(
        wss(&agent),
        cert.to_str().unwrap(),
        false,
    )
    .await
    .unwrap();
    assert!(c.request(AgentRequest::Metrics).await.is_ok());
    // The stalled one is dropped after the handshake deadline.
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 64];
    let n = stalled.read(&mut b);
    let dropped = matches!(&n, Ok(0))
        || matches!(&n, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(dropped, "{n:?}");
    assert!(c.request(AgentRequest::Metrics).await.is_ok());
    std::fs::remove_dir_all(&xdg).unwrap();
}

/// Accepts any server certificate: this test is about timing, and the
/// pinning tests above check the certificate.
#[derive(Debug)]
struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS 1.3 client that takes any server certificate (the agent's own,
/// generated or given).
fn any_cert_client() -> std::sync::Arc<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
    )
}

/// One wss:// upgrade whose request is written into the TLS session
/// before the handshake ends, so the client's Finished and the request go
/// out in one flight; returns how long the 101 took.
fn upgrade_in_one_flight(
    port: u16,
    cfg: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<Duration, String> {
    let t0 = std::time::Instant::now();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
    // Buffered until the handshake completes, then sent right behind Finished.
    tls.writer()
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    loop {
        while tls.wants_write() {
            tls.write_tls(&mut sock).map_err(|e| e.to_string())?;
        }
        let mut buf = [0u8; 4096];
        match tls.reader().read(&mut buf) {
            Ok(0) => return Err("closed before the 101".into()),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&got);
                    return if head.starts_with("HTTP/1.1 101") {
                        Ok(t0.elapsed())
                    } else {
                        Err(format!("not a 101: {head}"))
                    };
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
        match tls.read_tls(&mut sock) {
            Ok(0) => return Err("closed before the 101".into()),
            Ok(_) => {
                tls.process_new_packets().map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(format!("no answer after {:?}: {e}", t0.elapsed())),
        }
    }
}

/// Issue 16, item 0: bytes already inside the TLS session when the
/// socket's readiness edge has passed must still be read. 2 000 wss://
/// connections in a row, each sending its upgrade in the same flight as
/// the end of the handshake, every one answered in under a second.
#[test]
fn two_thousand_wss_upgrades_in_one_flight_are_all_answered_at_once() {
    let xdg = tempdir("tls-flight");
    let agent = Agent::start(
        &["--enableSSL"],
        &[
            ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
            ("RUST_LOG", "info"),
        ],
    );
    let cfg = any_cert_client();
    let n: usize = std::env::var("SOCKAGENT_WSS_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut slowest = Duration::ZERO;
    let mut slow = Vec::new();
    for i in 0..n {
        match upgrade_in_one_flight(agent.port, &cfg) {
            Ok(d) => {
                slowest = slowest.max(d);
                if d >= Duration::from_secs(1) {
                    slow.push((i, d));
                }
            }
            Err(e) => panic!("connection {i}: {e}\n{}", agent.log()),
        }
    }
    eprintln!("{n} wss:// upgrades, slowest {slowest:?}");
    assert!(slow.is_empty(), "answered after 1 s or more: {slow:?}");
    std::fs::remove_dir_all(&xdg).unwrap();
}

/// A client socket whose receive window and segment size are small (set
/// before connecting, so the agent's side of the connection sizes its
/// send buffer from them too): a large handshake flight then cannot be
/// written whole at once.
fn small_window_socket(port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let int = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a fresh socket owned here until `from_raw_fd` takes it; the
    // option values and the address outlive the calls that read them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        for (level, opt, v) in [
            (libc::SOL_SOCKET, libc::SO_RCVBUF, 1024),
            (libc::IPPROTO_TCP, libc::TCP_MAXSEG, 536),
        ] {
            let v: libc::c_int = v;
            let r = libc::setsockopt(fd, level, opt, (&v as *const libc::c_int).cast(), int);
            assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
        }
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// Issue 16, item 0: the agent's handshake flight (here a 50 KB
/// certificate) meets a client that reads slowly through a small window,
/// so the agent's socket fills while writing it. The rest must still go
/// out when the socket drains: the connection is then still reading its
/// request head, and the writable edge that follows only reaches the TLS
/// read, which must flush what is left (before the fix it did not, and
/// the client waited for the rest of the flight until the handshake
/// deadline dropped it, logged as "deadline passed, dropping").
#[test]
fn a_handshake_flight_larger_than_the_clients_window_is_sent_whole() {
    let dir = tempdir("tls-window");
    let mut names = vec!["localhost".to_string()];
    names.extend(
        (0..700).map(|i| {
            format!("host-{i:04}.a-rather-long-name-to-make-the-certificate-large.example")
        }),
    );
    let params = rcgen::CertificateParams::new(names).unwrap();
    let kp = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&kp).unwrap();
    assert!(cert.der().len() > 40_000, "{}", cert.der().len());
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, kp.serialize_pem()).unwrap();
    let agent = Agent::start(
        &[
            "--cert",
            cert_path.to_str().unwrap(),
            "--key",
            key_path.to_str().unwrap(),
        ],
        &[("SOCKAGENT_HANDSHAKE_TIMEOUT_MS", "20000")],
    );
    let cfg = any_cert_client();
    for i in 0..3 {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
        let mut sock = small_window_socket(agent.port);
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        while tls.wants_write() {
            tls.write_tls(&mut sock).unwrap();
        }
        // Not reading yet: the agent's flight fills our window and then
        // its own send buffer.
        std::thread::sleep(Duration::from_millis(300));
        let t0 = std::time::Instant::now();
        while tls.is_handshaking() {
            match tls.read_tls(&mut sock) {
                Ok(0) => panic!(
                    "connection {i}: closed during the handshake\n{}",
                    agent.log()
                ),
                Ok(_) => {
                    tls.process_new_packets().unwrap();
                }
                Err(e) => panic!(
                    "connection {i}: the rest of the handshake flight never came \
                     ({e} after {:?})\n{}",
                    t0.elapsed(),
                    agent.log()
                ),
            }
            // Nothing is written until the agent's flight is all here, as
            // OpenSSL (Python's ssl) does: rustls would send its
            // compatibility ChangeCipherSpec right after the ServerHello,
            // and that readable edge would hide the missing flush.
        }
        tls.writer()
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        while tls.wants_write() {
            tls.write_tls(&mut sock).unwrap();
        }
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 4096];
            match tls.reader().read(&mut buf) {
                Ok(0) => panic!("connection {i}: closed before the 101"),
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("connection {i}: {e}"),
            }
            match tls.read_tls(&mut sock) {
                Ok(0) => panic!("connection {i}: closed before the 101"),
                Ok(_) => {
                    tls.process_new_packets().unwrap();
                }
                Err(e) => panic!("connection {i}: no 101 ({e})\n{}", agent.log()),
            }
        }
        assert!(
            got.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
