//! One bench per collector, on the live /proc and on captured fixture trees.
//! `cargo bench --bench collectors`

use sockagent::collect::fs::Root;
use sockagent::collect::processes::ProcScanner;
use sockagent::collect::{self, cpu, process_detail, Collectors, Settings};
use sockagent::protocol::{gzip::Gzip, pb};
use std::time::{Duration, Instant};

fn main() {
    divan::main();
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn uncached(root: Root) -> Collectors {
    Collectors::new(
        Settings {
            root,
            metrics_ttl: Duration::ZERO,
            disks_ttl: Duration::ZERO,
            processes_ttl: Duration::ZERO,
            ..Settings::default()
        },
        4096,
    )
}

/// cpu + memory + net (+ temperature, hostname, process count): one metrics answer.
#[divan::bench(args = ["live", "h200-vm"])]
fn metrics_sample(b: divan::Bencher, tree: &str) {
    let root = if tree == "live" {
        Root::default()
    } else {
        Root::new(format!("{FIXTURES}{tree}"))
    };
    let mut c = uncached(root);
    b.bench_local(|| c.metrics_answer(Instant::now()));
}

#[divan::bench]
fn disks(b: divan::Bencher) {
    let mut c = uncached(Root::default());
    b.bench_local(|| c.disks_answer(Instant::now()));
}

/// The whole process scan (kept fds, pread), without encoding.
#[divan::bench(args = ["live", "prometheus-procfs"])]
fn process_scan(b: divan::Bencher, tree: &str) {
    let root = if tree == "live" {
        Root::default()
    } else {
        Root::new(format!("{FIXTURES}{tree}"))
    };
    let mut s = ProcScanner::new(4096, collect::page_size());
    let mut t = 0;
    b.bench_local(|| {
        t += 100;
        s.scan(&root, t)
    });
}

fn live_rows() -> Vec<collect::processes::ProcRow> {
    let mut s = ProcScanner::new(4096, collect::page_size());
    let mut buf = Vec::new();
    let mut st = cpu::StatSample::default();
    let _ = Root::default().read_into("proc/stat", &mut buf);
    let _ = cpu::parse_stat(&buf, &mut st);
    s.scan(&Root::default(), st.all.total).unwrap();
    s.rows
}

#[divan::bench]
fn protobuf_encode(b: divan::Bencher) {
    let rows = live_rows();
    let mut out = Vec::new();
    b.bench_local(|| pb::encode_processes(&rows, &mut out));
}

#[divan::bench]
fn gzip(b: divan::Bencher) {
    let rows = live_rows();
    let mut raw = Vec::new();
    pb::encode_processes(&rows, &mut raw);
    let mut g = Gzip::default();
    let mut out = Vec::new();
    b.bench_local(|| g.compress(&raw, &mut out));
}

#[divan::bench(args = ["live", "prometheus-procfs"])]
fn process_detail(b: divan::Bencher, tree: &str) {
    let (root, pid) = if tree == "live" {
        (Root::default(), std::process::id())
    } else {
        (Root::new(format!("{FIXTURES}{tree}")), 26231)
    };
    let clock = process_detail::Clock {
        ticks_per_sec: collect::clock_ticks(),
        page_size: collect::page_size(),
        btime: 0,
    };
    b.bench_local(|| process_detail::read_detail(&root, pid, &clock, true));
}
