//! Collectors: the one owner of every baseline, kept file, buffer and cache.
//!
//! Each `*_answer` returns the encoded answer, from the cache when it is
//! younger than its TTL. Nothing here runs unless a request asks for it.

pub mod cpu;
pub mod disks;
pub mod error;
pub mod fs;
pub mod gpu;
pub mod journal;
pub mod memory;
pub mod net;
pub mod num;
pub mod process_detail;
pub mod processes;
pub mod prom;
pub mod sensors;

use crate::protocol::{gzip::Gzip, pb};
use bytes::BytesMut;
use fs::{KeptFile, Root};
use serde::Serialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::{Bytes, Utf8Bytes};

/// CPU percentages are computed over at least this window, so an answer
/// never describes a few microseconds of scheduler noise.
pub const MIN_CPU_WINDOW: Duration = Duration::from_millis(100);

/// A process scan younger than this gives `process_count` for free.
const PROCESS_COUNT_MAX_AGE: Duration = Duration::from_secs(5);

/// Process frames larger than this are gzipped (as the reference does).
pub const GZIP_THRESHOLD: usize = 768;

#[derive(Debug, Clone)]
pub struct Settings {
    pub root: Root,
    /// `SOCKTOP_AGENT_TEMP`: CPU, disk and GPU temperatures.
    pub temp_enabled: bool,
    /// `SOCKTOP_AGENT_GPU`: GPU probing and readings.
    pub gpu_enabled: bool,
    /// `SOCKAGENT_NVML_LIB`: the NVML library to load instead of the default.
    pub nvml_lib: Option<std::ffi::OsString>,
    pub metrics_ttl: Duration,
    pub disks_ttl: Duration,
    pub processes_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: Root::default(),
            temp_enabled: true,
            gpu_enabled: true,
            nvml_lib: None,
            metrics_ttl: Duration::from_millis(250),
            disks_ttl: Duration::from_millis(1000),
            processes_ttl: Duration::from_millis(1500),
        }
    }
}

struct Cached<T> {
    at: Instant,
    value: T,
}

fn fresh<T: Clone>(c: &Option<Cached<T>>, ttl: Duration, now: Instant) -> Option<T> {
    match c {
        Some(c) if !ttl.is_zero() && now.duration_since(c.at) < ttl => Some(c.value.clone()),
        _ => None,
    }
}

/// An encoded answer, ready to become one WebSocket frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Answer {
    pub fn text(s: String) -> Self {
        Answer::Text(Utf8Bytes::from(s))
    }
}

#[derive(Serialize)]
struct MetricsOut<'a> {
    sampled_at_ms: u64,
    cpu_total: f32,
    cpu_per_core: &'a [f32],
    mem_total: u64,
    mem_used: u64,
    swap_total: u64,
    swap_used: u64,
    hostname: &'a str,
    cpu_temp_c: Option<f32>,
    disks: [u8; 0],
    networks: &'a [net::NetDev],
    top_processes: [u8; 0],
    gpus: Option<&'a [gpu::Gpu]>,
    process_count: u64,
}

pub struct Collectors {
    s: Settings,
    stat_file: KeptFile,
    meminfo_file: KeptFile,
    netdev_file: KeptFile,
    hostname_file: KeptFile,
    buf: Vec<u8>,
    json: Vec<u8>,
    /// Frame payload memory for each kind of answer (see `refill`).
    metrics_pool: BytesMut,
    disks_pool: BytesMut,
    processes_pool: BytesMut,
    host: String,
    proc_dir: fs::KeptDir,
    /// Older and newer CPU baselines (see `cpu_sample`), and scratch.
    cpu_a: (Instant, cpu::StatSample),
    cpu_b: (Instant, cpu::StatSample),
    cpu_new: cpu::StatSample,
    per_core: Vec<f32>,
    nets: Vec<net::NetDev>,
    temp: sensors::CpuTemp,
    gpus: gpu::Gpus,
    scanner: processes::ProcScanner,
    pb_buf: Vec<u8>,
    gz_buf: Vec<u8>,
    gzip: Gzip,
    metrics: Option<Cached<Utf8Bytes>>,
    disks: Option<Cached<Utf8Bytes>>,
    processes: Option<Cached<Bytes>>,
    mountinfo: Option<std::fs::File>,
    topology: Option<std::rc::Rc<DiskTopology>>,
    detail: process_detail::DetailCache,
    journal: std::collections::HashMap<u32, Cached<Utf8Bytes>>,
    /// What the collections read, kept for `/metrics` (see prom.rs).
    snap: prom::Snap,
}

/// The host's name: `proc/sys/kernel/hostname` under `root`, else gethostname(2).
pub fn hostname(root: &Root) -> String {
    match root.read_trimmed("proc/sys/kernel/hostname") {
        Ok(h) if !h.is_empty() => h,
        _ => uname_hostname(),
    }
}

fn uname_hostname() -> String {
    let mut b = [0u8; 256];
    // SAFETY: b is a valid buffer of the given length.
    if unsafe { libc::gethostname(b.as_mut_ptr().cast(), b.len()) } == 0 {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        return String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned();
    }
    "localhost".into()
}

/// The frame payload for a fresh answer, carved from `pool`: once the
/// previous answer from this pool has been let go (the cache dropped it and
/// tungstenite copied it into its output buffer), `reserve` reclaims the
/// same memory, so the steady state allocates nothing.
pub fn refill(pool: &mut BytesMut, data: &[u8]) -> Bytes {
    pool.reserve(data.len());
    pool.extend_from_slice(data);
    pool.split().freeze()
}

/// What the disks answer needs that only changes with the mount table.
struct DiskTopology {
    mounts: Vec<disks::Mount>,
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

/// Epoch milliseconds now.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `sysconf(name)`, or `default` where the system does not say.
fn sysconf_or(name: libc::c_int, default: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(default)
}

/// `sysconf(_SC_PAGESIZE)`: 4 KiB on x86, 16 or 64 KiB on some arm64 kernels.
pub fn page_size() -> u64 {
    sysconf_or(libc::_SC_PAGESIZE, 4096)
}

/// `sysconf(_SC_CLK_TCK)`: the unit of /proc's tick counters (USER_HZ).
pub fn clock_ticks() -> u64 {
    sysconf_or(libc::_SC_CLK_TCK, 100)
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
            buf: Vec::with_capacity(16 * 1024),
            json: Vec::with_capacity(4 * 1024),
            metrics_pool: BytesMut::new(),
            disks_pool: BytesMut::new(),
            processes_pool: BytesMut::new(),
            host: String::new(),
            proc_dir: fs::KeptDir::new(&root, "proc"),
            cpu_a: (now, cpu::StatSample::default()),
            cpu_b: (now, cpu::StatSample::default()),
            cpu_new: cpu::StatSample::default(),
            per_core: Vec::new(),
            nets: Vec::new(),
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
            pb_buf: Vec::new(),
            gz_buf: Vec::new(),
            gzip: Gzip::default(),
            metrics: None,
            disks: None,
            processes: None,
            mountinfo: None,
            topology: None,
            detail: process_detail::DetailCache::default(),
            journal: std::collections::HashMap::new(),
            snap: prom::Snap::default(),
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
        if self.read_stat().is_ok() {
            self.cpu_a.1.clone_from(&self.cpu_new);
            self.cpu_b.1.clone_from(&self.cpu_new);
            let total = self.cpu_new.all.total;
            if let Err(e) = self.scanner.scan(&self.s.root, total) {
                log::warn!("process scan baseline failed: {e}");
            }
        }
    }

    fn read_stat(&mut self) -> Result<(), String> {
        self.stat_file
            .read(&mut self.buf)
            .map_err(|e| format!("cannot read /proc/stat: {e}"))?;
        cpu::parse_stat(&self.buf, &mut self.cpu_new).map_err(|e| format!("/proc/stat: {}", e.0))
    }

    /// Reads `/proc/stat` and computes total and per-core busy % against a
    /// baseline at least `MIN_CPU_WINDOW` old where one exists: `a` is
    /// always at least that much older than `b`, and `b` is replaced only
    /// once it is that old.
    fn cpu_sample(&mut self, now: Instant) -> Result<f32, String> {
        self.read_stat()?;
        let total;
        if now.duration_since(self.cpu_b.0) >= MIN_CPU_WINDOW {
            total = self.cpu_new.all.busy_pct_since(&self.cpu_b.1.all);
            cpu::per_core_pct(&self.cpu_new, &self.cpu_b.1, &mut self.per_core);
            std::mem::swap(&mut self.cpu_a, &mut self.cpu_b);
            std::mem::swap(&mut self.cpu_b.1, &mut self.cpu_new);
            self.cpu_b.0 = now;
        } else {
            total = self.cpu_new.all.busy_pct_since(&self.cpu_a.1.all);
            cpu::per_core_pct(&self.cpu_new, &self.cpu_a.1, &mut self.per_core);
        }
        Ok(total)
    }

    /// The host's name, re-read each sample (it can change) into a kept
    /// String: no allocation unless it changed.
    fn refresh_hostname(&mut self) {
        if self.hostname_file.read(&mut self.buf).is_ok() {
            let h = self.buf.trim_ascii();
            if !h.is_empty() {
                if h != self.host.as_bytes() {
                    self.host = String::from_utf8_lossy(h).into_owned();
                }
                return;
            }
        }
        if self.host.is_empty() {
            self.host = uname_hostname();
        }
    }

    /// The number of processes: the last process scan's when it is recent
    /// (the TUI asks for processes every 2 s), else a listing of /proc
    /// (~30 µs of kernel time on a small host, more than the rest of a
    /// metrics sample).
    fn count_processes(&mut self, now: Instant) -> u64 {
        // A recent process scan (a /metrics scrape scans first) has just
        // counted them: no second walk of /proc.
        if let Some(at) = self.snap.scanned_at {
            if now.duration_since(at) < PROCESS_COUNT_MAX_AGE {
                return self.scanner.rows.len() as u64;
            }
        }
        let mut n = 0u64;
        match self
            .proc_dir
            .for_each(|name| n += u64::from(fs::pid_of(name).is_some()))
        {
            Ok(()) => n,
            Err(_) => 0,
        }
    }

    /// Serializes into the reused JSON buffer, then into the frame payload
    /// (see `refill`).
    fn encode_json<T: Serialize>(
        json: &mut Vec<u8>,
        pool: &mut BytesMut,
        v: &T,
    ) -> Result<Utf8Bytes, String> {
        json.clear();
        serde_json::to_writer(&mut *json, v).map_err(|e| e.to_string())?;
        Utf8Bytes::try_from(refill(pool, json)).map_err(|e| e.to_string())
    }

    /// The `metrics` answer (JSON text).
    pub fn metrics_answer(&mut self, now: Instant) -> Result<Answer, String> {
        if let Some(v) = fresh(&self.metrics, self.s.metrics_ttl, now) {
            return Ok(Answer::Text(v));
        }
        let t0 = Instant::now();
        let cpu_total = self.cpu_sample(now)?;
        self.snap.stat.clone_from(&self.buf);
        self.meminfo_file
            .read(&mut self.buf)
            .map_err(|e| format!("cannot read /proc/meminfo: {e}"))?;
        self.snap.meminfo.clone_from(&self.buf);
        let mem = memory::parse_meminfo(&self.buf).ok_or("/proc/meminfo has no MemTotal")?;
        match self.netdev_file.read(&mut self.buf) {
            Ok(()) => net::parse_net_dev(&self.buf, &mut self.nets),
            Err(e) => {
                log::debug!("cannot read /proc/net/dev: {e}");
                self.nets.clear();
            }
        }
        self.refresh_hostname();
        let process_count = self.count_processes(now);
        let cpu_temp_c = if self.s.temp_enabled {
            self.temp.read(&self.s.root)
        } else {
            None
        };
        let gpus = self.gpus.read(now);
        self.snap.metrics_done(&self.host, cpu_temp_c, t0);
        let out = MetricsOut {
            sampled_at_ms: epoch_ms(),
            cpu_total,
            cpu_per_core: &self.per_core,
            mem_total: mem.mem_total,
            mem_used: mem.mem_used,
            swap_total: mem.swap_total,
            swap_used: mem.swap_used,
            hostname: &self.host,
            cpu_temp_c,
            disks: [],
            networks: &self.nets,
            top_processes: [],
            gpus,
            process_count,
        };
        self.metrics = None; // let go of the old payload so its memory is reused
        let v = Self::encode_json(&mut self.json, &mut self.metrics_pool, &out)?;
        self.metrics = Some(Cached {
            at: now,
            value: v.clone(),
        });
        Ok(Answer::Text(v))
    }

    /// The mounted block devices, their sysfs facts and temperature files.
    /// Reading mountinfo costs ~25 µs of kernel time even when nothing
    /// changed, so the kept file is polled instead: the kernel flags it
    /// (POLLPRI) when the mount table changes, and only then is it re-read.
    fn disk_topology(&mut self) -> Result<std::rc::Rc<DiskTopology>, String> {
        let changed = match (&self.mountinfo, &self.topology) {
            (Some(f), Some(_)) => mount_table_changed(f),
            _ => true,
        };
        if let (false, Some(t)) = (changed, &self.topology) {
            return Ok(t.clone());
        }
        let root = self.s.root.clone();
        if self.mountinfo.is_none() {
            self.mountinfo = Some(
                std::fs::File::open(root.path("proc/self/mountinfo"))
                    .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?,
            );
        }
        let file = self.mountinfo.as_ref().ok_or("mountinfo")?;
        if let Err(e) = fs::pread_all(file, &mut self.buf) {
            self.mountinfo = None;
            return Err(format!("cannot read /proc/self/mountinfo: {e}"));
        }
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
        let t = std::rc::Rc::new(DiskTopology {
            mounts,
            info,
            temp_files,
        });
        self.topology = Some(t.clone());
        Ok(t)
    }

    /// The `disks` answer (JSON text).
    pub fn disks_answer(&mut self, now: Instant) -> Result<Answer, String> {
        if let Some(v) = fresh(&self.disks, self.s.disks_ttl, now) {
            return Ok(Answer::Text(v));
        }
        let t0 = Instant::now();
        let root = self.s.root.clone();
        let temps = self.s.temp_enabled;
        let topo = self.disk_topology()?;
        // Every mount's space (/metrics lists each mount; the answer, each device).
        let spaces: Vec<Option<disks::Space>> = topo
            .mounts
            .iter()
            .map(|m| disks::space(&root.path(&m.mount_point)))
            .collect();
        self.snap.keep_filesystems(&topo.mounts, &spaces);
        let rows = disks::build_rows(
            &topo.mounts,
            |m| {
                topo.info
                    .get(&(m.major, m.minor))
                    .cloned()
                    .unwrap_or_else(|| disks::dev_info(&root, m))
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
                    .unwrap_or_else(|| sensors::disk_temp_file(&root, disk))
                    .and_then(|p| sensors::read_temp(&p))
            },
        );
        self.snap.timed(prom::Collector::Disks, t0);
        self.disks = None;
        let v = Self::encode_json(&mut self.json, &mut self.disks_pool, &rows)?;
        self.disks = Some(Cached {
            at: now,
            value: v.clone(),
        });
        Ok(Answer::Text(v))
    }

    /// The `processes` answer (protobuf, gzipped above the threshold).
    pub fn processes_answer(&mut self, now: Instant) -> Result<Answer, String> {
        if let Some(v) = fresh(&self.processes, self.s.processes_ttl, now) {
            return Ok(Answer::Binary(v));
        }
        // Rows a /metrics scrape scanned inside the window are encoded, not
        // scanned again; the answer is as old as its rows.
        let at = match self.snap.scanned_at {
            Some(t)
                if !self.s.processes_ttl.is_zero()
                    && now.duration_since(t) < self.s.processes_ttl =>
            {
                t
            }
            _ => {
                self.scan_processes(now)?;
                now
            }
        };
        pb::encode_processes(&self.scanner.rows, &mut self.pb_buf);
        self.processes = None;
        let v = if self.pb_buf.len() > GZIP_THRESHOLD {
            self.gzip.compress(&self.pb_buf, &mut self.gz_buf);
            refill(&mut self.processes_pool, &self.gz_buf)
        } else {
            refill(&mut self.processes_pool, &self.pb_buf)
        };
        self.processes = Some(Cached {
            at,
            value: v.clone(),
        });
        Ok(Answer::Binary(v))
    }

    /// Scans every process; CPU shares are over the time since the previous scan.
    fn scan_processes(&mut self, now: Instant) -> Result<(), String> {
        let t0 = Instant::now();
        self.read_stat()?;
        let total = self.cpu_new.all.total;
        self.scanner
            .scan(&self.s.root, total)
            .map_err(|e| format!("cannot list /proc: {e}"))?;
        self.snap.scanned_at = Some(now);
        self.snap.timed(prom::Collector::Processes, t0);
        Ok(())
    }

    /// `input` gzipped with the agent's one compressor.
    pub fn gzip(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 4 + 64);
        self.gzip.compress(input, &mut out);
        out
    }

    /// The `process_metrics` answer; `None` when there is no such process.
    pub fn process_metrics_answer(&mut self, pid: u32, now: Instant) -> Option<Answer> {
        let clock = process_detail::Clock {
            ticks_per_sec: clock_ticks(),
            page_size: page_size(),
            btime: self.btime(),
        };
        self.detail
            .answer(&self.s.root, pid, &clock, now)
            .map(Answer::text)
    }

    /// Boot time (epoch s) from the last `/proc/stat` read, reading it if needed.
    fn btime(&mut self) -> u64 {
        if self.cpu_b.1.btime == 0 {
            let _ = self.read_stat();
            return self.cpu_new.btime;
        }
        self.cpu_b.1.btime
    }

    /// A journal answer for `pid` younger than its TTL.
    pub fn journal_cached(&mut self, pid: u32, now: Instant) -> Option<Answer> {
        fresh(
            &self.journal.get(&pid).map(|c| Cached {
                at: c.at,
                value: c.value.clone(),
            }),
            journal::TTL,
            now,
        )
        .map(Answer::Text)
    }

    /// Keeps a journal answer; the cache holds at most
    /// `process_detail::MAX_PIDS` PIDs, expired ones dropped first.
    pub fn journal_store(&mut self, pid: u32, json: &str, now: Instant) -> Answer {
        let v = Utf8Bytes::from(json.to_string());
        let c = Cached {
            at: now,
            value: v.clone(),
        };
        process_detail::insert_bounded(&mut self.journal, pid, c, now, journal::TTL, |c| c.at);
        Answer::Text(v)
    }
}
