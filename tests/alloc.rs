//! Steady state: after warm-up, a freshly collected answer makes no heap
//! allocation. File reads, parsing, protobuf, gzip and JSON go through
//! buffers that live as long as the agent, and the frame payload is carved
//! from a pool whose memory comes back once the previous answer is sent.
//! What may still allocate, and why: a pid never seen before (its entry in
//! the pid table, its row), a payload larger than any before it, and a
//! client still holding the previous payload (then the pool gets new memory).

use sockagent::answers::{Answers, Ttls};
use sockagent::collect::{Collectors, Settings};
use std::time::{Duration, Instant};

#[path = "common/counting.rs"]
mod counting;
use counting::count;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// The tests share one machine's /proc: one at a time, so one test's
/// start-up scan is not another's noise.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn fresh_answers_allocate_nothing_in_the_steady_state() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let settings = Settings {
        temp_enabled: true,
        ..Settings::default()
    };
    let ttl = Ttls {
        metrics: Duration::ZERO,
        processes: Duration::ZERO,
        ..Ttls::default()
    };
    let mut c = Answers::new(Collectors::new(settings, 4096), ttl);
    for _ in 0..10 {
        c.metrics(Instant::now()).unwrap();
        c.processes(Instant::now()).unwrap();
    }
    let n = count(|| {
        for _ in 0..100 {
            drop(c.metrics(Instant::now()).unwrap());
        }
    });
    eprintln!("metrics: {n}");
    // A payload a few bytes longer than any before may grow the pool once or twice.
    assert!(n <= 3, "get_metrics: {n} allocations for 100 fresh answers");
    // Processes: new pids appearing meanwhile (other tests run beside us)
    // get a table entry; the bound allows that churn, not an allocation per
    // answer or per pid.
    let n = count(|| {
        for _ in 0..100 {
            drop(c.processes(Instant::now()).unwrap());
        }
    });
    eprintln!("processes: {n}");
    assert!(
        n <= 40,
        "get_processes: {n} allocations for 100 fresh answers"
    );
}

#[test]
fn cached_answers_allocate_nothing() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Answers::new(Collectors::new(Settings::default(), 4096), Ttls::default());
    let now = Instant::now();
    c.metrics(now).unwrap();
    c.processes(now).unwrap();
    c.disks(now).unwrap();
    let n = count(|| {
        for _ in 0..100 {
            drop(c.metrics(now).unwrap());
            drop(c.processes(now).unwrap());
            drop(c.disks(now).unwrap());
        }
    });
    assert_eq!(n, 0);
}

/// On a tree with a CPU temperature sensor (the node_exporter fixture's
/// coretemp), the sensor's read allocates nothing either: its file is kept
/// open and read into a kept buffer.
#[test]
fn metrics_with_a_temperature_sensor_allocate_nothing() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = sockagent::collect::fs::Root::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/node-exporter"
    ));
    let settings = Settings {
        root,
        temp_enabled: true,
        gpu_enabled: false,
        ..Settings::default()
    };
    let ttl = Ttls {
        metrics: Duration::ZERO,
        ..Ttls::default()
    };
    let mut c = Answers::new(Collectors::new(settings, 64), ttl);
    for _ in 0..10 {
        c.metrics(Instant::now()).unwrap();
    }
    let sample = c.collectors().metrics();
    assert_eq!(sample.cpu_temp_c, Some(55.0), "the fixture's coretemp");
    let n = count(|| {
        for _ in 0..100 {
            drop(c.metrics(Instant::now()).unwrap());
        }
    });
    assert!(
        n <= 3,
        "get_metrics with a sensor: {n} allocations for 100 fresh answers"
    );
}

/// The board sources (clocks, load, uptime, pressure, throttling, disk
/// I/O, fans, batteries, RAPL) read on every sample (`board_period` 0),
/// on the three hand-made trees that hold them all between them: their
/// rows and kept files are reused in place, so a steady-state sample
/// allocates nothing either.
#[test]
fn metrics_with_every_board_source_allocate_nothing() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for tree in ["rpi4", "laptop", "server"] {
        let root = sockagent::collect::fs::Root::new(format!(
            "{}/tests/fixtures/{tree}",
            env!("CARGO_MANIFEST_DIR")
        ));
        let settings = Settings {
            root,
            temp_enabled: true,
            gpu_enabled: false,
            board_period: Duration::ZERO,
            ..Settings::default()
        };
        let ttl = Ttls {
            metrics: Duration::ZERO,
            ..Ttls::default()
        };
        let mut c = Answers::new(Collectors::new(settings, 64), ttl);
        for _ in 0..10 {
            c.metrics(Instant::now()).unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
        let b = &c.collectors().metrics().board;
        match tree {
            "rpi4" => assert!(b.cpufreq.any() && b.throttle.sample.is_some(), "{tree}"),
            "laptop" => assert!(!b.fans.fans.is_empty() && b.power.present(), "{tree}"),
            _ => assert!(
                b.pressure.is_some() && b.throttle.sample.is_some(),
                "{tree}"
            ),
        }
        assert!(!c.collectors().metrics().disk_io.rows.is_empty(), "{tree}");
        let n = count(|| {
            for _ in 0..100 {
                drop(c.metrics(Instant::now()).unwrap());
            }
        });
        assert!(
            n <= 3,
            "get_metrics on {tree}: {n} allocations for 100 fresh answers"
        );
    }
}

/// The history ring's sample a second (issue 18): sized at the first
/// sample, then each tick (a collection and a slot written) allocates
/// nothing, including once the ring has wrapped.
#[test]
fn history_ticks_allocate_nothing_after_the_first() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c =
        Answers::new(Collectors::new(Settings::default(), 64), Ttls::default()).with_history(5);
    let mut t = Instant::now();
    for _ in 0..3 {
        t += Duration::from_secs(1);
        c.history_tick(t);
    }
    let n = count(|| {
        for _ in 0..20 {
            t += Duration::from_secs(1);
            c.history_tick(t);
        }
    });
    eprintln!("history ticks: {n}");
    assert_eq!(n, 0, "{n} allocations for 20 history ticks");
    let Some(sockagent::protocol::Answer::Text(h)) = c.history_answer(None, false) else {
        panic!("no history answer")
    };
    let v: serde_json::Value = serde_json::from_str(h.as_str()).unwrap();
    assert_eq!(v["samples"].as_array().unwrap().len(), 5, "{v}");
}

/// The alerts' tick re-reads only the memory of the cgroups with a limit
/// (`CgroupScanner::refresh_memory`, every 10 s): on a copy of the
/// cgroup-v2 tree, after one sample, the re-reads allocate nothing and see
/// the container's new `memory.current`. (The whole tick is not counted
/// here: the disks sample's `statvfs` and the collectors' 30-second
/// rediscovery are not this path's.)
#[test]
fn cgroup_memory_rereads_allocate_nothing() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("alloc-cgroups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cgroup-v2/."
        ))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let scope = "/system.slice/docker-3f2a9c1be0d4a7f6c5b8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4.scope";
    let current = dir.join(format!("sys/fs/cgroup{scope}/memory.current"));
    let root = sockagent::collect::fs::Root::new(&dir);
    let mut s = sockagent::collect::cgroups::CgroupScanner::new(64);
    s.scan(&root, Instant::now(), 1, 1000, 100).unwrap();
    let mem = |s: &sockagent::collect::cgroups::CgroupScanner| {
        let r = s.rows.iter().find(|r| r.path == scope).unwrap();
        (r.mem_bytes, r.mem_max_bytes)
    };
    assert_eq!(mem(&s), (Some(412_381_184), Some(536_870_912)));
    s.refresh_memory();
    std::fs::write(&current, "510027366\n").unwrap();
    let n = count(|| {
        for _ in 0..10 {
            s.refresh_memory();
        }
    });
    assert_eq!(n, 0, "{n} allocations for 10 memory re-reads");
    assert_eq!(mem(&s), (Some(510_027_366), Some(536_870_912)));
    let _ = std::fs::remove_dir_all(&dir);
}
