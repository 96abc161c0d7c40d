//! Collectors: the one owner of every baseline, kept file and sample
//! buffer. Each collection reads into buffers that live as long as the
//! agent and leaves a typed sample behind (`MetricsSample`, `DisksSample`,
//! the process rows, the cgroup rows, `SensorsSample`); what is encoded from them, and when
//! a sample is fresh enough to reuse, is the answers module's business.
//! Nothing here knows of JSON frames, protobuf or gzip, and nothing here
//! runs unless a request asks for it.

pub mod board;
pub mod cgroups;
pub mod cpu;
pub mod cpufreq;
pub mod disks;
pub mod diskstats;
pub mod error;
pub mod fs;
pub mod gpu;
pub mod host;
pub mod journal;
pub mod memory;
pub mod mounts;
pub mod net;
pub mod num;
pub mod power;
pub mod pressure;
pub mod process_detail;
pub mod processes;
pub mod rate;
pub mod rediscover;
pub mod sensors;
pub mod throttle;

use error::{CollectError, Reported, Result};
use fs::{KeptFile, Root};
use host::uname_hostname;
pub use host::{clock_ticks, epoch_ms, hostname, own_cpu, page_size, uname};
use std::time::{Duration, Instant};

/// CPU percentages are computed over at least this window, so an answer
/// never describes a few microseconds of scheduler noise.
pub const MIN_CPU_WINDOW: Duration = Duration::from_millis(100);

/// `process_count` may be this old: the last process scan's count, else a
/// listing of `/proc` kept this long (a listing costs more kernel time
/// than the rest of a metrics sample, and the count moves slowly).
pub const PROCESS_COUNT_MAX_AGE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Settings {
    pub root: Root,
    /// `SOCKTOP_AGENT_TEMP`: CPU, disk and GPU temperatures.
    pub temp_enabled: bool,
    /// `SOCKTOP_AGENT_GPU`: GPU probing and readings.
    pub gpu_enabled: bool,
    /// `SOCKAGENT_NVML_LIB`: the NVML library to load instead of the default.
    pub nvml_lib: Option<std::ffi::OsString>,
    /// The board sources (clocks, load, pressure, throttling, fans,
    /// power) are read at most this often (`board::BOARD_PERIOD`).
    pub board_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: Root::default(),
            temp_enabled: true,
            gpu_enabled: true,
            nvml_lib: None,
            board_period: board::BOARD_PERIOD,
        }
    }
}

/// The collections, for their timings (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Metrics = 0,
    Disks = 1,
    Processes = 2,
    /// Every hwmon temperature (scrape only).
    Sensors = 3,
    Cgroups = 4,
}

impl Collection {
    pub const ALL: [Collection; 5] = [
        Collection::Metrics,
        Collection::Disks,
        Collection::Processes,
        Collection::Sensors,
        Collection::Cgroups,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collection::Metrics => "metrics",
            Collection::Disks => "disks",
            Collection::Processes => "processes",
            Collection::Sensors => "sensors",
            Collection::Cgroups => "cgroups",
        }
    }
}

/// How often and how long one collection has run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub runs: u64,
    pub total: Duration,
    pub last: Duration,
}

/// The fast metrics, as the last metrics collection found them.
#[derive(Debug, Default)]
pub struct MetricsSample {
    /// When it was collected; `None` before the first collection.
    pub at: Option<Instant>,
    pub sampled_at_ms: u64,
    pub cpu_total: f32,
    pub per_core: Vec<f32>,
    /// The `/proc/stat` read behind the percentages, typed (per-mode
    /// ticks and counters for `/metrics`).
    pub stat: cpu::StatSample,
    pub mem: memory::MemInfo,
    /// Every `/proc/meminfo` line.
    pub mem_fields: Vec<memory::MemField>,
    pub hostname: String,
    pub cpu_temp_c: Option<f32>,
    /// `/proc/net/dev`: bytes, errors, drops and byte rates.
    pub nets: Vec<net::NetDev>,
    pub process_count: u64,
    /// Whether the host name and process count are this sample's own: a
    /// history tick's sample (`collect_history_sample`) leaves them as the
    /// last full sample found them, so it answers no request.
    pub full: bool,
    /// Whole disks' I/O counters and rates (`/proc/diskstats`), read on
    /// the board's cadence.
    pub disk_io: diskstats::DiskStats,
    /// Clocks, load, uptime, pressure, throttling, fans, power: read at
    /// most once per `Settings::board_period` (see `board`). The readers
    /// live in the sample: each row keeps its own kept file.
    pub board: board::Board,
}

/// The mounted filesystems, as the last disks collection found them.
#[derive(Debug, Default)]
pub struct DisksSample {
    pub at: Option<Instant>,
    /// The `disks` answer's rows.
    pub rows: Vec<disks::DiskRow>,
    /// Every mount with its space (not only the first of a device).
    pub filesystems: Vec<disks::FsRow>,
}

/// What only `/metrics` shows: every hwmon temperature. (Load average is
/// the metrics sample's, `board.load_avg`.)
#[derive(Debug, Default)]
pub struct SensorsSample {
    pub at: Option<Instant>,
    pub hwmon: sensors::HwmonTemps,
}

pub struct Collectors {
    s: Settings,
    stat_file: KeptFile,
    meminfo_file: KeptFile,
    netdev_file: KeptFile,
    hostname_file: KeptFile,
    statm_file: KeptFile,
    buf: Vec<u8>,
    proc_dir: fs::KeptDir,
    /// Older and newer CPU baselines (see `cpu_sample`), and scratch.
    cpu_a: (Instant, cpu::StatSample),
    cpu_b: (Instant, cpu::StatSample),
    cpu_scratch: cpu::StatSample,
    /// When the network rates' bases were taken.
    net_window: rate::Window,
    temp: sensors::CpuTemp,
    gpus: gpu::Gpus,
    scanner: processes::ProcScanner,
    /// When the process rows were last scanned.
    scanned_at: Option<Instant>,
    /// Services and containers, and when they were last sampled.
    cgroups: (Option<Instant>, cgroups::CgroupScanner),
    /// A listing's process count, and when it was taken.
    listed: Option<(Instant, u64)>,
    mountinfo: Option<std::fs::File>,
    topology: Option<std::rc::Rc<DiskTopology>>,
    /// `statvfs` off the loop (`mounts`), and the topology its round is over.
    prober: (mounts::Prober, Option<std::rc::Rc<DiskTopology>>),
    detail: process_detail::DetailBaselines,
    metrics: MetricsSample,
    disks: DisksSample,
    sensors: SensorsSample,
    timings: [Timing; 5],
    reported: Reported,
}

/// What the disks answer needs that only changes with the mount table.
struct DiskTopology {
    mounts: Vec<disks::Mount>,
    /// Each mount's path under the root, for the prober's rounds.
    paths: std::sync::Arc<[std::path::PathBuf]>,
    info: std::collections::HashMap<(u32, u32), disks::DevInfo>,
    /// Whole-disk kernel name → its temperature file, if it has one.
    temp_files: std::collections::HashMap<String, Option<std::path::PathBuf>>,
}

/// True when the kernel flagged the kept mountinfo file (a mount or
/// unmount since it was last read). A regular file (a fixture tree) never is.
fn mount_table_changed(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0 && (n < 0 || p.revents & (libc::POLLPRI | libc::POLLERR) != 0)
}

impl Collectors {
    /// `fd_budget`: how many `/proc/PID/stat` files the scan may keep open.
    pub fn new(s: Settings, fd_budget: usize) -> Self {
        let root = s.root.clone();
        let now = Instant::now();
        let mut c = Collectors {
            stat_file: KeptFile::new(&root, "proc/stat"),
            meminfo_file: KeptFile::new(&root, "proc/meminfo"),
            netdev_file: KeptFile::new(&root, "proc/net/dev"),
            hostname_file: KeptFile::new(&root, "proc/sys/kernel/hostname"),
            // the agent's own, never under the root
            statm_file: KeptFile::new(&Root::default(), "proc/self/statm"),
            buf: Vec::with_capacity(16 * 1024),
            proc_dir: fs::KeptDir::new(&root, "proc"),
            cpu_a: (now, cpu::StatSample::default()),
            cpu_b: (now, cpu::StatSample::default()),
            cpu_scratch: cpu::StatSample::default(),
            net_window: rate::Window::default(),
            temp: sensors::CpuTemp::default(),
            gpus: gpu::Gpus::new(
                root.clone(),
                gpu::GpuSettings {
                    enabled: s.gpu_enabled,
                    temps: s.temp_enabled,
                    nvml_lib: s.nvml_lib.clone(),
                },
                now,
            ),
            scanner: processes::ProcScanner::new(fd_budget, page_size()),
            scanned_at: None,
            // a quarter of the scan's share: connections and the scan keep the rest
            cgroups: (None, cgroups::CgroupScanner::new(fd_budget / 4)),
            listed: None,
            mountinfo: None,
            topology: None,
            prober: (mounts::Prober::new(disks::space), None),
            detail: process_detail::DetailBaselines::default(),
            metrics: MetricsSample::default(),
            disks: DisksSample::default(),
            sensors: SensorsSample::default(),
            timings: [Timing::default(); 5],
            reported: Reported::default(),
            s,
        };
        c.prime();
        c
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// Takes the CPU and process baselines, so the first answers describe a
    /// real window instead of zeros.
    fn prime(&mut self) {
        let mut first = cpu::StatSample::default();
        if read_stat(&mut self.stat_file, &mut self.buf, &mut first).is_ok() {
            self.cpu_a.1.clone_from(&first);
            self.cpu_b.1.clone_from(&first);
            if let Err(e) = self.scanner.scan(&self.s.root, first.all.total) {
                log::warn!("process scan baseline failed: {e}");
            }
        }
    }

    /// Logs a collector error as its kind says (malformed input once).
    pub fn report(&mut self, e: &CollectError) {
        self.reported.note(e);
    }

    fn timed(&mut self, c: Collection, started: Instant) {
        let d = started.elapsed();
        if let Some(t) = self.timings.get_mut(c as usize) {
            t.runs += 1;
            t.total += d;
            t.last = d;
        }
    }

    /// Each collection's runs and time, in `Collection::ALL` order.
    pub fn timings(&self) -> &[Timing; 5] {
        &self.timings
    }

    /// Reads `/proc/stat` into the sample and computes total and per-core
    /// busy % against a baseline at least `MIN_CPU_WINDOW` old where one
    /// exists: `a` is always at least that much older than `b`, and `b` is
    /// replaced only once it is that old.
    fn cpu_sample(&mut self, now: Instant) -> Result<()> {
        let m = &mut self.metrics;
        read_stat(&mut self.stat_file, &mut self.buf, &mut m.stat)?;
        if now.duration_since(self.cpu_b.0) >= MIN_CPU_WINDOW {
            m.cpu_total = m.stat.all.busy_pct_since(&self.cpu_b.1.all);
            cpu::per_core_pct(&m.stat, &self.cpu_b.1, &mut m.per_core);
            std::mem::swap(&mut self.cpu_a, &mut self.cpu_b);
            self.cpu_b.1.clone_from(&m.stat);
            self.cpu_b.0 = now;
        } else {
            m.cpu_total = m.stat.all.busy_pct_since(&self.cpu_a.1.all);
            cpu::per_core_pct(&m.stat, &self.cpu_a.1, &mut m.per_core);
        }
        Ok(())
    }

    /// The host's name, re-read each sample (it can change) into a kept
    /// String: no allocation unless it changed. On the host itself from
    /// uname(2), under another root from its `proc/sys/kernel/hostname`.
    fn refresh_hostname(&mut self) {
        let host = &mut self.metrics.hostname;
        if self.s.root.is_host() && host::refresh_nodename(host) {
            return;
        }
        if self.hostname_file.read(&mut self.buf).is_ok() {
            let h = self.buf.trim_ascii();
            if !h.is_empty() {
                if h != host.as_bytes() {
                    *host = String::from_utf8_lossy(h).into_owned();
                }
                return;
            }
        }
        if host.is_empty() {
            *host = uname_hostname();
        }
    }

    /// The number of processes, at most `PROCESS_COUNT_MAX_AGE` old: the
    /// last process scan's (the TUI asks for processes every 2 s), else
    /// the last listing of /proc, else a new listing.
    fn count_processes(&mut self, now: Instant) -> u64 {
        let young = |at: Instant| now.duration_since(at) < PROCESS_COUNT_MAX_AGE;
        match (self.scanned_at, self.listed) {
            (Some(at), _) if young(at) => return self.scanner.rows.len() as u64,
            (_, Some((at, n))) if young(at) => return n,
            _ => {}
        }
        let mut n = 0u64;
        match self
            .proc_dir
            .for_each(|name| n += u64::from(fs::pid_of(name).is_some()))
        {
            Ok(()) => {
                self.listed = Some((now, n));
                n
            }
            Err(e) => {
                self.report(&CollectError::io("/proc", e));
                0
            }
        }
    }

    /// Collects the fast metrics. Fails only when `/proc/stat` or
    /// `/proc/meminfo` cannot be read; every other reading is optional.
    pub fn collect_metrics(&mut self, now: Instant) -> Result<&MetricsSample> {
        self.collect_metrics_with(now, true)
    }

    /// The fast metrics the history ring keeps, without what it does not
    /// (the host name, and the process count, whose listing of `/proc`
    /// costs more kernel time than the rest): a sample a second with no
    /// client stays cheap.
    pub fn collect_history_sample(&mut self, now: Instant) -> Result<&MetricsSample> {
        self.collect_metrics_with(now, false)
    }

    fn collect_metrics_with(&mut self, now: Instant, full: bool) -> Result<&MetricsSample> {
        let t0 = Instant::now();
        self.cpu_sample(now)?;
        self.meminfo_file
            .read(&mut self.buf)
            .map_err(CollectError::reading("/proc/meminfo"))?;
        let m = &mut self.metrics;
        m.mem = memory::parse_meminfo(&self.buf, &mut m.mem_fields)
            .ok_or(CollectError::malformed("/proc/meminfo", "no MemTotal line"))?;
        match self.netdev_file.read(&mut self.buf) {
            Ok(()) => {
                let step = self.net_window.step(now);
                net::parse_net_dev_step(&self.buf, &mut m.nets, step);
            }
            Err(e) => {
                m.nets.clear();
                self.net_window.reset();
                self.reported.note(&CollectError::io("/proc/net/dev", e));
            }
        }
        if m.board.due(now, self.s.board_period) {
            if let Err(e) = m.disk_io.sample(&self.s.root, now, &mut self.buf) {
                self.reported.note(&e);
            }
        }
        m.board
            .refresh(&self.s.root, now, self.s.board_period, &mut self.buf, full);
        let process_count = if full {
            self.refresh_hostname();
            self.count_processes(now)
        } else {
            self.metrics.process_count
        };
        let cpu_temp_c = if self.s.temp_enabled {
            self.temp.read(&self.s.root)
        } else {
            None
        };
        let m = &mut self.metrics;
        m.process_count = process_count;
        m.full = full;
        m.cpu_temp_c = cpu_temp_c;
        m.sampled_at_ms = epoch_ms();
        m.at = Some(now);
        self.timed(Collection::Metrics, t0);
        Ok(&self.metrics)
    }

    /// The last metrics collection's sample.
    pub fn metrics(&self) -> &MetricsSample {
        &self.metrics
    }

    /// Every GPU's readings (their own 1.5 s cache); `None` when there is
    /// no GPU or GPUs are disabled.
    pub fn gpus(&mut self, now: Instant) -> Option<&[gpu::Gpu]> {
        self.gpus.read(now)
    }

    /// The last metrics sample and the GPUs' readings, together.
    pub fn metrics_and_gpus(&mut self, now: Instant) -> (&MetricsSample, Option<&[gpu::Gpu]>) {
        (&self.metrics, self.gpus.read(now))
    }

    /// The mounted block devices, their sysfs facts and temperature files.
    /// Reading mountinfo costs ~25 µs of kernel time even when nothing
    /// changed, so the kept file is polled instead: the kernel flags it
    /// (POLLPRI) when the mount table changes, and only then is it re-read.
    fn disk_topology(&mut self) -> Result<std::rc::Rc<DiskTopology>> {
        let changed = match (&self.mountinfo, &self.topology) {
            (Some(f), Some(_)) => mount_table_changed(f),
            _ => true,
        };
        if let (false, Some(t)) = (changed, &self.topology) {
            return Ok(t.clone());
        }
        let root = self.s.root.clone();
        const MOUNTINFO: &str = "/proc/self/mountinfo";
        let file = match self.mountinfo.take() {
            Some(f) => f,
            None => std::fs::File::open(root.path(MOUNTINFO))
                .map_err(CollectError::reading(MOUNTINFO))?,
        };
        fs::pread_all(&file, &mut self.buf).map_err(CollectError::reading(MOUNTINFO))?;
        self.mountinfo = Some(file);
        let mounts = disks::parse_mountinfo(&self.buf);
        let mut info = std::collections::HashMap::new();
        let mut temp_files = std::collections::HashMap::new();
        for m in &mounts {
            let d = disks::dev_info(&root, m);
            let whole = d.parent.clone().unwrap_or_else(|| d.kernel_name.clone());
            temp_files
                .entry(whole.clone())
                .or_insert_with(|| sensors::disk_temp_file(&root, &whole));
            temp_files
                .entry(d.kernel_name.clone())
                .or_insert_with(|| sensors::disk_temp_file(&root, &d.kernel_name));
            info.insert((m.major, m.minor), d);
        }
        let paths = mounts.iter().map(|m| root.path(&m.mount_point)).collect();
        let t = std::rc::Rc::new(DiskTopology {
            mounts,
            paths,
            info,
            temp_files,
        });
        self.topology = Some(t.clone());
        Ok(t)
    }

    /// From now on a disks round ends through `f` (the server's waker)
    /// and `collect_disks` never waits; without it, it waits for the
    /// round (at most `mounts::ROUND_WAIT`).
    pub fn set_disks_notify(&mut self, f: mounts::Notify) {
        self.prober.0.set_notify(f);
    }

    /// When the disks round that is out must be answered anyway.
    pub fn disks_deadline(&self) -> Option<Instant> {
        self.prober.0.deadline()
    }

    /// Whether disks rounds end through a callback (`set_disks_notify`).
    pub fn disks_async(&self) -> bool {
        self.prober.0.is_async()
    }

    /// Collects the mounted filesystems: a `statvfs` per mount, made off
    /// this thread (`mounts`: a mount that does not answer is left out),
    /// and a temperature read per disk (the topology only on a mount
    /// change). Starts a round when none is out; `None` while it runs
    /// (only with a callback set: else this waits for it).
    pub fn collect_disks(&mut self, now: Instant) -> Result<Option<&DisksSample>> {
        if self.prober.0.deadline().is_none() {
            let topo = self.disk_topology()?;
            self.prober.0.start(topo.paths.clone(), now);
            self.prober.1 = Some(topo);
            if !self.prober.0.is_async() {
                self.prober.0.wait();
            }
        }
        let t0 = Instant::now();
        let Some(spaces) = self.prober.0.settle(now) else {
            return Ok(None);
        };
        let Some(topo) = self.prober.1.take() else {
            return Ok(None);
        };
        self.disks_from(&topo, &spaces);
        self.disks.at = Some(now);
        self.timed(Collection::Disks, t0);
        Ok(Some(&self.disks))
    }

    /// The disks sample from a round's spaces (`None`: left out).
    fn disks_from(&mut self, topo: &DiskTopology, spaces: &[Option<disks::Space>]) {
        let root = &self.s.root;
        let temps = self.s.temp_enabled;
        // Every mount's space (/metrics lists each mount; the answer, each device).
        disks::keep_filesystems(&topo.mounts, spaces, &mut self.disks.filesystems);
        self.disks.rows = disks::build_rows(
            &topo.mounts,
            |m| {
                topo.info
                    .get(&(m.major, m.minor))
                    .cloned()
                    .unwrap_or_else(|| disks::dev_info(root, m))
            },
            |m| {
                let i = topo.mounts.iter().position(|x| std::ptr::eq(x, m))?;
                spaces.get(i).copied().flatten().map(|s| (s.total, s.avail))
            },
            |disk| {
                if !temps {
                    return None;
                }
                topo.temp_files
                    .get(disk)
                    .cloned()
                    .unwrap_or_else(|| sensors::disk_temp_file(root, disk))
                    .and_then(|p| sensors::read_temp(&p))
            },
        );
    }

    /// The last disks collection's sample.
    pub fn disks(&self) -> &DisksSample {
        &self.disks
    }

    /// Scans every process; CPU shares are over the time since the previous scan.
    pub fn collect_processes(&mut self, now: Instant) -> Result<&[processes::ProcRow]> {
        let t0 = Instant::now();
        read_stat(&mut self.stat_file, &mut self.buf, &mut self.cpu_scratch)?;
        let total = self.cpu_scratch.all.total;
        self.scanner
            .scan(&self.s.root, total)
            .map_err(CollectError::reading("/proc"))?;
        self.scanned_at = Some(now);
        self.timed(Collection::Processes, t0);
        Ok(&self.scanner.rows)
    }

    /// The last process scan's rows and when it ran (`None`: not since start).
    pub fn processes(&self) -> (Option<Instant>, &[processes::ProcRow]) {
        (self.scanned_at, &self.scanner.rows)
    }

    /// Samples every cgroup that holds processes (services, containers);
    /// CPU shares and I/O rates are over the time since the previous sample.
    pub fn collect_cgroups(&mut self, now: Instant) -> Result<&[cgroups::CgroupRow]> {
        let t0 = Instant::now();
        read_stat(&mut self.stat_file, &mut self.buf, &mut self.cpu_scratch)?;
        let total = self.cpu_scratch.all.total;
        self.cgroups
            .1
            .scan(&self.s.root, now, total, clock_ticks())?;
        self.cgroups.0 = Some(now);
        self.timed(Collection::Cgroups, t0);
        Ok(&self.cgroups.1.rows)
    }

    /// The last cgroups sample's rows and when it ran (`None`: not since start).
    pub fn cgroups(&self) -> (Option<Instant>, &[cgroups::CgroupRow]) {
        (self.cgroups.0, &self.cgroups.1.rows)
    }

    /// Reads every hwmon temperature (`/metrics` only).
    pub fn collect_sensors(&mut self, now: Instant) -> &SensorsSample {
        let t0 = Instant::now();
        let s = &mut self.sensors;
        if self.s.temp_enabled {
            s.hwmon.refresh(&self.s.root);
        } else {
            s.hwmon.temps.clear();
        }
        s.at = Some(now);
        self.timed(Collection::Sensors, t0);
        &self.sensors
    }

    /// The last sensors collection's sample.
    pub fn sensors(&self) -> &SensorsSample {
        &self.sensors
    }

    /// The agent's own resident set, bytes (`/proc/self/statm`, never under the root).
    pub fn own_rss(&mut self) -> Option<u64> {
        self.statm_file.read(&mut self.buf).ok()?;
        let pages = num::fields(&self.buf).nth(1).and_then(num::parse_u64)?;
        Some(pages.saturating_mul(page_size()))
    }

    /// One process in detail, its CPU share since it was last asked for.
    pub fn process_detail(&mut self, pid: u32, now: Instant) -> Result<process_detail::Detail> {
        let clock = process_detail::Clock {
            ticks_per_sec: clock_ticks(),
            page_size: page_size(),
            btime: self.btime(),
        };
        self.detail.sample(&self.s.root, pid, &clock, now)
    }

    /// Boot time (epoch s) from the last `/proc/stat` read, reading it if needed.
    fn btime(&mut self) -> u64 {
        if self.cpu_b.1.btime() == 0 {
            let _ = read_stat(&mut self.stat_file, &mut self.buf, &mut self.cpu_scratch);
            return self.cpu_scratch.btime();
        }
        self.cpu_b.1.btime()
    }
}

/// Reads and parses `/proc/stat` into `out`.
fn read_stat(file: &mut KeptFile, buf: &mut Vec<u8>, out: &mut cpu::StatSample) -> Result<()> {
    file.read(buf)
        .map_err(CollectError::reading("/proc/stat"))?;
    cpu::parse_stat(buf, out).map_err(|why| CollectError::malformed("/proc/stat", why))
}
