//! `/metrics` over real sockets: the token rule, `promtool check metrics`,
//! and a real Prometheus server scraping the agent.
//!
//! Needs Debian's `prometheus` package (`prometheus`, `promtool`); without
//! it these tests fail and say so. `.ci/run` installs it.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "scrape s3cret";

fn body_of(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn metrics_obey_the_token() {
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", SECRET)]);
    let r = agent.http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 401 "), "{r}");
    assert!(r.contains("WWW-Authenticate: Bearer"), "{r}");
    assert!(!r.contains("node_"), "no data without the token: {r}");
    let r = agent.http("GET /metrics?token=wrong HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 401 "), "{r}");
    let r = agent.http("GET /metrics HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 401 "), "{r}");

    let r = agent.http("GET /metrics?token=scrape%20s3cret HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(
        r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{r}"
    );
    assert!(body_of(&r).contains("\nnode_memory_MemTotal_bytes "));
    let r = agent.http(&format!(
        "GET /metrics HTTP/1.1\r\nAuthorization: Bearer {SECRET}\r\n\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let len: usize = r
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(len, body_of(&r).len());
    // HEAD: the head only
    let r = agent.http(&format!(
        "HEAD /metrics HTTP/1.1\r\nAuthorization: Bearer {SECRET}\r\n\r\n"
    ));
    assert!(
        r.starts_with("HTTP/1.1 200 ") && body_of(&r).is_empty(),
        "{r}"
    );
    // the token never shows in the log
    assert!(!agent.log().contains("s3cret"));
}

/// Prometheus sends Accept-Encoding: gzip; the answer is then gzipped and
/// says so, and inflates to the same exposition text.
#[test]
fn metrics_are_gzipped_when_the_client_takes_it() {
    use std::io::{Read, Write};
    let agent = Agent::start(&[], &[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    assert!(
        head.starts_with("http/1.1 200 ") && head.contains("content-encoding: gzip"),
        "{head}"
    );
    let body = &raw[split + 4..];
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(body.len(), len);
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("node_memory_MemTotal_bytes "), "{text}");
    let plain = agent.http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        !plain.to_lowercase().contains("content-encoding"),
        "{plain}"
    );
    assert!(
        body.len() * 3 < plain.len(),
        "gzip pays: {} vs {}",
        body.len(),
        plain.len()
    );
}

#[test]
fn metrics_describe_this_machine() {
    let agent = Agent::start(&[], &[("SOCKAGENT_PROM_TOP_N", "3")]);
    let r = agent.http("GET /metrics HTTP/1.1\r\n\r\n");
    let body = body_of(&r);
    let get = |prefix: &str| -> Vec<&str> {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect()
    };
    assert_eq!(
        get("node_memory_MemTotal_bytes "),
        vec![(meminfo_kb("MemTotal") * 1024).to_string()]
    );
    assert_eq!(
        get("node_memory_SwapTotal_bytes "),
        vec![(meminfo_kb("SwapTotal") * 1024).to_string()]
    );
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ncpu = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(get("node_cpu_seconds_total{").len(), ncpu * 8);
    let btime = stat.lines().find_map(|l| l.strip_prefix("btime ")).unwrap();
    assert_eq!(get("node_boot_time_seconds "), vec![btime]);
    assert_eq!(get("node_load1 ").len(), 1);
    assert!(body.contains("node_network_receive_bytes_total{device=\"lo\"} "));
    assert!(body.contains("mountpoint=\"/\"") || !body.contains("node_filesystem_size_bytes{"));
    assert_eq!(get("sockagent_top_process_cpu_percent{").len(), 3);
    let rss: u64 = get("sockagent_self_resident_memory_bytes ")[0]
        .parse()
        .unwrap();
    assert!(rss > 100_000, "{rss}");
    // metrics, disks, processes, sensors, cgroups
    assert_eq!(get("sockagent_collector_runs_total{").len(), 5);
}

/// Every problem promtool reports must be the one node_exporter's own
/// output has: the camelCase `node_memory_*` names that its dashboards
/// query (`node_memory_MemTotal_bytes`). Anything else fails.
#[test]
fn promtool_check_metrics_is_clean() {
    let promtool = tool("promtool", "prometheus");
    let agent = Agent::start(&[], &[]);
    let r = agent.http("GET /metrics HTTP/1.1\r\n\r\n");
    let body = body_of(&r).to_string();
    assert!(!body.is_empty(), "{r}");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| {
            !(l.starts_with("node_memory_")
                && l.ends_with("metric names should be written in 'snake_case' not 'camelCase'"))
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(problems.is_empty(), "promtool: {problems:#?}");
    // promtool parsed it: a parse error exits 1 with a message, lint
    // problems exit 3; nothing else is acceptable
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "promtool: {report}"
    );
}

#[test]
fn a_real_prometheus_scrapes_the_agent() {
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", SECRET)]);
    let dir = TempDir::new("prometheus");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: sockagent\n    authorization:\n      credentials: \"{SECRET}\"\n\
         \x20   static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        agent.port
    );
    let port = free_port();
    let _server = start_prometheus(&dir.0, &config, port, &[]);
    let plog = || std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();

    // two successful scrapes
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ups = prom_query(port, "count_over_time(up{job=\"sockagent\"}[10m])");
        let up = prom_query(port, "min_over_time(up{job=\"sockagent\"}[10m])");
        if let (Some(n), Some(u)) = (&ups, &up) {
            if n.first().is_some_and(|s| s.1 >= 2.0) {
                assert_eq!(
                    u.first().map(|s| s.1),
                    Some(1.0),
                    "a scrape failed: {}\n{}",
                    plog(),
                    agent.log()
                );
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the agent twice within 90 s.\nprometheus log:\n{}\nagent log:\n{}",
            plog(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let mem = prom_query(port, "node_memory_MemTotal_bytes{job=\"sockagent\"}").unwrap();
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0].1, (meminfo_kb("MemTotal") * 1024) as f64);
    assert_eq!(
        mem[0].0["instance"],
        format!("127.0.0.1:{}", agent.port).as_str()
    );
    let rss = prom_query(
        port,
        "sockagent_self_resident_memory_bytes{job=\"sockagent\"}",
    )
    .unwrap();
    assert_eq!(rss.len(), 1, "{rss:?}");
    let ours = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id())).unwrap();
    let vm_rss_kb: f64 = ours
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // the same process, measured a moment apart: same order of magnitude
    assert!(
        rss[0].1 > vm_rss_kb * 1024.0 / 4.0 && rss[0].1 < vm_rss_kb * 1024.0 * 4.0,
        "{} vs VmRSS {vm_rss_kb} kB",
        rss[0].1
    );
    let info = prom_query(port, "sockagent_build_info").unwrap();
    assert_eq!(info[0].0["version"], env!("CARGO_PKG_VERSION"));
    // a rate over the CPU counters works as on node_exporter
    let cpus = prom_query(port, "count(node_cpu_seconds_total{mode=\"idle\"})").unwrap();
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ncpu = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(cpus[0].1, ncpu as f64);
}
