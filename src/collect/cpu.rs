//! CPU busy percentages from `/proc/stat`.

use super::num::{fields, lines, parse_u64};
use crate::families::{Sink, Value};
use std::time::Duration;

/// CPU percentages are computed over at least this window, so an answer
/// never describes a few microseconds of scheduler noise.
pub const MIN_CPU_WINDOW: Duration = Duration::from_millis(100);

/// Jiffies of one `cpu` line: the total of the first eight columns (user,
/// nice, system, idle, iowait, irq, softirq, steal) and the idle part
/// (idle + iowait). guest/guest_nice are already inside user/nice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub total: u64,
    pub idle: u64,
}

impl CpuTicks {
    /// Busy % between `prev` and `self`, 0..=100; 0 when no time passed.
    pub fn busy_pct_since(&self, prev: &CpuTicks) -> f32 {
        let total = self.total.saturating_sub(prev.total);
        let idle = self.idle.saturating_sub(prev.idle);
        if total == 0 {
            return 0.0;
        }
        let busy = total.saturating_sub(idle);
        ((busy as f64 / total as f64) * 100.0).clamp(0.0, 100.0) as f32
    }
}

/// What the agent keeps from one read of `/proc/stat`: the busy/idle
/// figures the answers need, and the per-mode ticks and counters that
/// `/metrics` shows, all from one pass over the file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StatSample {
    pub all: CpuTicks,
    /// (cpu number, ticks), sorted by cpu number. Offline CPUs are absent.
    pub cores: Vec<(u32, CpuTicks)>,
    /// Each core's ticks per mode, in the same order as `cores`.
    pub modes: Vec<CpuModes>,
    /// Boot time and the other system-wide counters.
    pub counters: StatCounters,
}

/// `clone_from` reuses the vectors (a derived `Clone` would allocate
/// new ones): the CPU baselines are replaced this way every 100 ms.
impl Clone for StatSample {
    fn clone(&self) -> Self {
        StatSample {
            all: self.all,
            cores: self.cores.clone(),
            modes: self.modes.clone(),
            counters: self.counters,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.all = source.all;
        self.cores.clone_from(&source.cores);
        self.modes.clone_from(&source.modes);
        self.counters = source.counters;
    }
}

impl StatSample {
    /// Boot time, epoch seconds (0 when the file had no `btime` line).
    pub fn btime(&self) -> u64 {
        self.counters.btime
    }
}

/// The first eight columns of a `cpu` line (user, nice, system, idle,
/// iowait, irq, softirq, steal; missing ones 0) and how many there were.
/// `None` on a column that is not a number.
fn parse_columns<'a>(cols: impl Iterator<Item = &'a [u8]>) -> Option<([u64; 8], usize)> {
    let mut c = [0u64; 8];
    let mut n = 0;
    for (slot, col) in c.iter_mut().zip(cols) {
        *slot = parse_u64(col)?;
        n += 1;
    }
    Some((c, n))
}

fn parse_ticks<'a>(cols: impl Iterator<Item = &'a [u8]>) -> Option<([u64; 8], CpuTicks)> {
    let (c, n) = parse_columns(cols)?;
    // Kernels before 2.6.11 had 4..7 columns; fewer than 4 is not /proc/stat.
    if n < 4 {
        return None;
    }
    let [_, _, _, idle, iowait, ..] = c;
    let ticks = CpuTicks {
        total: c.iter().fold(0u64, |a, &v| a.saturating_add(v)),
        idle: idle.saturating_add(iowait),
    };
    Some((c, ticks))
}

/// Parses `/proc/stat` into `out` (reusing its vectors), in one pass.
pub fn parse_stat(buf: &[u8], out: &mut StatSample) -> Result<(), &'static str> {
    out.cores.clear();
    out.modes.clear();
    out.counters = StatCounters::default();
    let mut saw_all = false;
    let mut sorted = true;
    for line in lines(buf) {
        let mut f = fields(line);
        let Some(key) = f.next() else { continue };
        let counter = match key {
            b"btime" => Some(&mut out.counters.btime),
            b"ctxt" => Some(&mut out.counters.ctxt),
            b"processes" => Some(&mut out.counters.forks),
            b"intr" => Some(&mut out.counters.intr),
            b"procs_running" => Some(&mut out.counters.procs_running),
            b"procs_blocked" => Some(&mut out.counters.procs_blocked),
            _ => None,
        };
        if let Some(slot) = counter {
            *slot = f.next().and_then(parse_u64).unwrap_or(0);
        } else if key == b"cpu" {
            out.all = parse_ticks(f).ok_or("bad aggregate cpu line")?.1;
            saw_all = true;
        } else if let Some(num) = key.strip_prefix(b"cpu") {
            let Some(n) = parse_u64(num).and_then(|n| u32::try_from(n).ok()) else {
                continue;
            };
            let (modes, t) = parse_ticks(f).ok_or("bad per-cpu line")?;
            sorted &= out.cores.last().is_none_or(|c| c.0 < n);
            out.cores.push((n, t));
            out.modes.push(CpuModes {
                cpu: n,
                ticks: modes,
            });
        }
    }
    if !saw_all {
        return Err("no aggregate cpu line");
    }
    if !sorted {
        out.cores.sort_unstable_by_key(|c| c.0);
        out.modes.sort_unstable_by_key(|m| m.cpu);
    }
    Ok(())
}

/// The first eight columns of a `cpu` line, in /proc/stat's order: the
/// `mode` label values of node_exporter's `node_cpu_seconds_total`.
pub const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// One `cpuN` line's ticks per mode (columns an old kernel lacks read 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuModes {
    pub cpu: u32,
    pub ticks: [u64; 8],
}

/// The system-wide counters of `/proc/stat` besides the CPU lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatCounters {
    pub btime: u64,
    pub ctxt: u64,
    pub forks: u64,
    pub intr: u64,
    pub procs_running: u64,
    pub procs_blocked: u64,
}

crate::families::declare! {
    pub CPU_SECONDS = counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.");
    pub BOOT_TIME = gauge("node_boot_time_seconds", "Node boot time, in unixtime.");
    pub CONTEXT_SWITCHES = counter("node_context_switches_total", "Total number of context switches.");
    pub FORKS = counter("node_forks_total", "Total number of forks.");
    pub INTERRUPTS = counter("node_intr_total", "Total number of interrupts serviced.");
    pub PROCS_RUNNING = gauge("node_procs_running", "Number of processes in runnable state.");
    pub PROCS_BLOCKED = gauge("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.");
}

impl StatSample {
    /// node_exporter's cpu and stat families; `hz`: clock ticks a second.
    pub fn describe(&self, hz: f64, out: &mut dyn Sink) {
        CPU_SECONDS.open(out);
        let mut n = itoa::Buffer::new();
        for c in &self.modes {
            let cpu = n.format(c.cpu);
            for (mode, ticks) in MODES.iter().zip(c.ticks) {
                out.sample(&[("cpu", cpu), ("mode", mode)], Value::F(ticks as f64 / hz));
            }
        }
        let c = &self.counters;
        BOOT_TIME.single(out, c.btime);
        CONTEXT_SWITCHES.single(out, c.ctxt);
        FORKS.single(out, c.forks);
        INTERRUPTS.single(out, c.intr);
        PROCS_RUNNING.single(out, c.procs_running);
        PROCS_BLOCKED.single(out, c.procs_blocked);
    }
}

/// Per-core busy % of `now` against `prev`, matched by cpu number, in
/// cpu-number order. A core absent from `prev` (just onlined) reads 0.
pub fn per_core_pct(now: &StatSample, prev: &StatSample, out: &mut Vec<f32>) {
    out.clear();
    for (n, t) in &now.cores {
        let pct = match prev.cores.binary_search_by_key(n, |c| c.0) {
            Ok(i) => prev.cores.get(i).map_or(0.0, |p| t.busy_pct_since(&p.1)),
            Err(_) => 0.0,
        };
        out.push(pct);
    }
}

/// `/proc/loadavg` → the 1, 5 and 15 minute averages.
pub fn parse_loadavg(buf: &[u8]) -> Option<[f64; 3]> {
    let mut f = fields(buf).map(super::num::parse_decimal);
    Some([f.next()??, f.next()??, f.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fs::Root;

    /// `/proc/stat` of a fixture tree, parsed.
    fn stat_of(tree: &str) -> StatSample {
        let buf = std::fs::read(Root::fixture(tree).path("proc/stat")).unwrap();
        let mut s = StatSample::default();
        parse_stat(&buf, &mut s).unwrap();
        s
    }

    const STAT: &[u8] = b"cpu  100 0 50 800 50 0 0 0 0 0\n\
cpu0 50 0 25 400 25 0 0 0 0 0\n\
cpu1 50 0 25 400 25 0 0 0 0 0\n\
intr 1 2 3\nctxt 99\nbtime 1700000000\nprocesses 5\n";

    #[test]
    fn parses_aggregate_and_cores() {
        let mut s = StatSample::default();
        parse_stat(STAT, &mut s).unwrap();
        assert_eq!(
            s.all,
            CpuTicks {
                total: 1000,
                idle: 850
            }
        );
        assert_eq!(s.cores.len(), 2);
        assert_eq!(s.btime(), 1_700_000_000);
    }

    #[test]
    fn busy_over_window() {
        let a = CpuTicks {
            total: 1000,
            idle: 850,
        };
        let b = CpuTicks {
            total: 1100,
            idle: 875,
        };
        assert!((b.busy_pct_since(&a) - 75.0).abs() < 0.01);
        assert_eq!(a.busy_pct_since(&a), 0.0);
        // counters going backwards (wrap, hotplug) never give garbage
        assert_eq!(a.busy_pct_since(&b), 0.0);
    }

    #[test]
    fn cores_in_number_order_with_gaps() {
        // cpu2 offline; cpu10 listed before cpu3 on purpose
        let buf = b"cpu 4 0 0 4 0 0 0 0\ncpu10 1 0 0 1\ncpu0 1 0 0 1\ncpu1 1 0 0 1\ncpu3 1 0 0 1\n";
        let mut s = StatSample::default();
        parse_stat(buf, &mut s).unwrap();
        let nums: Vec<u32> = s.cores.iter().map(|c| c.0).collect();
        assert_eq!(nums, vec![0, 1, 3, 10]);
    }

    #[test]
    fn rejects_garbage() {
        let mut s = StatSample::default();
        assert!(parse_stat(b"", &mut s).is_err());
        assert!(parse_stat(b"cpu x y z\n", &mut s).is_err());
    }

    #[test]
    fn fixture_prometheus_procfs() {
        let s = stat_of("prometheus-procfs");
        assert_eq!(s.cores.len(), 8);
        assert_eq!(s.btime(), 1_418_183_276);
        // cpu  301854 612 111922 8979004 3552 2 3944 0 0 0
        assert_eq!(
            s.all.total,
            301854 + 612 + 111922 + 8979004 + 3552 + 2 + 3944
        );
        assert_eq!(s.all.idle, 8979004 + 3552);
    }

    #[test]
    fn modes_and_counters_from_prometheus_fixture() {
        let mut s = stat_of("prometheus-procfs");
        let (cores, c) = (&s.modes, s.counters);
        assert_eq!(cores.len(), 8);
        // cpu0 44490 19 21045 1087069 220 1 3410 0 0 0
        assert_eq!(cores[0].ticks, [44490, 19, 21045, 1087069, 220, 1, 3410, 0]);
        assert_eq!(c.btime, 1_418_183_276);
        assert_eq!(c.ctxt, 38014093);
        assert_eq!(c.forks, 26442);
        assert_eq!((c.procs_running, c.procs_blocked), (2, 1));
        assert_eq!(c.intr, 73777505);
        // a short line (old kernel) reads 0 for the missing modes; out of
        // order lines come back in cpu-number order
        parse_stat(b"cpu 2 4 6 8\ncpu3 1 2 3 4\ncpu1 1 2 3 4\n", &mut s).unwrap();
        assert_eq!(
            s.modes,
            vec![
                CpuModes {
                    cpu: 1,
                    ticks: [1, 2, 3, 4, 0, 0, 0, 0]
                },
                CpuModes {
                    cpu: 3,
                    ticks: [1, 2, 3, 4, 0, 0, 0, 0]
                }
            ]
        );
        assert_eq!(s.counters, StatCounters::default());
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg(b"0.52 1.50 2.00 1/95 4242\n"),
            Some([0.52, 1.5, 2.0])
        );
        assert_eq!(parse_loadavg(b"0.52 x"), None);
        assert_eq!(parse_loadavg(b""), None);
    }

    #[test]
    fn fixture_h200_vm() {
        let s = stat_of("h200-vm");
        assert_eq!(s.cores.len(), 16);
    }
}
