//! Board health and rates (issue 17): the metrics answer's new keys on the
//! hand-made trees (tests/fixtures/{rpi4,laptop,server}, values read from
//! their files), `/metrics` against Debian's `prometheus-node-exporter`
//! and against /proc on this machine, and the disk and network rates
//! while a `dd` and a loopback transfer run.
//!
//! Needs `prometheus-node-exporter` (tests/run installs it).

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two metrics answers from the agent on `tree`, 1.1 s apart (the board
/// sources are read at most once a second; rates need two readings).
fn twice(name: &str) -> (Value, Value) {
    let root = fixture(name);
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_ROOT", root.as_str()),
            ("SOCKTOP_AGENT_GPU", "0"),
        ],
    );
    let mut ws = agent.ws();
    let a = json(&ask(&mut ws, "get_metrics"));
    std::thread::sleep(Duration::from_millis(1100));
    let b = json(&ask(&mut ws, "get_metrics"));
    (a, b)
}

fn net<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {m}"))
}

fn between(v: &Value, lo: f64, hi: f64) -> bool {
    v.as_f64().is_some_and(|x| (lo..=hi).contains(&x))
}

/// The rate keys: null on the first answer, 0 on a static tree after.
fn rates_null_then_zero(a: &Value, b: &Value) {
    for (m, want) in [(a, Value::Null), (b, json!(0.0))] {
        for d in m["disk_io"].as_array().unwrap() {
            for k in ["read_bytes_per_s", "write_bytes_per_s", "busy_pct"] {
                assert_eq!(d[k], want, "{k} of {d}");
            }
        }
        for n in m["networks"].as_array().unwrap() {
            for k in ["rx_bytes_per_s", "tx_bytes_per_s"] {
                assert_eq!(n[k], want, "{k} of {n}");
            }
        }
    }
}

#[test]
fn raspberry_pi_4_tree() {
    let (a, b) = twice("rpi4");
    for m in [&a, &b] {
        assert_eq!(m["cpu_freq_mhz"], json!([1500.0, 1500.0, 1500.0, 1500.0]));
        assert_eq!(m["load_avg"], json!([0.52, 0.58, 0.59]));
        assert!(between(&m["uptime_s"], 12345.67, 12345.67 + 30.0), "{m}");
        assert_eq!(m["pressure"], Value::Null, "no /proc/pressure");
        // get_throttled 0x50005 and rpi_volt's in0_lcrit_alarm 1
        assert_eq!(
            m["throttling"],
            json!({"now": ["under-voltage", "throttled"], "since_boot": ["under-voltage", "throttled"]})
        );
        assert_eq!(m["fans"], Value::Null);
        assert_eq!(m["power"], Value::Null);
        let names: Vec<&str> = m["disk_io"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["mmcblk0"],
            "no partitions, no idle loop or ram devices"
        );
        let eth0 = net(m, "eth0");
        assert_eq!(eth0["received"], 6442450944u64);
        assert_eq!(
            (
                &eth0["rx_errors"],
                &eth0["rx_dropped"],
                &eth0["tx_errors"],
                &eth0["tx_dropped"]
            ),
            (&json!(3), &json!(7), &json!(1), &json!(2))
        );
        assert_eq!(m["cpu_temp_c"], json!(47.238));
    }
    rates_null_then_zero(&a, &b);
}

#[test]
fn laptop_tree() {
    let (a, b) = twice("laptop");
    for m in [&a, &b] {
        assert_eq!(m["cpu_freq_mhz"], json!([2100.0, 3400.0, 800.0, 4200.0]));
        assert_eq!(m["load_avg"], json!([1.2, 0.9, 0.7]));
        assert!(between(&m["uptime_s"], 3600.5, 3600.5 + 30.0), "{m}");
        assert_eq!(m["pressure"], Value::Null);
        assert_eq!(m["throttling"], Value::Null, "no source on this tree");
        assert_eq!(
            m["fans"],
            json!([{"name": "thinkpad fan1", "rpm": 2874}, {"name": "thinkpad fan2", "rpm": 0}])
        );
        assert_eq!(
            m["power"]["batteries"],
            json!([{"name": "BAT0", "capacity_pct": 81, "status": "Discharging", "power_w": 8.123456}])
        );
        assert_eq!(m["disk_io"][0]["name"], "nvme0n1");
        assert_eq!(m["disk_io"].as_array().unwrap().len(), 1);
        assert_eq!(net(m, "wlp0s20f3")["rx_dropped"], 12);
        assert_eq!(m["cpu_temp_c"], json!(61.0));
    }
    // RAPL: one energy reading, then a static counter: 0 W
    assert_eq!(a["power"]["cpu_package_w"], Value::Null);
    assert_eq!(b["power"]["cpu_package_w"], json!(0.0));
    rates_null_then_zero(&a, &b);
}

#[test]
fn server_tree() {
    let (a, b) = twice("server");
    for m in [&a, &b] {
        assert_eq!(m["cpu_freq_mhz"], Value::Null, "no cpufreq");
        assert_eq!(m["load_avg"], json!([2.5, 1.75, 1.0]));
        assert!(between(&m["uptime_s"], 864000.25, 864000.25 + 30.0), "{m}");
        assert_eq!(
            m["pressure"],
            json!({"cpu_some_avg10": 12.5, "memory_some_avg10": 1.5, "memory_full_avg10": 0.75,
                   "io_some_avg10": 3.25, "io_full_avg10": 2.75})
        );
        // counts above 0, not rising
        assert_eq!(
            m["throttling"],
            json!({"now": [], "since_boot": ["thermal-throttle"]})
        );
        assert_eq!(m["fans"], Value::Null);
        assert_eq!(m["power"], Value::Null);
        let names: Vec<&str> = m["disk_io"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sda", "nvme0n1"]);
        let eno1 = net(m, "eno1");
        assert_eq!(eno1["received"], 98765432109876u64, "64-bit counters");
        assert_eq!(
            (
                &eno1["rx_errors"],
                &eno1["rx_dropped"],
                &eno1["tx_errors"],
                &eno1["tx_dropped"]
            ),
            (&json!(17), &json!(42), &json!(5), &json!(9))
        );
    }
    rates_null_then_zero(&a, &b);
}

#[test]
fn a_vm_without_board_sources_answers_null() {
    let (_, m) = twice("h200-vm");
    for k in [
        "cpu_freq_mhz",
        "pressure",
        "throttling",
        "disk_io",
        "fans",
        "power",
    ] {
        assert_eq!(m[k], Value::Null, "{k}");
    }
    assert_eq!(m["load_avg"], json!([0.07, 0.02, 0.0]));
    assert!(m["uptime_s"].as_f64().is_some());
}

// ---- this machine ----

/// A scrape's samples: series (name and labels) → value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let (status, body) = http_get(port, "/metrics", "").expect("scrape");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn node_exporter() -> (Reaped, u16) {
    let bin = tool("prometheus-node-exporter", "prometheus-node-exporter");
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let deadline = Instant::now() + TIMEOUT;
    while http_get(port, "/metrics", "").is_none() {
        assert!(Instant::now() < deadline, "node_exporter did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, port)
}

const COMPARED: [&str; 13] = [
    "node_disk_read_bytes_total{",
    "node_disk_written_bytes_total{",
    "node_network_receive_errs_total{",
    "node_network_receive_packets_total{",
    "node_network_transmit_packets_total{",
    "node_vmstat_oom_kill",
    "node_timex_sync_status",
    "node_pressure_cpu_waiting_seconds_total",
    "node_pressure_memory_waiting_seconds_total",
    "node_pressure_memory_stalled_seconds_total",
    "node_pressure_io_waiting_seconds_total",
    "node_pressure_io_stalled_seconds_total",
    "node_cpu_scaling_frequency_hertz{",
];

/// node_exporter scraped between two scrapes of the agent: each counter
/// of node_exporter's lies between the agent's two values (the agent's
/// board readings may be a second old, so the second scrape waits that
/// out); a clock is within 50% (it moves).
#[test]
fn metrics_agree_with_node_exporter() {
    let agent = Agent::start(&[], &[]);
    let (_ne, ne_port) = node_exporter();
    let before = scrape(agent.port);
    std::thread::sleep(Duration::from_millis(300));
    let ne = scrape(ne_port);
    std::thread::sleep(Duration::from_millis(1300));
    let after = scrape(agent.port);
    let mut compared = 0;
    for (series, &v) in &ne {
        if !COMPARED.iter().any(|p| series.starts_with(p)) {
            continue;
        }
        let (Some(&a), Some(&b)) = (before.get(series), after.get(series)) else {
            // node_exporter lists devices the agent does not (partitions,
            // dm-*); the agent's whole disks must be in node_exporter's list
            continue;
        };
        compared += 1;
        if series.starts_with("node_cpu_scaling_frequency_hertz") {
            assert!(
                (v - a).abs() <= a * 0.5,
                "{series}: {a} vs node_exporter {v}"
            );
            continue;
        }
        // 1 µs of rounding in node_exporter's float
        let eps = 1e-6 * v.abs().max(1.0);
        assert!(
            a - eps <= v && v <= b + eps,
            "{series}: node_exporter {v} not within the agent's {a}..{b}"
        );
    }
    // node_exporter's default --collector.diskstats.device-exclude leaves
    // out loop and ram devices, which the agent shows once they did I/O
    for s in before
        .keys()
        .filter(|s| s.starts_with("node_disk_read_bytes_total{"))
    {
        let virt = ["loop", "ram"]
            .iter()
            .any(|p| s.contains(&format!("\"{p}")));
        assert!(virt || ne.contains_key(s), "{s} is not node_exporter's");
    }
    let pressure = std::path::Path::new("/proc/pressure/cpu").exists();
    assert!(
        // disks read and written, receive errors, packets both ways, OOM
        // kills, clock sync; and the five pressure lines
        compared >= 7 + if pressure { 5 } else { 0 },
        "only {compared} series compared"
    );
    assert!(before.contains_key("node_time_seconds"));
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// (device → sectors read × 512) from /proc/diskstats.
fn diskstats_read_bytes() -> HashMap<String, u64> {
    read("/proc/diskstats")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(2)?.to_string(), f.get(5)?.parse::<u64>().ok()? * 512))
        })
        .collect()
}

/// (resource, some|full) → total µs from /proc/pressure.
fn pressure_totals() -> HashMap<(String, String), u64> {
    let mut out = HashMap::new();
    for r in ["cpu", "memory", "io"] {
        for l in read(&format!("/proc/pressure/{r}")).lines() {
            let kind = l.split(' ').next().unwrap_or("").to_string();
            if let Some(t) = l.split("total=").nth(1) {
                out.insert((r.to_string(), kind), t.trim().parse().unwrap());
            }
        }
    }
    out
}

/// (interface → rx errs, rx bytes) from /proc/net/dev.
fn netdev() -> HashMap<String, (u64, u64)> {
    read("/proc/net/dev")
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((name.trim().to_string(), (*f.get(2)?, *f.first()?)))
        })
        .collect()
}

/// The first scrape of a fresh agent reads every file then: its values
/// lie between what the test read just before and just after.
#[test]
fn metrics_agree_with_proc() {
    let agent = Agent::start(&[], &[]);
    let (d0, p0, n0) = (diskstats_read_bytes(), pressure_totals(), netdev());
    let s = scrape(agent.port);
    let (d1, p1, n1) = (diskstats_read_bytes(), pressure_totals(), netdev());
    let mut disks = 0;
    for (dev, lo) in &d0 {
        if let Some(&v) = s.get(&format!("node_disk_read_bytes_total{{device=\"{dev}\"}}")) {
            assert!(
                *lo as f64 <= v && v <= d1[dev] as f64,
                "{dev}: {lo} <= {v} <= {}",
                d1[dev]
            );
            disks += 1;
        }
    }
    assert!(disks >= 1, "no whole disk in {:?}", d0.keys());
    for ((r, kind), lo) in &p0 {
        let name = match kind.as_str() {
            "some" => format!("node_pressure_{r}_waiting_seconds_total"),
            _ if r == "cpu" => continue,
            _ => format!("node_pressure_{r}_stalled_seconds_total"),
        };
        let v = s[&name];
        let hi = p1[&(r.clone(), kind.clone())] as f64 / 1e6;
        assert!(
            *lo as f64 / 1e6 - 1e-6 <= v && v <= hi + 1e-6,
            "{name}: {lo} µs <= {v} s <= {hi}"
        );
    }
    for (dev, (errs, rx)) in &n0 {
        let errs_v = s[&format!("node_network_receive_errs_total{{device=\"{dev}\"}}")];
        assert!(
            *errs as f64 <= errs_v && errs_v <= n1[dev].0 as f64,
            "{dev} errs"
        );
        let rx_v = s[&format!("node_network_receive_bytes_total{{device=\"{dev}\"}}")];
        assert!(
            *rx as f64 <= rx_v && rx_v <= n1[dev].1 as f64,
            "{dev} rx bytes"
        );
    }
}

/// The whole disk holding `path`: its device number, through
/// /sys/dev/block, to the kernel name (a partition's parent).
fn disk_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let link = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).unwrap();
    let part = link.join("partition").exists();
    let disk = if part { link.parent().unwrap() } else { &link };
    disk.file_name().unwrap().to_string_lossy().into_owned()
}

/// While `dd` writes 200 MB with O_DIRECT under target/ and 200 MB go
/// over loopback, the metrics answer polled every 0.5 s shows them.
#[test]
fn disk_and_network_rates_follow_a_transfer() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("health-dd-{}", std::process::id()));
    std::fs::write(&file, b"").unwrap();
    let disk = disk_of(&file);
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let first = json(&ask(&mut ws, "get_metrics"));
    assert!(
        first["disk_io"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == disk.as_str()),
        "{disk} in {}",
        first["disk_io"]
    );
    let mut dd = Reaped(
        Command::new("dd")
            .args(["if=/dev/zero", &format!("of={}", file.display())])
            .args(["bs=1M", "count=200", "oflag=direct"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // 200 MB over loopback, 10 MB every 0.2 s
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = std::thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while s.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let source = std::thread::spawn(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let chunk = vec![7u8; 10 << 20];
        for _ in 0..20 {
            s.write_all(&chunk).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let (mut max_write, mut max_lo) = (0.0f64, 0.0f64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(500));
        let m = json(&ask(&mut ws, "get_metrics"));
        if let Some(d) = m["disk_io"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == disk.as_str())
        {
            max_write = max_write.max(d["write_bytes_per_s"].as_f64().unwrap_or(0.0));
            let busy = d["busy_pct"].as_f64().unwrap_or(0.0);
            assert!((0.0..=100.0).contains(&busy), "{d}");
        }
        max_lo = max_lo.max(net(&m, "lo")["rx_bytes_per_s"].as_f64().unwrap_or(0.0));
    }
    let _ = dd.0.wait();
    source.join().unwrap();
    sink.join().unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(max_write > 10e6, "{disk}: at most {max_write} B/s written");
    assert!(max_lo > 10e6, "lo: at most {max_lo} B/s received");
}
