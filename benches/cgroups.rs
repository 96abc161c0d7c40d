//! One cgroups sample (the cgroups collector through `Collectors::collect`: `/proc/stat`, the
//! walk, every listed cgroup's files) on generated v2 trees of 50 and
//! 1 000 services, and on this machine's cgroups.
//! `cargo bench --bench cgroups`
//!
//! The generated trees are regular files on the temp dir's filesystem,
//! not kernfs: the kernel's cgroup files cost more to generate, so the
//! live figure is the one to trust for a real host; the generated ones
//! show how the walk and the kept fds scale with the count.

use sockagent::collect::fs::Root;
use sockagent::collect::{Collectors, Settings};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() {
    divan::main();
}

/// A v2 systemd host with `n` services in `system.slice`, each with the
/// files a real one has (a few more than are read).
fn generate(n: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sockagent-bench-cg-{n}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = |p: &Path, s: &str| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    };
    w(
        &dir.join("proc/stat"),
        "cpu  1052311 2310 381290 40211845 10232 0 22817 0 0 0\ncpu0 1052311 2310 381290 40211845 10232 0 22817 0 0 0\nbtime 1795665180\n",
    );
    let cg = dir.join("sys/fs/cgroup");
    w(
        &cg.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    w(&cg.join("system.slice/cgroup.procs"), "");
    for i in 0..n {
        let d = cg.join(format!("system.slice/svc-{i}.service"));
        w(
            &d.join("cgroup.procs"),
            &format!("{}\n{}\n", 1000 + 2 * i, 1001 + 2 * i),
        );
        w(&d.join("cpu.stat"), &format!("usage_usec {}\nuser_usec 1\nsystem_usec 1\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n", i * 1000));
        w(&d.join("memory.current"), &format!("{}\n", 4096 * (i + 1)));
        w(&d.join("memory.max"), "max\n");
        w(
            &d.join("io.stat"),
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        w(&d.join("pids.current"), "2\n");
        for f in [
            "cgroup.type",
            "cgroup.events",
            "cgroup.stat",
            "cpu.weight",
            "cpu.max",
            "memory.high",
            "memory.low",
            "memory.stat",
            "memory.events",
            "io.max",
            "pids.max",
            "cgroup.threads",
        ] {
            w(&d.join(f), "0\n");
        }
    }
    dir
}

fn collectors(root: Root) -> Collectors {
    Collectors::new(
        Settings {
            root,
            ..Settings::default()
        },
        // main's budget on a default host is far larger; 4096 gives the
        // cgroups their most, MAX_KEPT_FILES
        4096,
    )
}

#[divan::bench(args = [50, 1000])]
fn cgroups_sample(b: divan::Bencher, n: usize) {
    let dir = generate(n);
    let mut c = collectors(Root::new(&dir));
    c.collect(|k| &mut k.cgroups, Instant::now()).unwrap();
    let rows = c.cgroups().1.len();
    assert_eq!(rows, n);
    b.bench_local(|| {
        c.collect(|k| &mut k.cgroups, Instant::now())
            .map(|()| c.cgroups().1.len())
            .unwrap_or(0)
    });
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[divan::bench]
fn cgroups_sample_live(b: divan::Bencher) {
    let mut c = collectors(Root::default());
    let _ = c.collect(|k| &mut k.cgroups, Instant::now());
    b.bench_local(|| {
        c.collect(|k| &mut k.cgroups, Instant::now())
            .map(|()| c.cgroups().1.len())
            .unwrap_or(0)
    });
}
