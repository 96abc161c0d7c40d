//! The fast metrics (the `metrics` answer and the history ring's sample):
//! CPU busy % against kept baselines, memory, interfaces, the board
//! readings, the CPU temperature, the host name and the process count.

use super::collector::{Collector, Cx};
use super::cpu::{self, MIN_CPU_WINDOW};
use super::error::{CollectError, Result};
use super::fs::{KeptDir, KeptFile, Root};
use super::host::{self, clock_ticks, epoch_ms, uname_hostname};
use super::{board, diskstats, fs, memory, net, rate, sensors};
use crate::families::Sink;
use std::time::{Duration, Instant};

/// `process_count` may be this old: the last process scan's count, else a
/// listing of `/proc` kept this long (a listing costs more kernel time
/// than the rest of a metrics sample, and the count moves slowly).
const PROCESS_COUNT_MAX_AGE: Duration = Duration::from_secs(5);

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

impl MetricsSample {
    /// node_exporter's families of the fast metrics and the board
    /// readings (and `sockagent_throttling`), in the order a scrape lists them.
    pub fn describe(&self, out: &mut dyn Sink) {
        self.stat.describe(clock_ticks() as f64, out);
        self.board.describe_load(out);
        memory::describe_fields(&self.mem_fields, out);
        net::describe(&self.nets, &net::BYTES, out);
        self.board.describe(out);
        self.disk_io.describe(out);
        net::describe(&self.nets, &net::PACKETS, out);
        net::describe(&self.nets, &net::ERRORS, out);
        self.board.describe_rest(out);
        host::describe_time(out);
    }
}

/// The fast metrics' collector: its kept files and CPU baselines.
pub struct Metrics {
    pub sample: MetricsSample,
    /// Whether the next collection is a full one (`false`: a history
    /// tick's, without the host name and the process count).
    pub next_full: bool,
    meminfo_file: KeptFile,
    netdev_file: KeptFile,
    hostname_file: KeptFile,
    proc_dir: KeptDir,
    /// Older and newer CPU baselines (see `cpu_sample`).
    cpu_a: (Instant, cpu::StatSample),
    cpu_b: (Instant, cpu::StatSample),
    /// When the network rates' bases were taken.
    net_window: rate::Window,
    temp: sensors::CpuTemp,
    /// A listing's process count, and when it was taken.
    listed: Option<(Instant, u64)>,
}

impl Metrics {
    pub fn new(root: &Root, now: Instant) -> Self {
        Metrics {
            sample: MetricsSample::default(),
            next_full: true,
            meminfo_file: KeptFile::new(root, "proc/meminfo"),
            netdev_file: KeptFile::new(root, "proc/net/dev"),
            hostname_file: KeptFile::new(root, "proc/sys/kernel/hostname"),
            proc_dir: KeptDir::new(root, "proc"),
            cpu_a: (now, cpu::StatSample::default()),
            cpu_b: (now, cpu::StatSample::default()),
            net_window: rate::Window::default(),
            temp: sensors::CpuTemp::default(),
            listed: None,
        }
    }

    /// Takes the CPU baselines, so the first answer describes a real
    /// window; says the aggregate jiffies (the process scan's baseline).
    pub fn prime(&mut self, cx: &mut Cx) -> Option<u64> {
        let first = cx.stat_now().ok()?;
        self.cpu_a.1.clone_from(first);
        self.cpu_b.1.clone_from(first);
        Some(first.all.total)
    }

    /// Boot time (epoch s) from the newer CPU baseline; 0 before one.
    pub fn btime(&self) -> u64 {
        self.cpu_b.1.btime()
    }

    /// Reads `/proc/stat` into the sample and computes total and per-core
    /// busy % against a baseline at least `MIN_CPU_WINDOW` old where one
    /// exists: `a` is always at least that much older than `b`, and `b` is
    /// replaced only once it is that old.
    fn cpu_sample(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
        let m = &mut self.sample;
        cx.read_stat(&mut m.stat)?;
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
    fn refresh_hostname(&mut self, cx: &mut Cx) {
        let host = &mut self.sample.hostname;
        if cx.s.root.is_host() && host::refresh_nodename(host) {
            return;
        }
        if self.hostname_file.read(&mut cx.buf).is_ok() {
            let h = cx.buf.trim_ascii();
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
    fn count_processes(&mut self, cx: &mut Cx, now: Instant) -> u64 {
        let young = |at: Instant| now.duration_since(at) < PROCESS_COUNT_MAX_AGE;
        match (cx.last_scan, self.listed) {
            (Some((at, n)), _) if young(at) => return n,
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
                cx.reported.note(&CollectError::io("/proc", e));
                0
            }
        }
    }

    /// Memory and the interfaces; fails only when `/proc/meminfo` cannot
    /// be read.
    fn memory_and_nets(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
        self.meminfo_file
            .read(&mut cx.buf)
            .map_err(CollectError::reading("/proc/meminfo"))?;
        let m = &mut self.sample;
        m.mem = memory::parse_meminfo(&cx.buf, &mut m.mem_fields)
            .ok_or(CollectError::malformed("/proc/meminfo", "no MemTotal line"))?;
        match self.netdev_file.read(&mut cx.buf) {
            Ok(()) => {
                let step = self.net_window.step(now);
                net::parse_net_dev_step(&cx.buf, &mut m.nets, step);
            }
            Err(e) => {
                m.nets.clear();
                self.net_window.reset();
                cx.reported.note(&CollectError::io("/proc/net/dev", e));
            }
        }
        Ok(())
    }
}

impl Collector for Metrics {
    const NAME: &'static str = "metrics";
    /// The board readers, `/proc/diskstats` and the GPU probe re-probe on its clock.
    const REPROBE: Option<std::time::Duration> = Some(super::rediscover::REDISCOVER);

    /// Fails only when `/proc/stat` or `/proc/meminfo` cannot be read;
    /// every other reading is optional.
    fn collect(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
        let full = std::mem::replace(&mut self.next_full, true);
        self.cpu_sample(cx, now)?;
        self.memory_and_nets(cx, now)?;
        let (root, period) = (&cx.s.root, cx.s.board_period);
        let m = &mut self.sample;
        if m.board.due(now, period) {
            if let Err(e) = m.disk_io.sample(root, now, cx.epoch, &mut cx.buf) {
                cx.reported.note(&e);
            }
        }
        m.board
            .refresh(root, now, cx.epoch, period, &mut cx.buf, full);
        if full {
            self.refresh_hostname(cx);
            self.sample.process_count = self.count_processes(cx, now);
        }
        let m = &mut self.sample;
        m.cpu_temp_c = if cx.s.temp_enabled {
            self.temp.read(&cx.s.root)
        } else {
            None
        };
        m.full = full;
        m.sampled_at_ms = epoch_ms();
        m.at = Some(now);
        Ok(())
    }

    fn taken(&self) -> Option<Instant> {
        self.sample.at
    }
}
