//! Client certificates (`--client-ca`): certificates made here with rcgen,
//! a rustls client over a blocking socket, tungstenite over that, and
//! Debian's curl.
#![cfg(feature = "tls")]

mod common;
use common::{tool, Agent, TIMEOUT};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use tungstenite::Message;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A CA, the server's certificate and a client's, both signed by it, and
/// a second CA with its own client: files in a fresh directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let dir = std::env::temp_dir().join(format!("sockagent-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.join(name), pem).unwrap();
        let make_ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let kp = KeyPair::generate().unwrap();
            let cert = p.self_signed(&kp).unwrap();
            (cert.pem(), Issuer::new(p, kp))
        };
        let leaf = |issuer: &Issuer<KeyPair>, sans: &[&str], cn: &str, eku| {
            let mut p =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![eku];
            let kp = KeyPair::generate().unwrap();
            let cert = p.signed_by(&kp, issuer).unwrap();
            (cert.pem(), kp.serialize_pem())
        };
        let (ca_pem, ca) = make_ca("sockagent test CA");
        write("ca.pem", ca_pem);
        let (c, k) = leaf(
            &ca,
            &["127.0.0.1", "localhost"],
            "sockagent",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write("server.pem", c);
        write("server.key", k);
        let (c, k) = leaf(&ca, &[], "good client", ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", c);
        write("client.key", k);
        // Another key type the verifiers must know.
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "ed25519 client");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        write("ed25519.pem", p.signed_by(&kp, &ca).unwrap().pem());
        write("ed25519.key", kp.serialize_pem());
        let (other_pem, other) = make_ca("another CA");
        write("other-ca.pem", other_pem);
        let (c, k) = leaf(&other, &[], "stranger", ExtendedKeyUsagePurpose::ClientAuth);
        write("stranger.pem", c);
        write("stranger.key", k);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    /// The agent with the server certificate and `--client-ca ca.pem`.
    fn agent(&self, env: &[(&str, &str)]) -> Agent {
        let mut e = vec![("XDG_CONFIG_HOME", self.dir.to_str().unwrap())];
        e.extend_from_slice(env);
        Agent::start(
            &[
                "--cert",
                &self.s("server.pem"),
                "--key",
                &self.s("server.key"),
                "--client-ca",
                &self.s("ca.pem"),
            ],
            &e,
        )
    }

    /// A client trusting the test CA, presenting `client` (`"client"`,
    /// `"stranger"`) or no certificate.
    fn client(&self, client: Option<&str>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.path("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let cfg = match client {
            None => b.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            }
        };
        Arc::new(cfg)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS connection to the agent with the client side of the handshake
/// done (in TLS 1.3 the client is done before the server has checked its
/// certificate: a refusal comes as an alert on the first read).
fn connect(agent: &Agent, cfg: Arc<rustls::ClientConfig>) -> Tls {
    let sock = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = rustls::StreamOwned::new(rustls::ClientConnection::new(cfg, name).unwrap(), sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("client handshake");
    }
    s
}

/// Sends `request` and reads until the connection ends: the bytes that
/// came back and the error that ended it (`None`: a clean close_notify).
fn exchange(
    agent: &Agent,
    cfg: Arc<rustls::ClientConfig>,
    request: &str,
) -> (Vec<u8>, Option<io::Error>) {
    let mut s = connect(agent, cfg);
    // A refused client may find the socket closed under its write.
    let _ = s.write_all(request.as_bytes()).and_then(|()| s.flush());
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (out, Some(e)),
        }
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n")
}

/// The handshake failed: nothing came back and the read ended in an error
/// (the alert, or a reset when the close overtook it).
fn assert_refused(what: &str, (bytes, err): (Vec<u8>, Option<io::Error>)) {
    assert!(
        bytes.is_empty(),
        "{what}: got bytes back: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let e = err.unwrap_or_else(|| panic!("{what}: closed cleanly, expected a handshake error"));
    let msg = e.to_string();
    assert!(
        msg.contains("alert") || e.kind() == io::ErrorKind::ConnectionReset,
        "{what}: {e:?}"
    );
}

fn ws_refused(what: &str, agent: &Agent, cfg: Arc<rustls::ClientConfig>) {
    let s = connect(agent, cfg);
    let url = format!("wss://127.0.0.1:{}/ws", agent.port);
    match tungstenite::client::client(url, s) {
        Ok(_) => panic!("{what}: the WebSocket was upgraded"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("alert") || msg.contains("reset") || msg.contains("onnection"),
                "{what}: {msg}"
            );
            assert!(!msg.contains("HTTP"), "{what}: an HTTP answer came: {msg}");
        }
    }
}

fn ws_metrics(agent: &Agent, cfg: Arc<rustls::ClientConfig>, query: &str) {
    let s = connect(agent, cfg);
    let url = format!("wss://127.0.0.1:{}/ws{query}", agent.port);
    let (mut ws, resp) = tungstenite::client::client(url, s).expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("get_metrics")).unwrap();
    let m = loop {
        match ws.read() {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            Ok(m) => break m,
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("answer: {e}"),
        }
    };
    let v = common::json(&m);
    assert!(v["mem_total"].as_u64().unwrap() > 0, "{v}");
}

fn refusals_logged(agent: &Agent, n: usize) -> String {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let log = agent.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("refused at the TLS handshake"))
            .collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines.join("\n");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn only_clients_signed_by_the_ca_get_past_the_handshake() {
    let pki = Pki::new("mtls");
    let agent = pki.agent(&[]);
    // No certificate, then one from another CA: refused at the handshake
    // on /metrics and /ws alike.
    for (who, cfg) in [
        ("no certificate", pki.client(None)),
        ("the other CA's certificate", pki.client(Some("stranger"))),
    ] {
        assert_refused(
            &format!("{who}, /metrics"),
            exchange(&agent, cfg.clone(), &get("/metrics", "")),
        );
        assert_refused(
            &format!("{who}, /healthz"),
            exchange(&agent, cfg.clone(), &get("/healthz", "")),
        );
        ws_refused(&format!("{who}, /ws"), &agent, cfg);
    }
    // One debug line per refusal, naming the peer and why.
    let log = refusals_logged(&agent, 6);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 6, "{log}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("no certificates"))
            .count(),
        3,
        "{log}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("UnknownIssuer")).count(),
        3,
        "{log}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("DEBUG") && l.contains("127.0.0.1:")),
        "{log}"
    );
    // The good client is served: the WebSocket and /metrics.
    let good = pki.client(Some("client"));
    ws_metrics(&agent, good.clone(), "");
    ws_metrics(&agent, pki.client(Some("ed25519")), "");
    let (bytes, _) = exchange(&agent, good, &get("/metrics", ""));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("# TYPE "), "{text}");
}

#[test]
fn curl_with_and_without_a_client_certificate() {
    let curl = tool("curl", "curl");
    let pki = Pki::new("mtls-curl");
    let agent = pki.agent(&[]);
    let url = format!("https://127.0.0.1:{}/metrics", agent.port);
    let out = Command::new(&curl)
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(pki.path("ca.pem"))
        .arg("--cert")
        .arg(pki.path("client.pem"))
        .arg("--key")
        .arg(pki.path("client.key"))
        .arg(&url)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.trim_end().ends_with("\n200"), "{body}");
    assert!(body.contains("# TYPE "), "{body}");
    let out = Command::new(&curl)
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(pki.path("ca.pem"))
        .arg(&url)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "curl without --cert: {body}");
    assert!(!body.contains("# TYPE "), "{body}");
    assert!(refusals_logged(&agent, 1).contains("no certificates"));
}

#[test]
fn the_token_is_still_required_with_a_good_certificate() {
    let pki = Pki::new("mtls-token");
    let agent = pki.agent(&[("SOCKTOP_TOKEN", "t0k")]);
    let good = pki.client(Some("client"));
    let (bytes, _) = exchange(&agent, good.clone(), &get("/metrics", ""));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    let (bytes, _) = exchange(
        &agent,
        good.clone(),
        &get("/metrics", "Authorization: Bearer t0k\r\n"),
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    ws_metrics(&agent, good, "?token=t0k");
    // The token alone does not get a client without a certificate in.
    assert_refused(
        "the token, no certificate",
        exchange(
            &agent,
            pki.client(None),
            &get("/metrics", "Authorization: Bearer t0k\r\n"),
        ),
    );
}

#[test]
fn startup_errors_are_one_line() {
    let pki = Pki::new("mtls-errors");
    let run = |args: &[&str]| {
        let out = common::agent_command()
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("XDG_CONFIG_HOME", &pki.dir)
            .env_remove("SOCKAGENT_CLIENT_CA")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("sockagent: "))
            .collect();
        assert_eq!(lines.len(), 1, "{err}");
        lines[0].to_string()
    };
    assert_eq!(
        run(&["--client-ca", &pki.s("ca.pem")]),
        "sockagent: --client-ca needs TLS (--enableSSL)"
    );
    let missing = pki.s("missing.pem");
    let e = run(&["--enableSSL", "--client-ca", &missing]);
    assert!(e.contains(&missing), "{e}");
    let empty = pki.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = run(&["--enableSSL", "--client-ca", empty.to_str().unwrap()]);
    assert!(
        e.contains(empty.to_str().unwrap()) && e.contains("no certificate"),
        "{e}"
    );
    // A key is not a CA certificate either.
    let e = run(&["--enableSSL", "--client-ca", &pki.s("client.key")]);
    assert!(e.contains("client.key"), "{e}");
}
