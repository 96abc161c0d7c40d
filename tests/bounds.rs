//! Issue 25 over real sockets: what clients that do not read may hold
//! (each against SOCKAGENT_MAX_QUEUED_BYTES, all against
//! SOCKAGENT_MAX_QUEUED_TOTAL), a large answer to a client that reads,
//! subscription churn, one connection's turn, TCP keepalive.
mod common;

use common::{ask, json, next, Agent, TIMEOUT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

const UPGRADE: &str =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A client's masked text frame (mask 0).
fn frame(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut f = vec![0x81];
    if len < 126 {
        f.push(0x80 | len as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(text.as_bytes());
    f
}

/// A raw WebSocket client that sends `reqs` and never reads.
fn non_reader(port: u16, reqs: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(UPGRADE.as_bytes()).unwrap();
    let _ = s.write_all(reqs);
    s
}

fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The agent's user + system CPU time, ms.
fn cpu_ms(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // fields 14 and 15 of stat; `after` starts at field 3
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 * 1000.0 / hz
}

/// The agent's time on the CPU, ms, from /proc/PID/schedstat (ns; finer
/// than stat's clock ticks).
fn sched_ms(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    s.split(' ').next().unwrap().parse::<f64>().unwrap() / 1e6
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = common::http_get(port, "/metrics", "").unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn slow_journal(tag: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("sockagent-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("journalctl");
    std::fs::write(&p, "#!/bin/sh\nexec sleep 1.2\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = p.to_string_lossy().into_owned();
    (dir, cmd)
}

#[test]
fn a_burst_of_unread_answers_grows_memory_by_a_few_mib_at_most() {
    let (dir, cmd) = slow_journal("burst");
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_JOURNALCTL", &cmd),
            ("SOCKAGENT_MAX_QUEUED_BYTES", "65536"),
        ],
    );
    let pid = agent.child.id();
    let journal = format!("get_journal_entries:{}", std::process::id());
    // warm up every path once (a journal read, history), with a reader
    let mut ws = agent.ws();
    assert!(json(&ask(&mut ws, r#"{"type":"history"}"#))["samples"].is_array());
    let _ = ask(&mut ws, &journal);
    std::thread::sleep(Duration::from_secs(3)); // a few samples in the ring
    let before = status_kb(pid, "VmRSS:");
    let mut burst = frame(&journal);
    for _ in 0..255 {
        burst.extend(frame(r#"{"type":"history"}"#));
    }
    let clients: Vec<TcpStream> = (0..20).map(|_| non_reader(agent.port, &burst)).collect();
    // the journal reads end (1.2 s) and what queued behind them is let out
    let t0 = Instant::now();
    let mut peak = before;
    while t0.elapsed() < Duration::from_secs(3) {
        peak = peak.max(status_kb(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let grew = peak.saturating_sub(before);
    let dropped = metric(
        agent.port,
        "sockagent_clients_dropped_total{reason=\"queue\"}",
    );
    println!(
        "20 clients x (1 journal + 255 history), never reading, cap 64 KiB: VmRSS {before} kB -> peak {peak} kB (+{grew} kB); {dropped} dropped at their cap"
    );
    assert!(grew < 8 * 1024, "RSS grew {grew} kB");
    assert!(dropped >= 1.0, "no client went over its cap");
    // a fresh client is answered
    let mut fresh = agent.ws();
    assert!(json(&ask(&mut fresh, "get_metrics"))["cpu_total"].is_number());
    drop(clients);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reader_gets_an_answer_over_the_cap_whole_and_a_non_reader_is_dropped() {
    let agent = Agent::start(
        &["--history", "600"],
        &[("SOCKAGENT_MAX_QUEUED_BYTES", "4096")],
    );
    let mut ws = agent.ws();
    let t0 = Instant::now();
    let (len, samples) = loop {
        assert!(t0.elapsed() < Duration::from_secs(90), "never over 4 KiB");
        let Message::Text(t) = ask(&mut ws, r#"{"type":"history"}"#) else {
            panic!("not text");
        };
        let v: serde_json::Value = serde_json::from_str(&t).expect("whole JSON");
        let n = v["samples"].as_array().unwrap().len();
        if t.len() > 8192 {
            break (t.len(), n);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("a history answer of {len} bytes ({samples} samples) read whole at a 4096-byte cap");
    // gzipped too, and the processes answer
    let z = ask(&mut ws, r#"{"type":"history","gzip":true}"#);
    assert!(matches!(z, Message::Binary(_)));
    assert!(matches!(ask(&mut ws, "get_processes"), Message::Binary(_)));
    // a client that asks for it and never reads is dropped
    let mut burst = Vec::new();
    for _ in 0..2000 {
        burst.extend(frame(r#"{"type":"history"}"#));
    }
    let _hog = non_reader(agent.port, &burst);
    let t0 = Instant::now();
    while metric(
        agent.port,
        "sockagent_clients_dropped_total{reason=\"queue\"}",
    ) < 1.0
    {
        assert!(t0.elapsed() < TIMEOUT, "the non-reader was never dropped");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.log().contains("not reading its answers"));
    // the reader is still served
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
}

#[test]
fn all_clients_together_are_held_to_the_total() {
    let (dir, cmd) = slow_journal("total");
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_JOURNALCTL", &cmd),
            ("SOCKAGENT_MAX_QUEUED_BYTES", "1000000"),
            ("SOCKAGENT_MAX_QUEUED_TOTAL", "200000"),
            ("SOCKTOP_AGENT_METRICS_TTL_MS", "60000"),
        ],
    );
    // each holds its answers behind a journal read, under its own cap
    let mut burst = frame(&format!("get_journal_entries:{}", std::process::id()));
    for _ in 0..100 {
        burst.extend(frame("get_metrics"));
    }
    let _clients: Vec<TcpStream> = (0..10).map(|_| non_reader(agent.port, &burst)).collect();
    let t0 = Instant::now();
    while metric(
        agent.port,
        "sockagent_clients_dropped_total{reason=\"total\"}",
    ) < 1.0
    {
        assert!(t0.elapsed() < TIMEOUT, "nobody dropped over the total");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(agent.log().contains("the most, while all clients hold"));
    let mut fresh = agent.ws();
    assert!(json(&ask(&mut fresh, "get_metrics"))["cpu_total"].is_number());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn subscribing_to_ever_new_periods_keeps_one_group() {
    let agent = Agent::start(&[], &[]);
    let pid = agent.child.id();
    let mut ws = agent.ws();
    let (mut per_thousand, mut sched) = (Vec::new(), Vec::new());
    for k in 0..5u32 {
        let (c0, s0) = (cpu_ms(pid), sched_ms(pid));
        for i in 0..1000 {
            let ms = 10_000 + k * 1000 + i;
            let req = format!(r#"{{"type":"subscribe","metrics_ms":{ms}}}"#);
            ws.send(Message::text(req)).unwrap();
        }
        for i in 0..1000 {
            let ms = 10_000 + k * 1000 + i;
            let a = json(&next(&mut ws));
            assert_eq!(a["subscribed"]["metrics_ms"], ms, "{a}");
        }
        per_thousand.push(cpu_ms(pid) - c0);
        sched.push(((sched_ms(pid) - s0) * 10.0).round() / 10.0);
    }
    println!(
        "agent CPU per thousand subscribes, each a new period, ms: utime+stime {per_thousand:?}, schedstat {sched:?}"
    );
    assert_eq!(metric(agent.port, "sockagent_push_groups"), 1.0);
    assert_eq!(
        metric(agent.port, "sockagent_subscribers{stream=\"metrics\"}"),
        1.0
    );
    // the one group left still ticks: it is the last period asked for (14.999 s);
    // move to 500 ms and a frame comes
    let a = json(&ask(&mut ws, r#"{"type":"subscribe","metrics_ms":500}"#));
    assert_eq!(a["subscribed"]["metrics_ms"], 500);
    assert!(json(&next(&mut ws))["cpu_total"].is_number());
    assert_eq!(metric(agent.port, "sockagent_push_groups"), 1.0);
}

#[test]
fn groups_are_bounded_and_past_the_bound_a_subscribe_is_an_error() {
    let agent = Agent::start(&[], &[]);
    // each connection holds three groups of its own
    let mut conns = Vec::new();
    let mut refused = None;
    for i in 0..100u32 {
        let mut ws = agent.ws();
        let req = format!(
            r#"{{"type":"subscribe","metrics_ms":{},"processes_ms":{},"disks_ms":{}}}"#,
            600_000 + i,
            600_000 + i,
            600_000 + i
        );
        let a = json(&ask(&mut ws, &req));
        if a.get("error").is_some() {
            refused = Some((i, a));
            break;
        }
        conns.push(ws);
    }
    let (i, a) = refused.expect("no bound on groups");
    assert!(a["error"].as_str().unwrap().contains("too many"), "{a}");
    let groups = metric(agent.port, "sockagent_push_groups");
    println!("refused at connection {i} with {groups} groups: {a}");
    assert!((250.0..=256.0).contains(&groups), "{groups}");
    // a period already in use is still fine
    let mut ws = agent.ws();
    let a = json(&ask(&mut ws, r#"{"type":"subscribe","metrics_ms":600000}"#));
    assert_eq!(a["subscribed"]["metrics_ms"], 600000);
    // closing connections frees their groups
    drop(conns);
    let t0 = Instant::now();
    while metric(agent.port, "sockagent_push_groups") > 1.0 {
        assert!(t0.elapsed() < TIMEOUT, "groups of closed connections stay");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Counts the server's frames on `s` (unmasked; any length form).
fn count_frames(mut s: TcpStream, seen: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut headers_done = false;
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if !headers_done {
            let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            buf.drain(..p + 4);
            headers_done = true;
        }
        let mut off = 0;
        while let Some(&b1) = buf.get(off + 1) {
            let (len, hdr) = match b1 & 0x7f {
                126 if buf.len() >= off + 4 => {
                    (u16::from_be_bytes([buf[off + 2], buf[off + 3]]) as usize, 4)
                }
                127 if buf.len() >= off + 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[off + 2..off + 10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => break,
                l => (l as usize, 2),
            };
            if buf.len() < off + hdr + len {
                break;
            }
            off += hdr + len;
            seen.fetch_add(1, Ordering::SeqCst);
        }
        buf.drain(..off);
    }
}

#[test]
fn a_flooding_client_does_not_starve_another() {
    const FLOOD: usize = 40_000;
    let agent = Agent::start(&[], &[]);
    let mut flooder = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    flooder.write_all(UPGRADE.as_bytes()).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (s, seen) = (flooder.try_clone().unwrap(), seen.clone());
        std::thread::spawn(move || count_frames(s, seen))
    };
    let mut other = agent.ws();
    let one = frame("get_metrics");
    let writer = std::thread::spawn(move || {
        let burst = one.repeat(1000);
        for _ in 0..FLOOD / 1000 {
            flooder.write_all(&burst).unwrap();
        }
        flooder
    });
    // once the flood is being answered, the other connection asks once
    let t0 = Instant::now();
    while seen.load(Ordering::SeqCst) < 1000 {
        assert!(t0.elapsed() < TIMEOUT * 3, "the flood is not answered");
        std::thread::yield_now();
    }
    let m = json(&ask(&mut other, "get_metrics"));
    let at = seen.load(Ordering::SeqCst);
    assert!(m["cpu_total"].is_number());
    println!("the other client's answer came after {at} of the flooder's {FLOOD}");
    assert!(at < FLOOD, "the other client waited for the whole flood");
    let flooder = writer.join().unwrap();
    while seen.load(Ordering::SeqCst) < FLOOD {
        let n = seen.load(Ordering::SeqCst);
        assert!(
            t0.elapsed() < TIMEOUT * 6,
            "{n} of the flood answered; log tail: {}",
            agent
                .log()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = flooder.shutdown(std::net::Shutdown::Both);
    reader.join().unwrap();
}

#[test]
fn accepted_sockets_have_tcp_keepalive() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
    // columns: Recv-Q Send-Q Local Peer timer; the agent's end is local.
    // ss shows one timer: a retransmit one while data is unacknowledged.
    let local = format!("127.0.0.1:{}", agent.port);
    let t0 = Instant::now();
    loop {
        let out = std::process::Command::new("ss")
            .args(["-tno", "state", "established"])
            .output()
            .expect("ss (Debian package iproute2)");
        let out = String::from_utf8_lossy(&out.stdout);
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(local.as_str()))
            .unwrap_or_else(|| panic!("the agent's socket is not listed:\n{out}"))
            .to_string();
        if line.contains("timer:(keepalive") {
            println!("{line}");
            break;
        }
        assert!(t0.elapsed() < TIMEOUT, "no keepalive timer: {line}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
