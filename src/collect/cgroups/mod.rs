//! Services and containers: every cgroup that holds processes, with what
//! it uses (CPU share since the previous sample, memory and its limit, I/O
//! rates, task count).
//!
//! Two layouts, found once (and looked for again each re-probe epoch
//! while there is none):
//!
//! - **v2**: the unified hierarchy at `sys/fs/cgroup`, or
//!   `sys/fs/cgroup/unified` on a hybrid host, when its root's
//!   `cgroup.controllers` names any of `cpu`, `memory`, `io`, `pids` (a
//!   hybrid host may give v2 `hugetlb` alone): `cpu.stat` (usage_usec),
//!   `memory.current`, `memory.max`, `io.stat`, `pids.current`.
//! - **v1**, where v2 has none of those (or there is no v2): the cgroup set
//!   is the union of the paths in the `cpuacct` and `memory` hierarchies;
//!   `cpuacct.usage` (ns), `memory.usage_in_bytes`,
//!   `memory.limit_in_bytes`, `blkio/…/blkio.throttle.io_service_bytes`,
//!   `pids/…/pids.current` are read at the same path.
//!
//! A cgroup is listed when its `cgroup.procs` (in any walked hierarchy) is
//! not empty; the root cgroup, which is the whole machine, is not. The
//! directories are listed again on every sample (`getdents64` on kept
//! directory fds, with `d_type`), so new and removed cgroups show at once;
//! each cgroup's files stay open between samples and are re-read with
//! `pread`, up to a budget of kept fds (`MAX_KEPT_FILES`, and no more than
//! the share `Collectors` gives), past which they are opened, read and
//! closed. A file a cgroup does not have (a controller not enabled there)
//! is its field's null, and is looked for again every `RETRY_ABSENT`
//! samples. A cgroup that vanishes between the listing and the reading is
//! skipped.
//!
//! Rates (`cpu_pct`, I/O per second) are over the time since the previous
//! sample that saw the cgroup: null on the first; counters that went
//! backwards (a reset) give 0, never a wrap. `cpu_pct` is the share of the
//! whole machine (100 = every CPU busy), measured against `/proc/stat`'s
//! total like the process scan.

use crate::collect::error::Result;
use crate::collect::fs::Root;
use crate::families::{Family, Sink, Value};
use std::collections::HashMap;
use std::time::Instant;

mod layout;
mod parse;
mod walk;

use layout::Layout;
pub use parse::{
    classify, parse_blkio_service_bytes, parse_cpu_stat, parse_io_stat, parse_memory_limit_v1,
    parse_memory_max, CgroupKind,
};
use walk::{read_cgroup, CgroupState, Fds, Io, Queue};

/// Most fds the cgroup collector keeps open (directories and files
/// together): 1 024 covers ~150 busy cgroups on v2 (~7 each); a host with
/// more pays an open/close per file past it.
pub const MAX_KEPT_FILES: usize = 1024;
/// Most cgroups walked per sample: past it the rest of the tree is not
/// looked at (logged once), so a runaway tree cannot eat the agent's memory.
pub const MAX_CGROUPS: usize = 20_000;
/// A file a cgroup lacked is looked for again after this many samples
/// (systemd enables a controller on a unit when a limit is set).
pub const RETRY_ABSENT: u64 = 16;

/// One listed cgroup, as the last sample found it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupRow {
    /// From the hierarchy's root: `/system.slice/nginx.service`.
    pub path: String,
    pub kind: CgroupKind,
    pub name: String,
    /// Share of the whole machine since the previous sample, 0–100.
    pub cpu_pct: Option<f32>,
    /// CPU time used, all time (nanoseconds).
    pub cpu_ns: Option<u64>,
    pub mem_bytes: Option<u64>,
    /// `None`: no limit, or none readable.
    pub mem_max_bytes: Option<u64>,
    pub io_read_bytes_per_s: Option<f64>,
    pub io_write_bytes_per_s: Option<f64>,
    /// Bytes read and written, all time.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    pub pids: Option<u64>,
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Owns the layout, each cgroup's kept fds and counters, and the rows.
pub struct CgroupScanner {
    layout: Option<Layout>,
    /// The re-probe epoch the layout was last looked for in (while there is none).
    probed: Option<u64>,
    entries: HashMap<String, CgroupState>,
    generation: u64,
    fds: Fds,
    /// Paths to list, reused between samples.
    queue: Queue,
    warned_limit: bool,
    pub rows: Vec<CgroupRow>,
}

impl CgroupScanner {
    /// `fd_budget`: how many fds it may keep open (at most `MAX_KEPT_FILES`).
    pub fn new(fd_budget: usize) -> Self {
        CgroupScanner {
            layout: None,
            probed: None,
            entries: HashMap::new(),
            generation: 0,
            fds: Fds {
                kept: 0,
                budget: fd_budget.min(MAX_KEPT_FILES),
                path: Vec::new(),
                buf: Vec::with_capacity(4096),
            },
            queue: Queue::default(),
            warned_limit: false,
            rows: Vec::new(),
        }
    }

    /// The layout found (`None`: no cgroup filesystem, or not looked for yet).
    pub fn version(&self) -> Option<Version> {
        self.layout.as_ref().map(|l| l.version)
    }

    /// How many fds are kept open.
    pub fn kept_files(&self) -> usize {
        self.fds.kept
    }

    /// One sample: lists every cgroup, reads those that hold processes
    /// into `self.rows` (sorted by path). `total_jiffies` is `/proc/stat`'s
    /// aggregate total read just before, `hz` its unit. Fails only when a
    /// hierarchy's root cannot be listed (then the layout is looked for
    /// again on the next sample). With no layout, it is looked for again
    /// when `epoch` is new.
    pub fn scan(
        &mut self,
        root: &Root,
        now: Instant,
        epoch: u64,
        total_jiffies: u64,
        hz: u64,
    ) -> Result<()> {
        if self.layout.is_none() {
            if !crate::collect::rediscover::due(&mut self.probed, epoch) {
                self.rows.clear();
                return Ok(());
            }
            self.layout = Layout::detect(root, &mut self.fds.buf);
            match &self.layout {
                Some(l) => log::debug!("cgroups: {:?}", l.version),
                None => log::debug!("cgroups: no cgroup filesystem under {:?}", root.base()),
            }
        }
        let Some(layout) = self.layout.take() else {
            self.rows.clear();
            return Ok(());
        };
        let r = self.scan_with(&layout, now, total_jiffies, hz);
        match &r {
            Ok(()) => self.layout = Some(layout),
            Err(_) => {
                self.entries.clear();
                self.fds.kept = 0;
                self.rows.clear();
                self.probed = None;
            }
        }
        r
    }

    fn scan_with(
        &mut self,
        layout: &Layout,
        now: Instant,
        total_jiffies: u64,
        hz: u64,
    ) -> Result<()> {
        self.generation += 1;
        let gen = self.generation;
        let mut len = 0;
        for h in 0..layout.walked {
            self.walk(layout, h, gen, &mut len)?;
        }
        if len >= MAX_CGROUPS && !self.warned_limit {
            self.warned_limit = true;
            log::warn!("cgroups: more than {MAX_CGROUPS}; the rest are not listed");
        }
        let mut io = Io::new(layout, gen, &mut self.fds);
        let mut n = 0;
        for (key, e) in self.entries.iter_mut() {
            if e.seen != gen || e.holds != gen {
                continue;
            }
            let Some(v) = read_cgroup(&mut io, key, e, now, total_jiffies, hz) else {
                continue;
            };
            if self.rows.len() <= n {
                self.rows.push(CgroupRow::default());
            }
            let Some(row) = self.rows.get_mut(n) else {
                break;
            };
            n += 1;
            let (kind, name) = classify(key);
            row.path.clear();
            row.path.push('/');
            row.path.push_str(key);
            row.kind = kind;
            row.name.clear();
            row.name.push_str(name);
            row.cpu_pct = v.cpu_pct;
            row.cpu_ns = v.cpu_ns;
            row.mem_bytes = v.mem_bytes;
            row.mem_max_bytes = v.mem_max_bytes;
            row.io_read_bytes_per_s = v.io_rate.map(|r| r.0);
            row.io_write_bytes_per_s = v.io_rate.map(|r| r.1);
            row.io_read_bytes = v.io.map(|r| r.0);
            row.io_write_bytes = v.io.map(|r| r.1);
            row.pids = v.pids;
        }
        self.rows.truncate(n);
        self.rows.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        // Forget cgroups that are gone, closing their fds.
        let mut closed = 0;
        self.entries.retain(|_, e| {
            let keep = e.seen == gen;
            if !keep {
                closed += e.open_fds();
            }
            keep
        });
        self.fds.kept = self.fds.kept.saturating_sub(closed);
        Ok(())
    }
}

crate::families::declare! {
    pub CPU_SECONDS = counter("sockagent_cgroup_cpu_seconds_total", "CPU time used by the cgroup and its descendants, the top cgroups by CPU since the previous sample (SOCKAGENT_PROM_TOP_CGROUPS).");
    pub MEMORY = gauge("sockagent_cgroup_memory_bytes", "Memory charged to the same cgroups (v2 memory.current, v1 memory.usage_in_bytes).");
    /// The limit `ServiceMemoryNearLimit` divides `MEMORY` by.
    pub MEMORY_MAX = gauge("sockagent_cgroup_memory_max_bytes", "Memory limit of the same cgroups (v2 memory.max, v1 memory.limit_in_bytes); only those that have one.");
    pub IO_BYTES = counter("sockagent_cgroup_io_bytes_total", "Bytes the same cgroups read and wrote on block devices.");
}

/// Most CPU since the previous sample first, then most CPU time in all.
fn by_cpu(a: &&CgroupRow, b: &&CgroupRow) -> std::cmp::Ordering {
    let pct = |r: &CgroupRow| r.cpu_pct.unwrap_or(-1.0);
    pct(b)
        .total_cmp(&pct(a))
        .then(b.cpu_ns.cmp(&a.cpu_ns))
        .then(a.path.cmp(&b.path))
}

/// The `n` cgroups that used most CPU, labelled `cgroup` (its path),
/// `kind` and `name` as in the `cgroups` answer; nothing where the host
/// has no cgroups.
pub fn describe_top(rows: &[CgroupRow], n: usize, out: &mut dyn Sink) {
    if rows.is_empty() || n == 0 {
        return;
    }
    let top = super::top::top_by(rows, n, by_cpu);
    fn labels(r: &CgroupRow) -> [(&'static str, &str); 3] {
        [
            ("cgroup", r.path.as_str()),
            ("kind", r.kind.as_str()),
            ("name", r.name.as_str()),
        ]
    }
    type Pick = fn(&CgroupRow) -> Option<Value>;
    let families: [(Family, Pick); 3] = [
        (CPU_SECONDS, |r| {
            r.cpu_ns.map(|ns| Value::F(ns as f64 / 1e9))
        }),
        (MEMORY, |r| r.mem_bytes.map(Value::U)),
        (MEMORY_MAX, |r| r.mem_max_bytes.map(Value::U)),
    ];
    for (family, pick) in families {
        family.open(out);
        for r in &top {
            if let Some(v) = pick(r) {
                out.sample(&labels(r), v);
            }
        }
    }
    IO_BYTES.open(out);
    for r in &top {
        let [c, k, nm] = labels(r);
        for (dir, v) in [("read", r.io_read_bytes), ("write", r.io_write_bytes)] {
            if let Some(v) = v {
                out.sample(&[c, ("direction", dir), k, nm], Value::U(v));
            }
        }
    }
}

/// The cgroups collector: the scanner and when it last ran.
pub struct Cgroups {
    pub scanner: CgroupScanner,
    pub at: Option<Instant>,
}

impl crate::collect::collector::Collector for Cgroups {
    const NAME: &'static str = "cgroups";
    /// The layout is looked for again on its clock.
    const REPROBE: Option<std::time::Duration> = Some(crate::collect::rediscover::REDISCOVER);

    /// Samples every cgroup that holds processes (services, containers);
    /// CPU shares and I/O rates are over the time since the previous sample.
    fn collect(&mut self, cx: &mut crate::collect::collector::Cx, now: Instant) -> Result<()> {
        let total = cx.stat_now()?.all.total;
        self.scanner.scan(
            &cx.s.root,
            now,
            cx.epoch,
            total,
            crate::collect::clock_ticks(),
        )?;
        self.at = Some(now);
        Ok(())
    }

    fn taken(&self) -> Option<Instant> {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixture(tree: &str) -> Root {
        Root::fixture(tree)
    }

    /// (path, kind, name, cpu_ns, mem, mem_max, io, pids) of each row.
    type Expect = (
        &'static str,
        CgroupKind,
        &'static str,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<(u64, u64)>,
        Option<u64>,
    );

    /// Two samples through `Collectors`, then the scanner alone with no
    /// fd budget (open, read, close): the rows hold what the files hold.
    fn check_tree(tree: &str, version: Version, want: &[Expect]) {
        use crate::collect::{Collectors, Settings};
        let mut c = Collectors::new(
            Settings {
                root: fixture(tree),
                ..Settings::default()
            },
            64,
        );
        for sample in 0..2 {
            c.collect(|k| &mut k.cgroups, Instant::now()).unwrap();
            let rows = c.cgroups().1.to_vec();
            let got: Vec<Expect> = rows
                .iter()
                .zip(want)
                .map(|(r, w)| {
                    (
                        w.0,
                        r.kind,
                        w.2,
                        r.cpu_ns,
                        r.mem_bytes,
                        r.mem_max_bytes,
                        r.io_read_bytes.zip(r.io_write_bytes),
                        r.pids,
                    )
                })
                .collect();
            let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
            let want_paths: Vec<&str> = want.iter().map(|w| w.0).collect();
            assert_eq!(paths, want_paths, "{tree}, sample {sample}");
            let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
            let want_names: Vec<&str> = want.iter().map(|w| w.2).collect();
            assert_eq!(names, want_names);
            assert_eq!(got, want, "{tree}, sample {sample}");
            for r in &rows {
                // the files do not change: no CPU, no I/O since the first sample
                let (cpu, io) = if sample == 0 {
                    (None, None)
                } else {
                    (r.cpu_ns.map(|_| 0.0), r.io_read_bytes.map(|_| 0.0))
                };
                assert_eq!(r.cpu_pct, cpu, "{}", r.path);
                assert_eq!(r.io_read_bytes_per_s, io, "{}", r.path);
                assert_eq!(r.io_write_bytes_per_s, io, "{}", r.path);
            }
        }
        let mut s = CgroupScanner::new(0);
        s.scan(&fixture(tree), Instant::now(), 1, 0, 100).unwrap();
        assert_eq!(s.version(), Some(version));
        assert_eq!(s.kept_files(), 0);
        assert_eq!(
            &s.rows,
            &c.cgroups()
                .1
                .iter()
                .map(|r| CgroupRow {
                    cpu_pct: None,
                    io_read_bytes_per_s: None,
                    io_write_bytes_per_s: None,
                    ..r.clone()
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn v2_fixture_gives_its_files_values() {
        check_tree(
            "cgroup-v2",
            Version::V2,
            &[
                (
                    "/system.slice/docker-3f2a9c1be0d4a7f6c5b8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4.scope",
                    CgroupKind::Container,
                    "3f2a9c1be0d4",
                    Some(730_512_004_000),
                    Some(412_381_184),
                    Some(536_870_912),
                    Some((73_400_320, 209_715_200)),
                    Some(12),
                ),
                (
                    "/system.slice/nginx.service",
                    CgroupKind::Service,
                    "nginx.service",
                    Some(48_213_377_000),
                    Some(25_714_688),
                    None,
                    Some((10_485_760 + 2_097_152, 4096 + 1_048_576)),
                    Some(3),
                ),
                (
                    "/user.slice/user-1000.slice/session-2.scope",
                    CgroupKind::Scope,
                    "session-2.scope",
                    Some(5_120_004_311_000),
                    Some(2_198_302_720),
                    None,
                    Some((0, 0)),
                    Some(4), // no pids.current: the lines of cgroup.procs
                ),
            ],
        );
    }

    #[test]
    fn v1_fixture_gives_its_files_values() {
        check_tree(
            "cgroup-v1",
            Version::V1,
            &[
                (
                    "/docker/9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c",
                    CgroupKind::Container,
                    "9b8c7d6e5f4a",
                    Some(730_512_004_000),
                    Some(412_381_184),
                    Some(536_870_912),
                    Some((73_400_320, 209_715_200)),
                    Some(2), // not in the pids hierarchy
                ),
                (
                    "/sandbox/job-7",
                    CgroupKind::Other,
                    "job-7",
                    None, // only in the memory hierarchy
                    Some(1_350_475_776),
                    Some(4_294_967_296),
                    None,
                    Some(1),
                ),
                (
                    "/system.slice/nginx.service",
                    CgroupKind::Service,
                    "nginx.service",
                    Some(48_213_377_123),
                    Some(25_714_688),
                    None, // 9223372036854771712: no limit
                    Some((10_485_760 + 2_097_152, 4096 + 1_048_576)),
                    Some(3),
                ),
            ],
        );
    }

    #[test]
    fn no_cgroup_filesystem_is_an_empty_list() {
        let mut s = CgroupScanner::new(16);
        s.scan(&fixture("h200-vm"), Instant::now(), 1, 0, 100)
            .unwrap();
        assert_eq!(s.version(), None);
        assert!(s.rows.is_empty());
    }

    /// Rates over a window: counters moved between two samples, one of
    /// them backwards (a reset: 0, not a wrap); a cgroup removed between
    /// samples is gone from the next.
    #[test]
    fn rates_resets_and_removal() {
        let dir = crate::scratch::Scratch::new("cg");
        for d in ["a", "b"] {
            let f = |file: &str| format!("sys/fs/cgroup/{d}.service/{file}");
            dir.write(&f("cgroup.procs"), "7\n");
            dir.write(&f("cpu.stat"), "usage_usec 1000000\n");
            dir.write(&f("io.stat"), "8:0 rbytes=1000 wbytes=5000\n");
        }
        dir.write("sys/fs/cgroup/cgroup.controllers", "cpu io\n");
        let root = Root::new(dir.path());
        let mut s = CgroupScanner::new(4);
        let t0 = Instant::now();
        s.scan(&root, t0, 1, 10_000, 100).unwrap();
        assert_eq!(s.rows.len(), 2);
        // a: 0.5 s of CPU over 200 jiffies at 100 Hz (1 s on 2 CPUs): 25 %
        dir.write("sys/fs/cgroup/a.service/cpu.stat", "usage_usec 1500000\n");
        dir.write(
            "sys/fs/cgroup/a.service/io.stat",
            "8:0 rbytes=3000 wbytes=4000\n",
        );
        s.scan(&root, t0 + Duration::from_secs(2), 1, 10_200, 100)
            .unwrap();
        let r = &s.rows[0];
        assert_eq!(r.path, "/a.service");
        assert_eq!(r.cpu_pct, Some(25.0));
        assert_eq!(r.io_read_bytes_per_s, Some(1000.0));
        assert_eq!(r.io_write_bytes_per_s, Some(0.0), "a reset is 0");
        std::fs::remove_dir_all(dir.path().join("sys/fs/cgroup/b.service")).unwrap();
        s.scan(&root, t0 + Duration::from_secs(3), 1, 10_300, 100)
            .unwrap();
        let paths: Vec<&str> = s.rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/a.service"]);
        assert!(s.kept_files() <= 4);
    }
}
