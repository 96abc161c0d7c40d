//! `sockagent bench`: times every collector on this machine, so a board
//! owner can measure collector latency without a Rust toolchain.

use crate::answers::{Answers, Ttls};
use crate::collect::fs::Root;
use crate::collect::processes::ProcScanner;
use crate::collect::{self, cpu, process_detail, Collectors, Settings};
use crate::protocol::{gzip::Gzip, pb};
use std::io::Write;
use std::time::{Duration, Instant};

struct Timing {
    name: &'static str,
    micros: Vec<f64>,
    bytes: usize,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// Runs `f` `n` times, with a progress line on stderr past a second.
fn time(name: &'static str, n: u32, started: Instant, mut f: impl FnMut() -> usize) -> Timing {
    let mut micros = Vec::with_capacity(n as usize);
    let mut bytes = 0;
    let mut shown = false;
    for i in 0..n {
        let t = Instant::now();
        bytes = f();
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        if started.elapsed() > Duration::from_secs(1) && (i % 20 == 0 || i + 1 == n) {
            eprint!("\r{name}: {}/{n}   ", i + 1);
            let _ = std::io::stderr().flush();
            shown = true;
        }
    }
    if shown {
        eprint!("\r{:60}\r", "");
    }
    micros.sort_unstable_by(f64::total_cmp);
    Timing {
        name,
        micros,
        bytes,
    }
}

/// Prints p50/p99/max per collector and the size of each answer.
pub fn run(settings: Settings, iterations: u32) -> Result<(), String> {
    let n = iterations;
    let root = settings.root.clone();
    let started = Instant::now();
    let mut out = time_answers(settings, n, started);
    let pids = time_process_parts(&root, n, started, &mut out);
    out.push(time_detail(&root, n, started));
    print_table(&out, n, pids, &root);
    Ok(())
}

/// Times every whole answer, uncached, as a client would get it.
fn time_answers(settings: Settings, n: u32, started: Instant) -> Vec<Timing> {
    let no_cache = Ttls {
        metrics: Duration::ZERO,
        disks: Duration::ZERO,
        processes: Duration::ZERO,
    };
    let mut col = Answers::new(Collectors::new(settings, 4096), no_cache);
    let mut out = Vec::new();
    out.push(time("metrics (cpu+mem+net+temp)", n, started, || {
        col.metrics(Instant::now()).map_or(0, |a| a.size())
    }));
    out.push(time("disks", n, started, || {
        col.disks(Instant::now()).map_or(0, |a| a.size())
    }));
    out.push(time("processes (scan+protobuf+gzip)", n, started, || {
        col.processes(Instant::now()).map_or(0, |a| a.size())
    }));
    col.set_prom_top_n(10);
    out.push(time("/metrics scrape (top 10)", n, started, || {
        col.prometheus(Instant::now()).map_or(0, |s| s.len())
    }));
    col.set_prom_top_n(0);
    out.push(time("/metrics scrape (top 0)", n, started, || {
        col.prometheus(Instant::now()).map_or(0, |s| s.len())
    }));
    out
}

/// Times the parts of the process answer on their own (scan, protobuf,
/// gzip) and returns how many processes the scan found.
fn time_process_parts(root: &Root, n: u32, started: Instant, out: &mut Vec<Timing>) -> usize {
    let mut scanner = ProcScanner::new(4096, collect::page_size());
    let mut stat = Vec::new();
    let mut sample = cpu::StatSample::default();
    let mut tick = 0u64;
    let scan = time("  process scan", n, started, || {
        tick += 1;
        let _ = root.read_into("proc/stat", &mut stat);
        let _ = cpu::parse_stat(&stat, &mut sample);
        // a new epoch each time: every scan lists /proc
        let _ = scanner.scan(root, sample.all.total + tick, tick);
        scanner.rows.len()
    });
    let pids = scanner.rows.len();
    out.push(scan);
    let mut pb_buf = Vec::new();
    out.push(time("  protobuf encode", n, started, || {
        pb::encode_processes(&scanner.rows, &mut pb_buf);
        pb_buf.len()
    }));
    let mut gz = Gzip::default();
    let mut gz_buf = Vec::new();
    out.push(time("  gzip", n, started, || {
        gz.compress(&pb_buf, &mut gz_buf);
        gz_buf.len()
    }));
    pids
}

/// Times the detail of this process, encoded as JSON.
fn time_detail(root: &Root, n: u32, started: Instant) -> Timing {
    let clock = process_detail::Clock {
        ticks_per_sec: collect::clock_ticks(),
        page_size: collect::page_size(),
        btime: 0,
    };
    let me = std::process::id();
    time("process detail (own pid)", n, started, || {
        process_detail::read_detail(root, me, &clock, true)
            .ok()
            .and_then(|(d, _)| serde_json::to_string(&d).ok())
            .map_or(0, |s| s.len())
    })
}

fn print_table(out: &[Timing], n: u32, pids: usize, root: &Root) {
    println!(
        "sockagent bench: {n} runs each, {pids} processes, root {}",
        root.base().display()
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>10}",
        "collector", "p50 µs", "p99 µs", "max µs", "bytes"
    );
    for t in out {
        println!(
            "{:<32} {:>10.1} {:>10.1} {:>10.1} {:>10}",
            t.name,
            pct(&t.micros, 0.5),
            pct(&t.micros, 0.99),
            t.micros.last().copied().unwrap_or(0.0),
            t.bytes
        );
    }
    if let Some(s) = out.iter().find(|t| t.name == "  process scan") {
        let p50 = pct(&s.micros, 0.5);
        if p50 > 0.0 {
            println!(
                "process scan: {:.0} processes/s, {:.2} µs per process",
                pids as f64 / (p50 / 1e6),
                p50 / pids.max(1) as f64
            );
        }
    }
}
