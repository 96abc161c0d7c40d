//! From outside, as another site's page, a DNS-rebinding attacker and a
//! token guesser would try it: raw HTTP over real sockets against the
//! agent binary (issue 25).

mod common;

use common::{Agent, TempDir, TIMEOUT};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A TCP connection to the agent from loopback address `src` (bound
/// before connecting: 127.0.0.2 is a different client than 127.0.0.1).
fn connect_from(src: Ipv4Addr, port: u16) -> TcpStream {
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own, with valid
    // sockaddr_in values of the given length.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let s = TcpStream::from_raw_fd(fd);
        let a = sin(src, 0);
        let r = libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "bind {src}: {}", std::io::Error::last_os_error());
        let b = sin(Ipv4Addr::LOCALHOST, port);
        let r = libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        s
    }
}

/// Sends `req` from `src` and returns the response head (a 101 leaves the
/// connection open, so this reads up to the blank line only).
fn head_from(src: Ipv4Addr, port: u16, req: &str) -> String {
    let mut s = connect_from(src, port);
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the answer to {req:?}: {e}"),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn head(port: u16, req: &str) -> String {
    head_from(Ipv4Addr::LOCALHOST, port, req)
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

/// A WebSocket upgrade of `/ws{query}` with `Host` and more header lines.
fn upgrade(query: &str, host: &str, extra: &str) -> String {
    format!(
        "GET /ws{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

fn metrics(host: &str, extra: &str) -> String {
    format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n")
}

#[test]
fn other_sites_pages_cannot_open_the_websocket() {
    let agent = Agent::start(&["--allow-origin", "https://dash.example:8443"], &[]);
    let p = agent.port;
    let own = format!("127.0.0.1:{p}");
    let ws = |host: &str, origin: &str| {
        let o = if origin.is_empty() {
            String::new()
        } else {
            format!("Origin: {origin}\r\n")
        };
        status(&head(p, &upgrade("", host, &o)))
    };
    assert_eq!(ws(&own, "https://evil.example"), 403);
    assert_eq!(ws(&own, "null"), 403);
    let rebind = format!("rebind.evil.example:{p}");
    assert_eq!(ws(&rebind, &format!("http://rebind.evil.example:{p}")), 403);
    // the agent's own page, by address and by name
    assert_eq!(ws(&own, &format!("http://127.0.0.1:{p}")), 101);
    assert_eq!(
        ws(&format!("localhost:{p}"), &format!("http://localhost:{p}")),
        101
    );
    // the same names on another port are another site
    assert_eq!(ws(&own, &format!("http://localhost:{}", p ^ 1)), 403);
    assert_eq!(ws(&own, "https://dash.example:8443"), 101);
    // no Origin: the TUI, scripts
    assert_eq!(ws(&own, ""), 101);
    assert_eq!(ws("anything.example", ""), 101);
    // a browser that sends the rebinding Host without an Origin
    let r = head(p, &upgrade("", &rebind, "Sec-Fetch-Mode: websocket\r\n"));
    assert_eq!(status(&r), 403, "{r}");
    // every refusal said so, at info
    let log = agent.log();
    assert!(
        log.lines()
            .any(|l| l.contains("INFO ") && l.contains("refused: Origin")),
        "{log}"
    );
}

#[test]
fn the_token_opens_it_whatever_page_holds_it() {
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", "s3cret")]);
    let p = agent.port;
    let evil = "Origin: https://evil.example\r\nSec-Fetch-Mode: websocket\r\n";
    let host = format!("127.0.0.1:{p}");
    assert_eq!(
        status(&head(p, &upgrade("?token=s3cret", &host, evil))),
        101
    );
    let bearer = format!("{evil}Authorization: Bearer s3cret\r\n");
    assert_eq!(
        status(&head(p, &upgrade("", "rebind.evil.example", &bearer))),
        101
    );
    assert_eq!(status(&head(p, &upgrade("", &host, evil))), 401);
}

#[test]
fn browsers_read_metrics_only_under_the_agents_names() {
    let agent = Agent::start(&[], &[]);
    let p = agent.port;
    let fetch = "Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: cross-site\r\n";
    let rebind = format!("rebind.evil.example:{p}");
    let r = head(p, &metrics(&rebind, fetch));
    assert_eq!(status(&r), 403, "{r}");
    // Prometheus and curl send no Sec-Fetch-*: any Host, as before
    assert_eq!(status(&head(p, &metrics(&rebind, ""))), 200);
    assert_eq!(
        status(&head(p, &metrics(&format!("127.0.0.1:{p}"), fetch))),
        200
    );
    assert_eq!(
        status(&head(p, &metrics(&format!("localhost:{p}"), fetch))),
        200
    );
}

#[test]
fn the_page_may_connect_to_its_own_agent_only() {
    let agent = Agent::start(&[], &[]);
    let p = agent.port;
    let r = head(p, &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n"));
    assert_eq!(status(&r), 200, "{r}");
    let csp = r
        .lines()
        .find_map(|l| l.strip_prefix("Content-Security-Policy: "))
        .unwrap_or_else(|| panic!("no CSP in {r}"));
    let connect: Vec<&str> = csp
        .split(';')
        .find_map(|d| d.trim().strip_prefix("connect-src "))
        .unwrap_or_else(|| panic!("no connect-src in {csp}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        connect,
        [
            "'self'",
            &format!("ws://127.0.0.1:{p}"),
            &format!("wss://127.0.0.1:{p}")
        ],
        "{csp}"
    );
    assert!(!connect.contains(&"ws:") && !connect.contains(&"wss:"));
    // under a name that is not the agent's, nothing beyond 'self'
    let r = head(p, "GET / HTTP/1.1\r\nHost: rebind.evil.example\r\n\r\n");
    assert!(
        r.contains("connect-src 'self'; ") && !r.contains("rebind"),
        "{r}"
    );
}

#[test]
fn guessing_tokens_locks_out_one_address_only() {
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", "s3cret")]);
    let p = agent.port;
    let one = Ipv4Addr::LOCALHOST;
    let two = Ipv4Addr::new(127, 0, 0, 2);
    let host = format!("127.0.0.1:{p}");
    for i in 0..10 {
        let r = head_from(one, p, &upgrade(&format!("?token=guess{i}"), &host, ""));
        assert_eq!(status(&r), 401, "guess {i}: {r}");
    }
    let r = head_from(one, p, &upgrade("?token=guess10", &host, ""));
    assert_eq!(status(&r), 429, "{r}");
    assert!(r.contains("\r\nRetry-After: "), "{r}");
    // locked out on /metrics too, even with the right token
    let bearer = "Authorization: Bearer s3cret\r\n";
    assert_eq!(status(&head_from(one, p, &metrics(&host, bearer))), 429);
    assert_eq!(
        status(&head_from(one, p, &upgrade("?token=s3cret", &host, ""))),
        429
    );
    // another address is not
    assert_eq!(
        status(&head_from(two, p, &upgrade("?token=wrong", &host, ""))),
        401
    );
    assert_eq!(
        status(&head_from(two, p, &upgrade("?token=s3cret", &host, ""))),
        101
    );
    // the lockout passes (10 s): wait it out
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s = status(&head_from(one, p, &upgrade("?token=s3cret", &host, "")));
        if s == 101 {
            break;
        }
        assert_eq!(s, 429);
        assert!(Instant::now() < deadline, "still locked out");
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = agent.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN ") && l.contains("wrong tokens"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("127.0.0.1:"), "{}", warned[0]);
}

#[test]
fn refusals_are_logged_but_a_flood_is_not() {
    let agent = Agent::start(&[], &[]);
    let p = agent.port;
    let host = format!("127.0.0.1:{p}");
    let evil = upgrade("", &host, "Origin: https://evil.example\r\n");
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(status(&head(p, &evil)), 403);
    }
    let secs = started.elapsed().as_secs();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(status(&head(p, &evil)), 403);
    let deadline = Instant::now() + TIMEOUT;
    let lines = loop {
        let log = agent.log();
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.contains("refused:"))
            .map(String::from)
            .collect();
        if lines
            .iter()
            .any(|l| l.contains(" more refused since the last line)"))
            || Instant::now() > deadline
        {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // one line a second at most, and a count of the others
    assert!(lines.len() as u64 <= secs + 3, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" more refused since the last line)")),
        "{lines:#?}"
    );
    // what was refused, as parsed
    assert!(
        lines[0].contains("refused: Origin not this agent's nor allowed: https://evil.example:443"),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| l.contains("INFO ")), "{lines:#?}");
}

#[test]
fn a_client_ca_file_without_a_certificate_is_one_line_and_exit_2() {
    let dir = TempDir::new("security-ca");
    let empty = dir.0.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let junk = dir.0.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = dir.0.join("missing.pem");
    for f in [&empty, &junk, &missing] {
        let out = common::agent_command()
            .args(["--bind", "127.0.0.1", "--port", "0", "--enableSSL"])
            .arg("--client-ca")
            .arg(f)
            .env("XDG_CONFIG_HOME", &dir.0)
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{f:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{f:?}: {err}");
        assert!(
            err.starts_with("sockagent: ") && err.contains(f.to_str().unwrap()),
            "{err}"
        );
    }
    // and a bad --allow-origin, like every other bad value
    let out = common::agent_command()
        .args(["--port", "0", "--allow-origin", "evil.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--allow-origin"), "{err}");
}
