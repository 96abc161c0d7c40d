//! The physical floor of a process scan: list /proc with getdents64 on a kept
//! directory fd and pread every pid's kept-open /proc/PID/stat at offset 0,
//! nothing else (no parsing, no rows). Prints that cost, our scanner's cost
//! and the whole `processes` answer's (scan, protobuf, gzip: what a
//! `get_processes` costs the agent, caches off) in the same run, and the
//! ratios. `cargo bench --bench floor`; `FLOOR_SPAWN=2900` first starts
//! that many sleeping processes (a busy server's ~3 000) and stops them
//! after.

use sockagent::answers::{Answers, Ttls};
use sockagent::collect::fs::{pid_of, pread_all, KeptDir, Root};
use sockagent::collect::processes::ProcScanner;
use sockagent::collect::{Collectors, Settings};
use std::collections::HashMap;
use std::fs::File;
use std::time::Instant;

fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn floor_scan(
    dir: &mut KeptDir,
    fds: &mut HashMap<u32, File>,
    pids: &mut Vec<u32>,
    buf: &mut Vec<u8>,
) -> usize {
    pids.clear();
    dir.for_each(|n| pids.extend(pid_of(n))).unwrap();
    let mut n = 0;
    for &pid in pids.iter() {
        let f = match fds.get(&pid) {
            Some(f) => f,
            None => match File::open(format!("/proc/{pid}/stat")) {
                Ok(f) => fds.entry(pid).or_insert(f),
                Err(_) => continue,
            },
        };
        if pread_all(f, buf).is_ok() {
            n += 1;
        }
    }
    n
}

/// `n` sleeping processes, killed when dropped.
struct Sleepers(Vec<std::process::Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_sleepers() -> Sleepers {
    let n: usize = std::env::var("FLOOR_SPAWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Sleepers(
        (0..n)
            .filter_map(|_| std::process::Command::new("sleep").arg("600").spawn().ok())
            .collect(),
    )
}

fn main() {
    let _sleepers = spawn_sleepers();
    let iters: u32 = std::env::var("FLOOR_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let root = Root::default();
    let mut dir = KeptDir::new(&root, "proc");
    let (mut fds, mut pids, mut buf) = (HashMap::new(), Vec::new(), Vec::with_capacity(1024));
    let mut scanner = ProcScanner::new(4096, 4096);
    // warm both: open every fd once
    let n = floor_scan(&mut dir, &mut fds, &mut pids, &mut buf);
    scanner.scan(&root, 1, 0).unwrap();
    // alternate rounds so drift hits both alike
    let no_cache = Ttls {
        metrics: std::time::Duration::ZERO,
        disks: std::time::Duration::ZERO,
        processes: std::time::Duration::ZERO,
    };
    let settings = Settings {
        gpu_enabled: false,
        ..Settings::default()
    };
    let mut answers = Answers::new(Collectors::new(settings, 4096), no_cache);
    let _ = answers.processes(Instant::now());
    let (mut floor_cpu, mut ours_cpu, mut answer_cpu) = (0.0, 0.0, 0.0);
    let rounds = 10;
    for r in 0..rounds {
        let t = cpu_time();
        for _ in 0..iters / rounds {
            floor_scan(&mut dir, &mut fds, &mut pids, &mut buf);
        }
        floor_cpu += cpu_time() - t;
        let t = cpu_time();
        for i in 0..iters / rounds {
            // a new epoch each scan: /proc is listed every time, as the floor does
            let tick = u64::from(2 + r * iters + i);
            scanner.scan(&root, tick, tick).unwrap();
        }
        ours_cpu += cpu_time() - t;
        let t = cpu_time();
        for _ in 0..iters / rounds {
            let _ = answers.processes(Instant::now());
        }
        answer_cpu += cpu_time() - t;
    }
    let per = |c: f64| c / f64::from(iters / rounds * rounds) * 1e6;
    println!("processes: {n}");
    println!(
        "floor (getdents + pread of kept fds): {:.1} µs/scan, {:.2} µs/pid",
        per(floor_cpu),
        per(floor_cpu) / n as f64
    );
    println!(
        "sockagent ProcScanner::scan:          {:.1} µs/scan, {:.2} µs/pid",
        per(ours_cpu),
        per(ours_cpu) / n as f64
    );
    println!(
        "sockagent processes answer (scan+protobuf+gzip): {:.1} µs/answer",
        per(answer_cpu)
    );
    println!("ratio scan/floor: {:.2}", ours_cpu / floor_cpu);
    println!("ratio answer/floor: {:.2}", answer_cpu / floor_cpu);
}
