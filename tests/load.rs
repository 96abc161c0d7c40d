//! Load: many concurrent WebSocket clients pipelining mixed requests; every
//! request answered exactly once and in order. `cargo test` runs a short
//! version; the full one (1 000 clients, 30 s) is
//! `LOAD_CLIENTS=1000 LOAD_SECS=30 cargo test --release --test load -- --nocapture`.

mod common;
use common::Agent;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const MIX: [&str; 5] = [
    "get_metrics",
    r#"{"type":"disks"}"#,
    "get_processes",
    r#"{"type":"metrics"}"#,
    "bogus",
];

fn kind_ok(req: &str, m: &Message) -> bool {
    match (req, m) {
        ("get_processes", Message::Binary(b)) => !b.is_empty(),
        ("get_metrics" | r#"{"type":"metrics"}"#, Message::Text(t)) => t.contains("\"cpu_total\""),
        (r#"{"type":"disks"}"#, Message::Text(t)) => t.starts_with('['),
        ("bogus", Message::Text(t)) => t.contains("\"error\""),
        _ => false,
    }
}

fn env_num(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn proc_cpu_rss(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = |k: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse()
            .unwrap()
    };
    (ticks / 100.0, kb("VmRSS:") * 1024, kb("VmHWM:") * 1024)
}

#[test]
fn many_clients_pipelining_lose_nothing() {
    let clients = env_num("LOAD_CLIENTS", 100) as usize;
    let secs = env_num("LOAD_SECS", 3);
    let depth = 5usize;
    // Raise our own fd limit for many sockets.
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    let agent = Agent::start(
        &[],
        &[("SOCKAGENT_MAX_CONNECTIONS", "4096"), ("RUST_LOG", "info")],
    );
    let url = agent.url();
    let (cpu0, _, _) = proc_cpu_rss(agent.child.id());
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (url, sent, answered, wrong) =
                (url.clone(), sent.clone(), answered.clone(), wrong.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ws, _) = loop {
                    match tokio_tungstenite::connect_async(url.as_str()).await {
                        Ok(x) => break x,
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                };
                let mut i = c;
                while tokio::time::Instant::now() < deadline {
                    let batch: Vec<&str> = (0..depth).map(|k| MIX[(i + k) % MIX.len()]).collect();
                    i += depth;
                    for r in &batch {
                        ws.send(Message::text(*r)).await.unwrap();
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    for r in &batch {
                        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                            Ok(Some(Ok(m))) => {
                                answered.fetch_add(1, Ordering::Relaxed);
                                if !kind_ok(r, &m) {
                                    wrong.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            _ => return,
                        }
                    }
                }
                let _ = ws.close(None).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let (cpu1, rss, hwm) = proc_cpu_rss(agent.child.id());
    let (s, a, w) = (
        sent.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
    );
    println!(
        "load: clients={clients} secs={secs} requests={s} answered={a} lost={} out_of_order={w} req/s={:.0} agent_cpu={:.2}s rss={}KiB hwm={}KiB",
        s - a,
        a as f64 / wall,
        cpu1 - cpu0,
        rss / 1024,
        hwm / 1024
    );
    assert!(s > clients as u64 * depth as u64, "every client got going");
    assert_eq!(s, a, "every request answered");
    assert_eq!(w, 0, "every answer of the kind asked, in order");
}
