//! What one GPU sample costs through NVML: the calls the agent makes per
//! GPU (handle, name, v2 memory, utilisation, temperature), on the event
//! loop, once per `gpu::TTL` at most.
//!
//! `cargo bench --bench gpu_sample` runs it on the stand-in NVML (the
//! wrapper's and the calls' own overhead; no driver behind them). On a host
//! with the NVIDIA driver, `SOCKAGENT_NVML_LIB=libnvidia-ml.so.1 cargo bench
//! --bench gpu_sample` gives the real figure.

use sockagent::collect::fs::Root;
use sockagent::collect::gpu::Gpus;
use sockagent::collect::Settings;
use std::time::{Duration, Instant};

#[path = "../tests/common/standin.rs"]
mod standin;

/// Samples timed (after a warm-up of a tenth as many).
const ROUNDS: u32 = 20_000;

fn gpus(lib: Option<std::ffi::OsString>) -> Gpus {
    // No sysfs GPUs under this root: only NVML is measured.
    let s = Settings {
        root: Root::new("/nonexistent"),
        nvml_lib: lib,
        ..Settings::default()
    };
    Gpus::new(&s, 0)
}

fn main() {
    let (lib, what) = match std::env::var_os("SOCKAGENT_NVML_LIB") {
        Some(l) => (l, "SOCKAGENT_NVML_LIB"),
        None => {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nvml-standin");
            (standin::standin_nvml(&dir).into_os_string(), "stand-in")
        }
    };
    let t = Instant::now();
    let mut g = gpus(Some(lib.clone()));
    let load = t.elapsed();
    let n = g.sample(Instant::now()).len();
    assert!(n > 0, "{lib:?} gave no GPU");
    for _ in 0..ROUNDS / 10 {
        std::hint::black_box(g.sample(Instant::now()));
    }
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(g.sample(Instant::now()));
    }
    let per = t.elapsed() / ROUNDS;
    let t = Instant::now();
    let absent = gpus(Some("/nonexistent/libnvidia-ml.so.1".into()));
    let miss = t.elapsed();
    drop(absent);
    println!("NVML library: {} ({what})", lib.to_string_lossy());
    println!("load + nvmlInit + first probe: {}", fmt(load));
    println!(
        "one sample, {n} GPU(s): {} ({} per GPU), mean of {ROUNDS}",
        fmt(per),
        fmt(per / n as u32)
    );
    println!(
        "probe with the library absent (a failed dlopen): {}",
        fmt(miss)
    );
}

fn fmt(d: Duration) -> String {
    format!("{:.2} µs", d.as_nanos() as f64 / 1000.0)
}
