//! Collectors: the one owner of every baseline, kept file and sample
//! buffer. Every collector has one shape (`collector::Collector`): it reads
//! into buffers that live as long as the agent and leaves a typed sample
//! behind (`MetricsSample`, `DisksSample`, the process rows, the cgroup
//! rows, `SensorsSample`); `Collectors` runs each the same way (`collect`,
//! timed by `Kept`), and what is encoded from the samples, and when a
//! sample is fresh enough to reuse, is the answers module's business.
//! Nothing here encodes a frame (no protobuf, gzip or frame JSON) and
//! nothing here runs unless a request asks for it. Two ties to the wire
//! remain, on purpose: rows an answer sends as they are (an interface, a
//! disk, a GPU, a fan, a battery, a journal entry) derive `Serialize` with
//! their wire keys, so they are not copied into a second shape; and each
//! collector describes its own Prometheus families (`families`).

pub mod board;
pub mod cgroups;
pub mod collector;
pub mod cpu;
pub mod cpufreq;
pub mod disks;
pub mod diskstats;
pub mod error;
pub mod filesystems;
pub mod fs;
pub mod gpu;
pub mod host;
pub mod journal;
pub mod memory;
pub mod metrics;
pub mod mounts;
pub mod net;
pub mod num;
pub mod power;
pub mod pressure;
pub mod process_detail;
pub mod processes;
pub mod rate;
pub mod rediscover;
pub mod scrape_only;
pub mod sensors;
pub mod throttle;
pub mod timex;
pub mod top;
pub mod vmstat;

pub use collector::Settings;
use collector::{Collector, Cx, Kept, Timing};
pub use cpu::MIN_CPU_WINDOW;
use error::{CollectError, Result};
pub use filesystems::DisksSample;
use fs::{KeptFile, Root};
pub use host::{clock_ticks, epoch_ms, hostname, own_cpu, page_size, uname};
pub use metrics::MetricsSample;
pub use scrape_only::SensorsSample;
use std::time::Instant;

/// Every collector, each kept with its timing.
pub struct Kinds {
    pub metrics: Kept<metrics::Metrics>,
    pub disks: Kept<filesystems::Disks>,
    pub processes: Kept<processes::Processes>,
    /// Every hwmon temperature, the OOM kills, the clock (scrape only).
    pub sensors: Kept<SensorsSample>,
    pub cgroups: Kept<cgroups::Cgroups>,
}

impl Kinds {
    /// Each collector's name and timing, for `/metrics`.
    pub fn timings(&self) -> [(&'static str, &Timing); 5] {
        [
            self.metrics.timing(),
            self.disks.timing(),
            self.processes.timing(),
            self.sensors.timing(),
            self.cgroups.timing(),
        ]
    }
}

pub struct Collectors {
    cx: Cx,
    k: Kinds,
    statm_file: KeptFile,
    gpus: gpu::Gpus,
    detail: process_detail::DetailBaselines,
}

impl Collectors {
    /// `fd_budget`: how many `/proc/PID/stat` files the scan may keep open.
    pub fn new(s: Settings, fd_budget: usize) -> Self {
        let now = Instant::now();
        let mut metrics = Kept::new(metrics::Metrics::new(&s.root, now));
        // The GPUs re-probe on the metrics collector's clock, started by
        // their probe at start.
        let gpus = gpu::Gpus::new(&s, metrics.reprobe(now));
        let mut cx = Cx::new(s);
        let mut scanner = processes::ProcScanner::new(fd_budget, page_size());
        // The CPU and process baselines, so the first answers describe a
        // real window instead of zeros.
        if let Some(total) = metrics.c.prime(&mut cx) {
            if let Err(e) = scanner.scan(&cx.s.root, total, 0) {
                log::warn!("process scan baseline failed: {e}");
            }
        }
        Collectors {
            k: Kinds {
                metrics,
                disks: Kept::new(filesystems::Disks::new()),
                processes: Kept::new(processes::Processes { scanner, at: None }),
                sensors: Kept::new(SensorsSample::default()),
                // a quarter of the scan's share: connections and the scan keep the rest
                cgroups: Kept::new(cgroups::Cgroups {
                    scanner: cgroups::CgroupScanner::new(fd_budget / 4),
                    at: None,
                }),
            },
            cx,
            // the agent's own, never under the root
            statm_file: KeptFile::new(&Root::default(), "proc/self/statm"),
            gpus,
            detail: process_detail::DetailBaselines::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.cx.s
    }

    /// Every collector and its sample.
    pub fn kinds(&self) -> &Kinds {
        &self.k
    }

    /// Runs the collector `pick` chooses (timed): `col.collect(|k| &mut k.disks, now)`.
    pub fn collect<C: Collector>(
        &mut self,
        pick: fn(&mut Kinds) -> &mut Kept<C>,
        now: Instant,
    ) -> Result<()> {
        pick(&mut self.k).run(&mut self.cx, now)
    }

    /// Logs a collector error as its kind says (malformed input once).
    pub fn report(&mut self, e: &CollectError) {
        self.cx.reported.note(e);
    }

    /// The fast metrics the history ring keeps, without what it does not
    /// (the host name, and the process count, whose listing of `/proc`
    /// costs more kernel time than the rest): a sample a second with no
    /// client stays cheap.
    pub fn collect_history_sample(&mut self, now: Instant) -> Result<()> {
        self.k.metrics.c.next_full = false;
        self.collect(|k| &mut k.metrics, now)
    }

    /// From now on a disks round ends through `f` (the server's waker)
    /// and the disks collection never waits; without it, it waits for
    /// the round (at most `mounts::ROUND_WAIT`).
    pub fn set_disks_notify(&mut self, f: mounts::Notify) {
        self.k.disks.c.prober.set_notify(f);
    }

    /// When the disks round that is out must be answered anyway.
    pub fn disks_deadline(&self) -> Option<Instant> {
        self.k.disks.c.prober.deadline()
    }

    /// Whether disks rounds end through a callback (`set_disks_notify`).
    pub fn disks_async(&self) -> bool {
        self.k.disks.c.prober.is_async()
    }

    /// The last metrics collection's sample.
    pub fn metrics(&self) -> &MetricsSample {
        &self.k.metrics.c.sample
    }

    /// The last disks collection's sample.
    pub fn disks(&self) -> &DisksSample {
        &self.k.disks.c.sample
    }

    /// The last process scan's rows and when it ran (`None`: not since start).
    pub fn processes(&self) -> (Option<Instant>, &[processes::ProcRow]) {
        let p = &self.k.processes.c;
        (p.at, &p.scanner.rows)
    }

    /// The last cgroups sample's rows and when it ran (`None`: not since start).
    pub fn cgroups(&self) -> (Option<Instant>, &[cgroups::CgroupRow]) {
        let c = &self.k.cgroups.c;
        (c.at, &c.scanner.rows)
    }

    /// Reads the memory used and the limit of the last cgroups sample's
    /// limited rows again, leaving its CPU and I/O windows alone
    /// (`CgroupScanner::refresh_memory`: the alerts' tick).
    pub fn refresh_cgroup_memory(&mut self) {
        self.k.cgroups.c.scanner.refresh_memory();
    }

    /// The last sensors collection's sample.
    pub fn sensors(&self) -> &SensorsSample {
        &self.k.sensors.c
    }

    /// Every GPU's readings (their own 1.5 s cache); `None` when there is
    /// no GPU or GPUs are disabled. They are probed again on the metrics
    /// collector's re-probe clock.
    pub fn gpus(&mut self, now: Instant) -> Option<&[gpu::Gpu]> {
        let epoch = self.k.metrics.reprobe(now);
        self.gpus.read(now, epoch)
    }

    /// The last metrics sample and the GPUs' readings, together.
    pub fn metrics_and_gpus(&mut self, now: Instant) -> (&MetricsSample, Option<&[gpu::Gpu]>) {
        let epoch = self.k.metrics.reprobe(now);
        (&self.k.metrics.c.sample, self.gpus.read(now, epoch))
    }

    /// The agent's own resident set, bytes (`/proc/self/statm`, never under the root).
    pub fn own_rss(&mut self) -> Option<u64> {
        self.statm_file.read(&mut self.cx.buf).ok()?;
        let pages = num::fields(&self.cx.buf).nth(1).and_then(num::parse_u64)?;
        Some(pages.saturating_mul(page_size()))
    }

    /// One process in detail, its CPU share since it was last asked for.
    pub fn process_detail(&mut self, pid: u32, now: Instant) -> Result<process_detail::Detail> {
        let clock = process_detail::Clock {
            ticks_per_sec: clock_ticks(),
            page_size: page_size(),
            btime: self.btime(),
        };
        self.detail.sample(&self.cx.s.root, pid, &clock, now)
    }

    /// Boot time (epoch s) from the CPU baseline, reading `/proc/stat` if
    /// there is none.
    fn btime(&mut self) -> u64 {
        match self.k.metrics.c.btime() {
            0 => self.cx.stat_now().map_or(0, |s| s.btime()),
            b => b,
        }
    }
}
