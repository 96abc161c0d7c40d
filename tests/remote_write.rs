//! `--remote-write`: the agent pushing to a test endpoint of the test's
//! own (a plain TCP HTTP server thread that records every request and
//! answers what the test says), and to Debian's real `prometheus`.
#![cfg(feature = "remote-write")]

mod common;

use common::{http_get, Agent, TIMEOUT};
use quick_protobuf::BytesReader;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the endpoint took: when, its head (lower-cased names), body.
#[derive(Clone)]
struct Req {
    at: Instant,
    head: String,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// The test's endpoint: answers the n-th request with `answer(n)` (a
/// status line and extra header lines).
struct Endpoint {
    port: u16,
    reqs: Arc<Mutex<Vec<Req>>>,
}

impl Endpoint {
    fn start(answer: fn(usize) -> (&'static str, &'static str)) -> Endpoint {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let r2 = reqs.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                let Some(req) = read_request(&mut s) else {
                    continue;
                };
                let n = {
                    let mut v = r2.lock().unwrap();
                    v.push(req);
                    v.len() - 1
                };
                let (status, extra) = answer(n);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Endpoint { port, reqs }
    }

    #[cfg(feature = "tls")]
    /// The same over TLS, with a certificate for `localhost` (its PEM
    /// returned: the agent's CA file).
    fn start_tls() -> (Endpoint, String) {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&kp).unwrap();
        let pem = cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::try_from(kp.serialize_der()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let cfg = Arc::new(cfg);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let reqs = Arc::new(Mutex::new(Vec::new()));
        let r2 = reqs.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let Some(req) = read_request(&mut tls) else {
                    continue;
                };
                r2.lock().unwrap().push(req);
                let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        (Endpoint { port, reqs }, pem)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    fn reqs(&self) -> Vec<Req> {
        self.reqs.lock().unwrap().clone()
    }

    /// Waits (up to `within`) for `n` requests.
    fn wait(&self, n: usize, within: Duration) -> Vec<Req> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            let r = self.reqs();
            if r.len() >= n {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} requests within {within:?}, wanted {n}",
            self.reqs().len()
        );
    }
}

fn read_request(s: &mut impl Read) -> Option<Req> {
    let mut buf = Vec::new();
    let head_end = common::read_head(s, &mut buf)?;
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let req = Req {
        at,
        head,
        body: Vec::new(),
    };
    let len: usize = req.header("content-length")?.parse().ok()?;
    let mut body = buf[head_end..].to_vec();
    let mut chunk = [0u8; 65536];
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req { body, ..req })
}

/// A series: its labels (as pushed) and samples (value, ms).
type Series = (Vec<(String, String)>, Vec<(f64, i64)>);

/// A length-delimited field as a reader over its bytes.
fn sub<'a>(r: &mut BytesReader, b: &'a [u8]) -> (BytesReader, &'a [u8]) {
    let m = r.read_bytes(b).unwrap();
    (BytesReader::from_bytes(m), m)
}

/// The test's own decoder of a snappy'd `WriteRequest`.
fn decode(body: &[u8]) -> Vec<Series> {
    let pb = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let b = pb.as_slice();
    let mut r = BytesReader::from_bytes(b);
    let mut out = Vec::new();
    while !r.is_eof() {
        assert_eq!(r.next_tag(b).unwrap(), 10, "WriteRequest.timeseries");
        let (mut r, b) = sub(&mut r, b);
        let mut s: Series = (Vec::new(), Vec::new());
        while !r.is_eof() {
            match r.next_tag(b).unwrap() {
                10 => {
                    let (mut r, b) = sub(&mut r, b);
                    let mut l = (String::new(), String::new());
                    while !r.is_eof() {
                        match r.next_tag(b).unwrap() {
                            10 => l.0 = r.read_string(b).unwrap().into(),
                            18 => l.1 = r.read_string(b).unwrap().into(),
                            t => panic!("Label tag {t}"),
                        }
                    }
                    s.0.push(l);
                }
                18 => {
                    let (mut r, b) = sub(&mut r, b);
                    let mut v = (0.0, 0);
                    while !r.is_eof() {
                        match r.next_tag(b).unwrap() {
                            9 => v.0 = r.read_double(b).unwrap(),
                            16 => v.1 = r.read_int64(b).unwrap(),
                            t => panic!("Sample tag {t}"),
                        }
                    }
                    s.1.push(v);
                }
                t => panic!("TimeSeries tag {t}"),
            }
        }
        out.push(s);
    }
    out
}

fn label<'a>(s: &'a Series, name: &str) -> Option<&'a str> {
    s.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The agent's /metrics value of `series` (a name with its labels).
fn metric(agent: &Agent, series: &str) -> Option<f64> {
    let (_, body) = http_get(agent.port, "/metrics", "")?;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `series` once `ok` holds for it, or its last value after 5 s: the
/// endpoint sees a request before the agent has read the answer to it.
fn metric_when(agent: &Agent, series: &str, ok: impl Fn(f64) -> bool) -> Option<f64> {
    let t0 = std::time::Instant::now();
    loop {
        let v = metric(agent, series);
        if v.is_some_and(&ok) || t0.elapsed() >= Duration::from_secs(5) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sockagent-rw-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn pushes_headers_auth_and_a_decodable_body_in_time_order() {
    let ep = Endpoint::start(|_| ("204 No Content", ""));
    let token = temp_file("bearer", "s3cret-token\n");
    let agent = Agent::start(
        &["--remote-write", &ep.url(), "--history", "60"],
        &[
            ("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "1000"),
            ("SOCKAGENT_REMOTE_WRITE_INSTANCE", "board-7"),
            (
                "SOCKAGENT_REMOTE_WRITE_BEARER_FILE",
                token.to_str().unwrap(),
            ),
        ],
    );
    let reqs = ep.wait(5, Duration::from_secs(30));
    let r = &reqs[0];
    assert!(
        r.head.starts_with("POST /api/v1/write HTTP/1.1\r\n"),
        "{}",
        r.head
    );
    for (h, v) in [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
        ("authorization", "Bearer s3cret-token"),
    ] {
        assert_eq!(r.header(h).as_deref(), Some(v), "{h} in {}", r.head);
    }
    assert!(r.header("user-agent").unwrap().starts_with("sockagent/"));
    // per series: every sample newer than the last one pushed
    let mut last: HashMap<Vec<(String, String)>, i64> = HashMap::new();
    let mut busy_ms = Vec::new();
    let mut mem_total = None;
    for r in &reqs {
        for s in decode(&r.body) {
            let names: Vec<&str> = s.0.iter().map(|(n, _)| n.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "labels sorted");
            assert_eq!(label(&s, "instance"), Some("board-7"));
            let name = label(&s, "__name__").unwrap().to_string();
            for &(v, ms) in &s.1 {
                let prev = last.insert(s.0.clone(), ms);
                assert!(prev.is_none_or(|p| p < ms), "{:?}: {prev:?} then {ms}", s.0);
                if name == "sockagent_cpu_busy_percent" && s.0.len() == 2 {
                    busy_ms.push(ms);
                }
                if name == "node_memory_MemTotal_bytes" {
                    mem_total = Some(v);
                }
            }
        }
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(mem_total, Some(kb * 1024.0));
    assert!(busy_ms.len() >= 3, "the ring's seconds: {busy_ms:?}");
    for w in busy_ms.windows(2) {
        assert!(
            (500..1500).contains(&(w[1] - w[0])),
            "1-second samples: {busy_ms:?}"
        );
    }
    // the ring's gauges are on /metrics too, and the self-metrics
    assert!(metric(&agent, "sockagent_cpu_busy_percent").is_some());
    assert!(metric(&agent, "sockagent_remote_write_samples_total").unwrap() > 0.0);
    let _ = std::fs::remove_file(token);
}

#[test]
fn a_400_drops_the_batch_and_is_not_retried() {
    let ep = Endpoint::start(|_| ("400 Bad Request", ""));
    let agent = Agent::start(
        &["--remote-write", &ep.url()],
        &[("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "1000")],
    );
    let reqs = ep.wait(4, Duration::from_secs(30));
    // a retry would come after the backoff's base (≤ 500 ms), not an interval
    for w in reqs.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(gap >= Duration::from_millis(800), "a retry after {gap:?}");
    }
    // the endpoint saw the 4th request before the agent read its answer:
    // wait (bounded) for the agent to have counted it
    let series = "sockagent_remote_write_failures_total{reason=\"http_4xx\"}";
    let failed = metric_when(&agent, series, |f| f >= 4.0);
    assert!(failed.unwrap() >= 4.0, "{failed:?}");
    assert!(metric(&agent, "sockagent_remote_write_samples_dropped_total").unwrap() > 0.0);
    assert_eq!(
        agent.log().matches("answered 400").count(),
        1,
        "logged once"
    );
}

/// An endpoint (or a proxy before it) may send `100 Continue` or `103
/// Early Hints` before its answer, asked or not: the pushes count as
/// accepted, and nothing is dropped or retried.
#[test]
fn interim_answers_before_a_204_count_as_accepted() {
    let ep = Endpoint::start(|n| {
        if n % 2 == 0 {
            ("100 Continue\r\n\r\nHTTP/1.1 204 No Content", "")
        } else {
            (
                "103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 204 No Content",
                "",
            )
        }
    });
    let agent = Agent::start(
        &["--remote-write", &ep.url()],
        &[("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "1000")],
    );
    ep.wait(3, Duration::from_secs(30));
    // the endpoint saw the 3rd request before the agent read its answer
    let samples = metric_when(&agent, "sockagent_remote_write_samples_total", |v| v > 0.0);
    assert!(samples.unwrap() > 0.0);
    assert_eq!(
        metric(&agent, "sockagent_remote_write_samples_dropped_total"),
        Some(0.0)
    );
    let (_, text) = http_get(agent.port, "/metrics", "").unwrap();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("sockagent_remote_write_failures_total{"))
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!agent.log().contains("answered 1"), "{}", agent.log());
}

#[test]
fn a_503_is_retried_with_growing_gaps_and_recovery_is_logged() {
    // five 503s, then success
    let ep = Endpoint::start(|n| {
        if n < 5 {
            ("503 Unavailable", "")
        } else {
            ("200 OK", "")
        }
    });
    let agent = Agent::start(
        &["--remote-write", &ep.url()],
        &[("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "60000")],
    );
    let reqs = ep.wait(6, Duration::from_secs(40));
    let gaps: Vec<Duration> = reqs.windows(2).map(|w| w[1].at - w[0].at).collect();
    // jitter keeps each delay within [0.5, 1) of a doubling base: never shorter
    for w in gaps.windows(2) {
        assert!(w[1] + Duration::from_millis(50) >= w[0], "gaps {gaps:?}");
    }
    assert!(gaps[4] >= gaps[0] * 3, "backoff grows: {gaps:?}");
    assert!(
        gaps[0] >= Duration::from_millis(200),
        "a backoff at all: {gaps:?}"
    );
    let end = Instant::now() + TIMEOUT;
    while !agent.log().contains("accepts pushes again") {
        assert!(Instant::now() < end, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(agent.log().matches("retrying with backoff").count(), 1);
}

#[test]
fn a_429_waits_for_its_retry_after() {
    let ep = Endpoint::start(|n| {
        if n == 0 {
            ("429 Too Many Requests", "Retry-After: 2\r\n")
        } else {
            ("204 No Content", "")
        }
    });
    let agent = Agent::start(
        &["--remote-write", &ep.url()],
        &[("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "60000")],
    );
    let reqs = ep.wait(2, Duration::from_secs(30));
    // the backoff alone would retry within 0.5 s
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
    let n = metric(
        &agent,
        "sockagent_remote_write_failures_total{reason=\"http_429\"}",
    );
    assert_eq!(n, Some(1.0));
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_refusing_endpoint_costs_no_memory_and_no_answers() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    // a 100 ms interval caps the backoff there: a failed push every ~0.1 s
    let agent = Agent::start(
        &["--remote-write", &url],
        &[("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "100")],
    );
    let failures = || {
        metric(
            &agent,
            "sockagent_remote_write_failures_total{reason=\"connect\"}",
        )
        .unwrap_or(0.0)
    };
    let wait_for = |n: f64| {
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            // every scrape is answered (http_get has its own 10 s deadline)
            let f = failures();
            if f >= n {
                return;
            }
            assert!(Instant::now() < end, "{f} failed pushes");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(30.0);
    let before = rss_kib(agent.child.id());
    wait_for(230.0);
    let after = rss_kib(agent.child.id());
    assert!(after <= before + 256, "RSS {before} KiB, then {after} KiB");
    let log = agent.log();
    assert_eq!(log.matches("retrying with backoff").count(), 1, "{log}");
}

/// Debian's Prometheus receiving remote-write on `port`, no scrape jobs.
fn prometheus(dir: &std::path::Path, port: u16) -> common::Reaped {
    let config = "global:\n  evaluation_interval: 1m\n";
    common::start_prometheus(dir, config, port, &["--web.enable-remote-write-receiver"])
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_real_prometheus_receives_and_an_outage_is_filled_from_the_ring() {
    let dir = common::TempDir::new("remote-write-prometheus");
    let port = common::free_port();
    let mut server = prometheus(&dir.0, port);
    let plog = || std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let agent = Agent::start(
        &["--remote-write", &url, "--history", "300"],
        &[("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "2000")],
    );
    let busy = "sockagent_cpu_busy_percent{cpu=\"\"}";
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let end = Instant::now() + Duration::from_secs(90);
        while !ok() {
            assert!(Instant::now() < end, "{what}\n{}\n{}", plog(), agent.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait("MemTotal pushed", &|| {
        common::prom_query(port, "node_memory_MemTotal_bytes").is_some_and(|r| !r.is_empty())
    });
    let mem = common::prom_query(port, "node_memory_MemTotal_bytes").unwrap();
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0].1, (common::meminfo_kb("MemTotal") * 1024) as f64);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(mem[0].0["instance"], host.trim());
    // 1-second resolution: ~10 samples in 10 s
    wait("10 s of 1-second samples", &|| {
        common::prom_query(port, &format!("count_over_time({busy}[10s])"))
            .and_then(|r| r.first().map(|r| r.1))
            .is_some_and(|n| n >= 9.0)
    });

    // the outage: stopped for 40 s, started again on the same data
    let stopped = now_s();
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let _ = server.0.wait();
    std::thread::sleep(Duration::from_secs(40));
    let restarted = now_s();
    let _server = prometheus(&dir.0, port);
    wait("the agent caught up", &|| {
        common::prom_query(port, &format!("timestamp({busy})"))
            .and_then(|r| r.first().map(|r| r.1))
            .is_some_and(|t| t > restarted)
    });
    let w = (restarted - stopped).floor();
    let q = format!("count_over_time({busy}[{w}s] @ {restarted:.3})");
    let n = common::prom_query(port, &q)
        .and_then(|r| r.first().map(|r| r.1))
        .unwrap_or(0.0);
    eprintln!("outage: {n} samples of the 1-second series in its {w} s");
    assert!(
        n >= 0.95 * w,
        "{n} samples in the outage's {w} s\n{}",
        agent.log()
    );
    assert!(
        agent.log().contains("accepts pushes again"),
        "{}",
        agent.log()
    );
}

#[cfg(feature = "tls")]
#[test]
fn https_with_the_ca_file_and_basic_auth_through_the_resolver() {
    let (ep, pem) = Endpoint::start_tls();
    let ca = temp_file("ca.pem", &pem);
    let basic = temp_file("basic", "agent:pa55\n");
    // a name, not an address: resolved off the loop
    let url = format!("https://localhost:{}/api/v1/write", ep.port);
    let agent = Agent::start(
        &["--remote-write", &url],
        &[
            ("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "500"),
            ("SOCKAGENT_REMOTE_WRITE_CA", ca.to_str().unwrap()),
            (
                "SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE",
                basic.to_str().unwrap(),
            ),
        ],
    );
    let reqs = ep.wait(2, Duration::from_secs(30));
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some("Basic YWdlbnQ6cGE1NQ=="),
        "{}",
        agent.log()
    );
    assert_eq!(
        reqs[0].header("host"),
        Some(format!("localhost:{}", ep.port))
    );
    assert!(decode(&reqs[1].body)
        .iter()
        .any(|s| label(s, "__name__") == Some("node_load1")));
    let _ = (std::fs::remove_file(ca), std::fs::remove_file(basic));
}

#[test]
fn an_unreadable_auth_file_or_a_bad_url_is_exit_status_2() {
    for (args, env, says) in [
        (
            vec!["--remote-write", "http://127.0.0.1:9/w"],
            vec![("SOCKAGENT_REMOTE_WRITE_BEARER_FILE", "/nonexistent/token")],
            "SOCKAGENT_REMOTE_WRITE_BEARER_FILE",
        ),
        (vec!["--remote-write", "ftp://x/"], vec![], "--remote-write"),
    ] {
        let out = common::agent_command()
            .args(&args)
            .envs(env)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
}
