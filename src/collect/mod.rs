//! Collectors: the one owner of every baseline, kept file, buffer and cache.
//!
//! Each `*_answer` returns the encoded answer, from the cache when it is
//! younger than its TTL. Nothing here runs unless a request asks for it.

pub mod cpu;
pub mod disks;
pub mod fs;
pub mod journal;
pub mod memory;
pub mod net;
pub mod num;
pub mod process_detail;
pub mod processes;
pub mod prom;
pub mod sensors;

use crate::protocol::{gzip::Gzip, pb};
use fs::{KeptFile, Root};
use serde::Serialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::{Bytes, Utf8Bytes};

/// CPU percentages are computed over at least this window, so an answer
/// never describes a few microseconds of scheduler noise.
pub const MIN_CPU_WINDOW: Duration = Duration::from_millis(100);

/// Process frames larger than this are gzipped (as the reference does).
pub const GZIP_THRESHOLD: usize = 768;

#[derive(Debug, Clone)]
pub struct Settings {
    pub root: Root,
    pub temp_enabled: bool,
    pub metrics_ttl: Duration,
    pub disks_ttl: Duration,
    pub processes_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: Root::default(),
            temp_enabled: true,
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
    gpus: Option<[u8; 0]>,
    process_count: u64,
}

pub struct Collectors {
    s: Settings,
    stat_file: KeptFile,
    meminfo_file: KeptFile,
    netdev_file: KeptFile,
    hostname_file: KeptFile,
    buf: Vec<u8>,
    /// Older and newer CPU baselines (see `cpu_sample`), and scratch.
    cpu_a: (Instant, cpu::StatSample),
    cpu_b: (Instant, cpu::StatSample),
    cpu_new: cpu::StatSample,
    per_core: Vec<f32>,
    nets: Vec<net::NetDev>,
    temp: sensors::CpuTemp,
    scanner: processes::ProcScanner,
    pb_buf: Vec<u8>,
    gz_buf: Vec<u8>,
    gzip: Gzip,
    metrics: Option<Cached<Utf8Bytes>>,
    disks: Option<Cached<Utf8Bytes>>,
    processes: Option<Cached<Bytes>>,
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

/// Epoch milliseconds now.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `sysconf(_SC_PAGESIZE)`: 4 KiB on x86, 16 or 64 KiB on some arm64 kernels.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of /proc's tick counters (USER_HZ).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
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
            cpu_a: (now, cpu::StatSample::default()),
            cpu_b: (now, cpu::StatSample::default()),
            cpu_new: cpu::StatSample::default(),
            per_core: Vec::new(),
            nets: Vec::new(),
            temp: sensors::CpuTemp::default(),
            scanner: processes::ProcScanner::new(fd_budget, page_size()),
            pb_buf: Vec::new(),
            gz_buf: Vec::new(),
            gzip: Gzip::default(),
            metrics: None,
            disks: None,
            processes: None,
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

    fn hostname(&mut self) -> String {
        if self.hostname_file.read(&mut self.buf).is_ok() {
            let h = String::from_utf8_lossy(&self.buf).trim().to_string();
            if !h.is_empty() {
                return h;
            }
        }
        uname_hostname()
    }

    fn count_processes(&self) -> u64 {
        // A process scan that recent (a /metrics scrape scans first) has
        // just counted them: no second walk of /proc.
        if self
            .snap
            .scanned_at
            .is_some_and(|t| t.elapsed() < MIN_CPU_WINDOW)
        {
            return self.scanner.rows.len() as u64;
        }
        match std::fs::read_dir(self.s.root.path("proc")) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
                })
                .count() as u64,
            Err(_) => 0,
        }
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
        let hostname = self.hostname();
        let cpu_temp_c = if self.s.temp_enabled {
            self.temp.read(&self.s.root)
        } else {
            None
        };
        self.snap.metrics_done(&hostname, cpu_temp_c, t0);
        let out = MetricsOut {
            sampled_at_ms: epoch_ms(),
            cpu_total,
            cpu_per_core: &self.per_core,
            mem_total: mem.mem_total,
            mem_used: mem.mem_used,
            swap_total: mem.swap_total,
            swap_used: mem.swap_used,
            hostname: &hostname,
            cpu_temp_c,
            disks: [],
            networks: &self.nets,
            top_processes: [],
            gpus: None,
            process_count: self.count_processes(),
        };
        let v = Utf8Bytes::from(serde_json::to_string(&out).map_err(|e| e.to_string())?);
        self.metrics = Some(Cached {
            at: now,
            value: v.clone(),
        });
        Ok(Answer::Text(v))
    }

    /// The `disks` answer (JSON text).
    pub fn disks_answer(&mut self, now: Instant) -> Result<Answer, String> {
        if let Some(v) = fresh(&self.disks, self.s.disks_ttl, now) {
            return Ok(Answer::Text(v));
        }
        let t0 = Instant::now();
        let root = self.s.root.clone();
        root.read_into("proc/self/mountinfo", &mut self.buf)
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mounts = disks::parse_mountinfo(&self.buf);
        // Every mount's space (/metrics lists each mount; the answer, each device).
        let spaces: Vec<Option<disks::Space>> = mounts
            .iter()
            .map(|m| disks::space(&root.path(&m.mount_point)))
            .collect();
        self.snap.keep_filesystems(&mounts, &spaces);
        let rows = disks::build_rows(
            &mounts,
            |m| disks::dev_info(&root, m),
            |m| {
                let i = mounts.iter().position(|x| std::ptr::eq(x, m))?;
                spaces.get(i).copied().flatten().map(|s| (s.total, s.avail))
            },
            |_| None,
        );
        self.snap.timed(prom::Collector::Disks, t0);
        let v = Utf8Bytes::from(serde_json::to_string(&rows).map_err(|e| e.to_string())?);
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
        let v = if self.pb_buf.len() > GZIP_THRESHOLD
            && self.gzip.compress(&self.pb_buf, &mut self.gz_buf)
        {
            Bytes::copy_from_slice(&self.gz_buf)
        } else {
            Bytes::copy_from_slice(&self.pb_buf)
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
        self.journal
            .retain(|_, c| now.duration_since(c.at) < journal::TTL);
        if self.journal.len() >= process_detail::MAX_PIDS {
            if let Some(k) = self
                .journal
                .iter()
                .min_by_key(|(_, c)| c.at)
                .map(|(k, _)| *k)
            {
                self.journal.remove(&k);
            }
        }
        self.journal.insert(
            pid,
            Cached {
                at: now,
                value: v.clone(),
            },
        );
        Answer::Text(v)
    }
}
