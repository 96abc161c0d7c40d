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
