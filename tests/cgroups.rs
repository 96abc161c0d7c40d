//! The `cgroups` request end to end: the agent binary on the fixture trees,
//! and on this machine with a cgroup this test makes (needs root: CI runs
//! as root; elsewhere it skips with the reason, and under CI=true it fails).

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEYS: [&str; 9] = [
    "path",
    "kind",
    "name",
    "cpu_pct",
    "mem_bytes",
    "mem_max_bytes",
    "io_read_bytes_per_s",
    "io_write_bytes_per_s",
    "pids",
];

fn rows(v: &Value) -> &Vec<Value> {
    let rows = v.as_array().unwrap_or_else(|| panic!("not a list: {v}"));
    for r in rows {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = KEYS.to_vec();
        want.sort();
        assert_eq!(keys, want, "{r}");
    }
    rows
}

/// A row without its rates, for comparing with what the files hold.
fn still(r: &Value) -> Value {
    let mut r = r.clone();
    for k in ["cpu_pct", "io_read_bytes_per_s", "io_write_bytes_per_s"] {
        r.as_object_mut().unwrap().remove(k);
    }
    r
}

#[test]
fn cgroups_answer_from_fixture_trees() {
    let id2 = "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c";
    let id1 = "3f2a9c1be0d4a7f6c5b8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4";
    let trees = [
        (
            "cgroup-v2",
            vec![
                json!({"path":format!("/system.slice/docker-{id1}.scope"),"kind":"container",
                       "name":"3f2a9c1be0d4","mem_bytes":412381184u64,"mem_max_bytes":536870912u64,"pids":12}),
                json!({"path":"/system.slice/nginx.service","kind":"service","name":"nginx.service",
                       "mem_bytes":25714688u64,"mem_max_bytes":null,"pids":3}),
                json!({"path":"/user.slice/user-1000.slice/session-2.scope","kind":"scope",
                       "name":"session-2.scope","mem_bytes":2198302720u64,"mem_max_bytes":null,"pids":4}),
            ],
            [true, true, true],
        ),
        (
            "cgroup-v1",
            vec![
                json!({"path":format!("/docker/{id2}"),"kind":"container","name":"9b8c7d6e5f4a",
                       "mem_bytes":412381184u64,"mem_max_bytes":536870912u64,"pids":2}),
                json!({"path":"/sandbox/job-7","kind":"other","name":"job-7",
                       "mem_bytes":1350475776u64,"mem_max_bytes":4294967296u64,"pids":1}),
                json!({"path":"/system.slice/nginx.service","kind":"service","name":"nginx.service",
                       "mem_bytes":25714688u64,"mem_max_bytes":null,"pids":3}),
            ],
            // (has CPU, has I/O) per row: sandbox/job-7 is only in memory
            [true, false, true],
        ),
    ];
    for (tree, want, measured) in trees {
        let root = format!("{}/tests/fixtures/{tree}", env!("CARGO_MANIFEST_DIR"));
        let agent = Agent::start(
            &[],
            &[
                ("SOCKAGENT_ROOT", &root),
                ("SOCKTOP_AGENT_PROCESSES_TTL_MS", "0"),
            ],
        );
        let mut ws = agent.ws();
        let first = json(&ask(&mut ws, r#"{"type":"cgroups"}"#));
        let got: Vec<Value> = rows(&first).iter().map(still).collect();
        assert_eq!(got, want, "{tree}: {first}");
        // first sample: no rates yet
        for r in rows(&first) {
            assert!(
                r["cpu_pct"].is_null() && r["io_read_bytes_per_s"].is_null(),
                "{r}"
            );
        }
        // the TTL is never under 100 ms (a CPU window): later, the legacy form
        std::thread::sleep(Duration::from_millis(150));
        let second = json(&ask(&mut ws, "get_cgroups"));
        let got: Vec<Value> = rows(&second).iter().map(still).collect();
        assert_eq!(got, want, "{tree}");
        for (r, &has) in rows(&second).iter().zip(&measured) {
            // files that do not change: 0 since the previous sample
            let zero = if has { json!(0.0) } else { Value::Null };
            assert_eq!(r["cpu_pct"], zero, "{r}");
            assert_eq!(r["io_read_bytes_per_s"], zero, "{r}");
            assert_eq!(r["io_write_bytes_per_s"], zero, "{r}");
        }
    }
}

/// Where this machine's cgroups are, as the agent decides it.
enum Layout {
    V2(PathBuf),
    V1 { cpuacct: PathBuf, memory: PathBuf },
}

fn layout() -> Option<Layout> {
    let ours = |p: &str| {
        std::fs::read_to_string(format!("{p}/cgroup.controllers")).is_ok_and(|c| {
            c.split_whitespace()
                .any(|c| ["cpu", "memory", "io", "pids"].contains(&c))
        })
    };
    for p in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if ours(p) {
            return Some(Layout::V2(p.into()));
        }
    }
    let cpuacct = ["/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cpuacct.usage").exists())?;
    Some(Layout::V1 {
        cpuacct,
        memory: PathBuf::from("/sys/fs/cgroup/memory"),
    })
}

/// The busy child and the cgroup directories: killed and removed on drop,
/// pass or fail.
struct Made {
    child: Option<std::process::Child>,
    dirs: Vec<PathBuf>,
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.dirs.iter().rev() {
            // the kernel may take a moment to see the cgroup empty
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Skips with the reason, or fails under CI.
fn cannot(why: String) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why} (CI runs as root and must be able to)");
    }
    eprintln!("skipped: {why}");
}

fn cpus() -> usize {
    std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
}

fn read_u64(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_cgroup_made_here_shows_its_busy_child() {
    let Some(layout) = layout() else {
        return cannot("no cgroup filesystem with cpu or memory controllers".into());
    };
    let name = format!("sockagent-test-{}", std::process::id());
    let (dirs, mem_file) = match &layout {
        Layout::V2(root) => (
            vec![root.join(&name)],
            root.join(&name).join("memory.current"),
        ),
        Layout::V1 { cpuacct, memory } => (
            vec![cpuacct.join(&name), memory.join(&name)],
            memory.join(&name).join("memory.usage_in_bytes"),
        ),
    };
    let mut made = Made {
        child: None,
        dirs: Vec::new(),
    };
    for d in &dirs {
        if let Err(e) = std::fs::create_dir(d) {
            return cannot(format!("cannot make {}: {e}", d.display()));
        }
        made.dirs.push(d.clone());
    }
    // Memory is charged where it is allocated (v1 does not move charges
    // with a task), so the child allocates ~8 MB once it has been moved.
    let child = std::process::Command::new("sh")
        .args([
            "-c",
            "read go; x=$(head -c 8000000 /dev/zero | tr '\\0' a); while :; do :; done",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    made.child = Some(child);
    for d in &dirs {
        if let Err(e) = std::fs::write(d.join("cgroup.procs"), pid.to_string()) {
            return cannot(format!("cannot move {pid} into {}: {e}", d.display()));
        }
    }
    {
        use std::io::Write;
        let stdin = made.child.as_mut().and_then(|c| c.stdin.as_mut()).unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    let agent = Agent::start(&[], &[("SOCKTOP_AGENT_PROCESSES_TTL_MS", "100")]);
    let mut ws = agent.ws();
    std::thread::sleep(Duration::from_secs(2));
    let path = format!("/{name}");
    let find = |v: &Value| rows(v).iter().find(|r| r["path"] == path.as_str()).cloned();
    let first = json(&ask(&mut ws, r#"{"type":"cgroups"}"#));
    assert!(find(&first).is_some(), "{path} not in {first}");
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let second = json(&ask(&mut ws, "get_cgroups"));
    let mem_now = read_u64(&mem_file);
    let asked_in = t.elapsed();
    let row = find(&second).unwrap_or_else(|| panic!("{path} not in {second}"));
    eprintln!("{row} (the controller: {mem_now})");
    assert_eq!(row["kind"], "other", "{row}");
    assert_eq!(row["name"], name.as_str(), "{row}");
    assert!(row["pids"].as_u64().unwrap() >= 1, "{row}");
    let one_cpu = 100.0 / cpus() as f64;
    let pct = row["cpu_pct"].as_f64().unwrap_or_else(|| panic!("{row}"));
    assert!(
        pct > 0.4 * one_cpu && pct <= one_cpu * 1.1,
        "cpu_pct {pct} for one busy child on {} CPUs: {row}",
        cpus()
    );
    let mem = row["mem_bytes"].as_u64().unwrap_or_else(|| panic!("{row}"));
    assert!(
        mem_now >= 4 << 20,
        "the child's 8 MB are not charged: {mem_now}"
    );
    let drift = mem.abs_diff(mem_now);
    assert!(
        drift <= (256 << 10).max(mem_now / 20),
        "mem_bytes {mem}, the controller's file {mem_now} ({asked_in:?} later)"
    );
    drop(made);
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
