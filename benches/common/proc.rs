//! What the benches read of a running agent in `/proc`, shared by
//! `compare.rs` and `subscribers.rs` (`#[path]`-included: benches are
//! separate crates).

/// CPU time of `pid`, all its threads, ns (`schedstat`: exact, not ticks).
pub fn cpu_ns(pid: u32) -> f64 {
    let mut total = 0.0;
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
        }
    }
    total
}

/// A `/proc/PID/status` value in kB (`VmRSS:`, `VmHWM:`…); 0 if absent.
pub fn status_kb(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
            })
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Voluntary and involuntary context switches of `pid`, all its threads.
pub fn ctxt_switches(pid: u32) -> f64 {
    let mut total = 0.0;
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
                for k in ["voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"] {
                    total += s
                        .lines()
                        .find_map(|l| l.strip_prefix(k))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .unwrap_or(0.0);
                }
            }
        }
    }
    total
}

/// The `p` quantile (0..1) of `v`, nearest rank; NaN when empty.
pub fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(((s.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Waits (at most 20 s) until something listens on 127.0.0.1:`port`,
/// without connecting: a floor server counts every accepted connection
/// as its client.
pub fn wait_listening(port: u16, name: &str) {
    let t0 = std::time::Instant::now();
    let me = format!(":{port:04X}");
    while !std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&me) && f[3] == "0A"
        })
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "{name} did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
