//! CPU busy percentages from `/proc/stat`.

use super::num::{fields, lines, parse_u64};

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

/// What the agent keeps from one read of `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatSample {
    pub all: CpuTicks,
    /// (cpu number, ticks), sorted by cpu number. Offline CPUs are absent.
    pub cores: Vec<(u32, CpuTicks)>,
    /// Boot time, epoch seconds.
    pub btime: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

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

fn parse_ticks<'a>(cols: impl Iterator<Item = &'a [u8]>) -> Option<CpuTicks> {
    let (c, n) = parse_columns(cols)?;
    // Kernels before 2.6.11 had 4..7 columns; fewer than 4 is not /proc/stat.
    if n < 4 {
        return None;
    }
    let [_, _, _, idle, iowait, ..] = c;
    Some(CpuTicks {
        total: c.iter().fold(0u64, |a, &v| a.saturating_add(v)),
        idle: idle.saturating_add(iowait),
    })
}

/// Parses `/proc/stat` into `out` (reusing its core vector).
pub fn parse_stat(buf: &[u8], out: &mut StatSample) -> Result<(), ParseError> {
    out.cores.clear();
    out.btime = 0;
    let mut saw_all = false;
    for line in lines(buf) {
        let mut f = fields(line);
        let Some(key) = f.next() else { continue };
        if key == b"cpu" {
            out.all = parse_ticks(f).ok_or(ParseError("bad aggregate cpu line"))?;
            saw_all = true;
        } else if let Some(num) = key.strip_prefix(b"cpu") {
            let Some(n) = parse_u64(num).and_then(|n| u32::try_from(n).ok()) else {
                continue;
            };
            let t = parse_ticks(f).ok_or(ParseError("bad per-cpu line"))?;
            out.cores.push((n, t));
        } else if key == b"btime" {
            out.btime = f.next().and_then(parse_u64).unwrap_or(0);
        }
    }
    if !saw_all {
        return Err(ParseError("no aggregate cpu line"));
    }
    out.cores.sort_unstable_by_key(|c| c.0);
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

/// Parses every `cpuN` line's per-mode ticks into `cores` (sorted by cpu
/// number, reusing the vector) and the counters. Lines that do not parse
/// are skipped: this feeds /metrics, which shows what it can.
pub fn parse_stat_modes(buf: &[u8], cores: &mut Vec<CpuModes>) -> StatCounters {
    cores.clear();
    let mut c = StatCounters::default();
    for line in lines(buf) {
        let mut f = fields(line);
        let Some(key) = f.next() else { continue };
        let counter = match key {
            b"btime" => Some(&mut c.btime),
            b"ctxt" => Some(&mut c.ctxt),
            b"processes" => Some(&mut c.forks),
            b"intr" => Some(&mut c.intr),
            b"procs_running" => Some(&mut c.procs_running),
            b"procs_blocked" => Some(&mut c.procs_blocked),
            _ => None,
        };
        if let Some(slot) = counter {
            *slot = f.next().and_then(parse_u64).unwrap_or(0);
            continue;
        }
        let Some(n) = key
            .strip_prefix(b"cpu")
            .and_then(parse_u64)
            .and_then(|n| u32::try_from(n).ok())
        else {
            continue;
        };
        if let Some((ticks, _)) = parse_columns(f) {
            cores.push(CpuModes { cpu: n, ticks });
        }
    }
    cores.sort_unstable_by_key(|m| m.cpu);
    c
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.btime, 1_700_000_000);
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
        let buf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/prometheus-procfs/proc/stat"
        ))
        .unwrap();
        let mut s = StatSample::default();
        parse_stat(&buf, &mut s).unwrap();
        assert_eq!(s.cores.len(), 8);
        assert_eq!(s.btime, 1_418_183_276);
        // cpu  301854 612 111922 8979004 3552 2 3944 0 0 0
        assert_eq!(
            s.all.total,
            301854 + 612 + 111922 + 8979004 + 3552 + 2 + 3944
        );
        assert_eq!(s.all.idle, 8979004 + 3552);
    }

    #[test]
    fn modes_and_counters_from_prometheus_fixture() {
        let buf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/prometheus-procfs/proc/stat"
        ))
        .unwrap();
        let mut cores = Vec::new();
        let c = parse_stat_modes(&buf, &mut cores);
        assert_eq!(cores.len(), 8);
        // cpu0 44490 19 21045 1087069 220 1 3410 0 0 0
        assert_eq!(cores[0].ticks, [44490, 19, 21045, 1087069, 220, 1, 3410, 0]);
        assert_eq!(c.btime, 1_418_183_276);
        assert_eq!(c.ctxt, 38014093);
        assert_eq!(c.forks, 26442);
        assert_eq!((c.procs_running, c.procs_blocked), (2, 1));
        assert_eq!(c.intr, 73777505);
        // a short line (old kernel) reads 0 for the missing modes; garbage is skipped
        let c = parse_stat_modes(b"cpu 1 2 3 4\ncpu3 1 2 3 4\ncpu1 x 2 3 4\n", &mut cores);
        assert_eq!(
            cores,
            vec![CpuModes {
                cpu: 3,
                ticks: [1, 2, 3, 4, 0, 0, 0, 0]
            }]
        );
        assert_eq!(c, StatCounters::default());
    }

    #[test]
    fn fixture_h200_vm() {
        let buf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h200-vm/proc/stat"
        ))
        .unwrap();
        let mut s = StatSample::default();
        parse_stat(&buf, &mut s).unwrap();
        assert_eq!(s.cores.len(), 16);
    }
}
