//! One bench per collector, on the live /proc and on captured fixture trees.
//! `cargo bench --bench collectors`

use sockagent::answers::{Answers, Ttls};
use sockagent::collect::fs::Root;
use sockagent::collect::processes::ProcScanner;
use sockagent::collect::{self, cpu, process_detail, Collectors, Settings};
use sockagent::protocol::{gzip::Gzip, pb};
use std::time::{Duration, Instant};

fn main() {
    // The gzip bench's output sizes, which divan does not show.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.is_empty()
        || filters
            .iter()
            .any(|f| "gzip".contains(f.as_str()) || f.contains("gzip"))
    {
        println!("gzip output (bytes): input, gzipped");
        for which in ["1000-rows", "live", "metrics-body"] {
            let raw = gzip_input(which);
            let mut out = Vec::new();
            Gzip::default().compress(raw, &mut out);
            println!("  {which:<14} {:>7} {:>7}", raw.len(), out.len());
        }
    }
    divan::main();
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn uncached(root: Root) -> Answers {
    let no_cache = Ttls {
        metrics: Duration::ZERO,
        disks: Duration::ZERO,
        processes: Duration::ZERO,
    };
    let settings = Settings {
        root,
        ..Settings::default()
    };
    Answers::new(Collectors::new(settings, 4096), no_cache)
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
    b.bench_local(|| c.metrics(Instant::now()));
}

#[divan::bench]
fn disks(b: divan::Bencher) {
    let mut c = uncached(Root::default());
    b.bench_local(|| c.disks(Instant::now()));
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
        s.scan(&root, t, t)
    });
}

fn live_rows() -> Vec<collect::processes::ProcRow> {
    let mut s = ProcScanner::new(4096, collect::page_size());
    let mut buf = Vec::new();
    let mut st = cpu::StatSample::default();
    let _ = Root::default().read_into("proc/stat", &mut buf);
    let _ = cpu::parse_stat(&buf, &mut st);
    s.scan(&Root::default(), st.all.total, 0).unwrap();
    s.rows
}

#[divan::bench]
fn protobuf_encode(b: divan::Bencher) {
    let rows = live_rows();
    let mut out = Vec::new();
    b.bench_local(|| pb::encode_processes(&rows, &mut out));
}

/// What the agent gzips: this host's process frame; 1000 rows made from
/// this host's names (pids, CPU and memory varied, deterministic), the
/// size of a busy server's frame; this host's `/metrics` body (top 10
/// processes). Made once, so that every run compresses the same bytes.
fn gzip_input(which: &str) -> &'static [u8] {
    static INPUTS: std::sync::OnceLock<[Vec<u8>; 3]> = std::sync::OnceLock::new();
    let [live, big, prom] = INPUTS.get_or_init(|| {
        let mut c = uncached(Root::default());
        let prom = c.prometheus(Instant::now()).unwrap().into_bytes();
        [encode(&live_rows()), encode(&many_rows(1000)), prom]
    });
    match which {
        "live" => live,
        "1000-rows" => big,
        _ => prom,
    }
}

fn encode(rows: &[collect::processes::ProcRow]) -> Vec<u8> {
    let mut raw = Vec::new();
    pb::encode_processes(rows, &mut raw);
    raw
}

fn many_rows(n: usize) -> Vec<collect::processes::ProcRow> {
    let live = live_rows();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = &live[k % live.len()];
            collect::processes::ProcRow {
                pid: 1000 + 3 * k as u32 + (x % 3) as u32,
                name: r.name.clone(),
                cpu_usage: if x % 5 == 0 {
                    (x % 1000) as f32 / 100.0
                } else {
                    0.0
                },
                mem_bytes: if r.mem_bytes == 0 {
                    0
                } else {
                    (x % 50_000) * 4096
                },
            }
        })
        .collect()
}

/// The agent's `Gzip` (miniz_oxide level 1, its compressor kept and reset
/// per input, into a reused buffer).
#[divan::bench(args = ["live", "1000-rows", "metrics-body"])]
fn gzip(b: divan::Bencher, which: &str) {
    let raw = gzip_input(which);
    let mut g = Gzip::default();
    let mut out = Vec::new();
    b.counter(divan::counter::BytesCount::new(raw.len()))
        .bench_local(|| g.compress(raw, &mut out));
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
