//! Board health: what the metrics answer shows beside CPU, memory and
//! network that changes slowly or costs a file per core, fan or battery:
//! each core's clock, load average, uptime, pressure, throttling, fans,
//! batteries and RAPL; `Collectors` reads `/proc/diskstats` on the same
//! cadence (the kernel formats a line per block device, loops and
//! partitions included: ~11 µs on a VM, as much as `/proc/stat`). These
//! are read at most once per `Settings::board_period` (1 s by default) and
//! reused by the samples in between. A history tick reads pressure at most
//! every 2 s, the period the kernel recomputes its averages on, and no
//! load average or uptime (its slot keeps neither). Uptime is the last
//! reading plus the time since, so it is exact on every sample; on the
//! host the reading is `CLOCK_BOOTTIME`, the clock `/proc/uptime` prints,
//! so no file is read for it.
//!
//! Each reader keeps its files open (`KeptFile`) and finds its set
//! (cores, fans, batteries, RAPL domains, throttle counts) at first use,
//! then in each new re-probe `epoch` of the metrics collector (every 30 s)
//! or after a read finds a file gone.

use super::cpufreq::CpuFreqs;
use super::fs::{KeptFile, Root};
use super::num::{fields, parse_decimal};
use super::power::Power;
use super::pressure::{parse_pressure, Pressure, Psi};
use super::sensors::Fans;
use super::throttle::Throttle;
use crate::families::{Family, Sink};
use std::time::{Duration, Instant};

/// The kernel recomputes pressure's averages every 2 s (`PSI_FREQ`):
/// reading them more often reads the same figures.
pub const PRESSURE_PERIOD: Duration = Duration::from_secs(2);

/// `/proc/uptime`'s first field, seconds since boot.
pub fn parse_uptime(buf: &[u8]) -> Option<f64> {
    fields(buf).next().and_then(parse_decimal)
}

#[derive(Debug, Default)]
pub struct Board {
    files: Option<Files>,
    pub cpufreq: CpuFreqs,
    pub throttle: Throttle,
    pub fans: Fans,
    pub power: Power,
    pub load_avg: Option<[f64; 3]>,
    pub pressure: Option<Pressure>,
    /// The last uptime reading and when it was taken.
    uptime: Option<(f64, Instant)>,
    read_at: Option<Instant>,
    pressure_at: Option<Instant>,
    /// When load average and uptime were last read.
    answer_at: Option<Instant>,
}

/// `at` is `period` old or more, a tenth early counting (see `Board::due`).
fn stale(at: Option<Instant>, now: Instant, period: Duration) -> bool {
    at.is_none_or(|at| now.saturating_duration_since(at) >= period - period / 10)
}

/// Seconds since boot, suspend included: `CLOCK_BOOTTIME`, the clock
/// `/proc/uptime` prints (a vDSO call, no file to format).
fn boot_time_s() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    (unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } == 0)
        .then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

#[derive(Debug)]
struct Files {
    loadavg: KeptFile,
    /// Under another root only (the host's is `CLOCK_BOOTTIME`).
    uptime: Option<KeptFile>,
    /// cpu, memory, io
    pressure: [KeptFile; 3],
}

impl Board {
    /// True when the last read is `period` old or more (or there is none).
    /// A tenth of the period early counts: a caller on a one-period tick
    /// (the history ring's) wakes a little early or late each time, and
    /// must not find the board fresh every other tick.
    pub fn due(&self, now: Instant, period: Duration) -> bool {
        stale(self.read_at, now, period)
    }

    /// Reads every board source that is due (see `due`): clocks,
    /// throttling, fans and power each `period`; pressure each `period`
    /// for an answer's sample (`for_answer`), each `PRESSURE_PERIOD` at
    /// the least for a history tick's; load average and uptime each
    /// `period`, for an answer's sample only. The readers' sets are looked
    /// up again when `epoch` is new to them (`rediscover::due`).
    pub fn refresh(
        &mut self,
        root: &Root,
        now: Instant,
        epoch: u64,
        period: Duration,
        buf: &mut Vec<u8>,
        for_answer: bool,
    ) {
        let f = self.files.get_or_insert_with(|| Files {
            loadavg: KeptFile::new(root, "proc/loadavg"),
            uptime: (!root.is_host()).then(|| KeptFile::new(root, "proc/uptime")),
            pressure: [
                KeptFile::new(root, "proc/pressure/cpu"),
                KeptFile::new(root, "proc/pressure/memory"),
                KeptFile::new(root, "proc/pressure/io"),
            ],
        });
        if for_answer && stale(self.answer_at, now, period) {
            self.answer_at = Some(now);
            self.load_avg = match f.loadavg.read(buf) {
                Ok(()) => super::cpu::parse_loadavg(buf),
                Err(_) => None,
            };
            self.uptime = match &mut f.uptime {
                Some(k) => match k.read(buf) {
                    Ok(()) => parse_uptime(buf),
                    Err(_) => None,
                },
                None => boot_time_s(),
            }
            .map(|u| (u, now));
        }
        // An answer's pressure is at most `period` old, as the rest: its
        // `total` counters go to /metrics. A history tick keeps only avg10,
        // which the kernel recomputes every `PRESSURE_PERIOD`.
        let psi_period = if for_answer {
            period
        } else {
            period.max(PRESSURE_PERIOD)
        };
        if stale(self.pressure_at, now, psi_period) {
            self.pressure_at = Some(now);
            // Absent (no CONFIG_PSI), or EOPNOTSUPP (booted with psi=0): null.
            let mut psi = |k: &mut KeptFile| -> Option<Psi> {
                k.read(buf).ok()?;
                parse_pressure(buf)
            };
            let [c, m, i] = &mut f.pressure;
            let p = Pressure {
                cpu: psi(c),
                memory: psi(m),
                io: psi(i),
            };
            self.pressure = (p.cpu.is_some() || p.memory.is_some() || p.io.is_some()).then_some(p);
        }
        if !stale(self.read_at, now, period) {
            return;
        }
        self.read_at = Some(now);
        self.cpufreq.refresh(root, epoch, buf);
        self.throttle.refresh(root, now, epoch, buf);
        self.fans.refresh(root, epoch, buf);
        self.power.refresh(root, now, epoch, buf);
    }

    /// Seconds since boot at `now`.
    pub fn uptime_s(&self, now: Instant) -> Option<f64> {
        self.uptime
            .map(|(u, at)| u + now.saturating_duration_since(at).as_secs_f64())
    }
}

pub const LOAD: [Family; 3] = [
    Family::gauge("node_load1", "1m load average."),
    Family::gauge("node_load5", "5m load average."),
    Family::gauge("node_load15", "15m load average."),
];

impl Board {
    /// The load averages, when this sample read them.
    pub fn describe_load(&self, out: &mut dyn Sink) {
        if let Some(loads) = self.load_avg {
            for (family, v) in LOAD.iter().zip(loads) {
                family.single(out, v);
            }
        }
    }

    /// Clocks, pressure, fans, power and throttling, in that order.
    pub fn describe(&self, out: &mut dyn Sink) {
        self.cpufreq.describe(out);
        if let Some(p) = &self.pressure {
            p.describe(out);
        }
    }

    /// What follows the disk and network counters: fans, power, throttling.
    pub fn describe_rest(&self, out: &mut dyn Sink) {
        self.fans.describe(out);
        self.power.describe(out);
        if let Some(t) = &self.throttle.sample {
            t.describe(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::collector::BOARD_PERIOD;

    fn server() -> Root {
        Root::fixture("server")
    }

    #[test]
    fn uptime() {
        assert_eq!(parse_uptime(b"1370.70 399.69\n"), Some(1370.7));
        assert_eq!(parse_uptime(b"12 3\n"), Some(12.0));
        assert_eq!(parse_uptime(b""), None);
        assert_eq!(parse_uptime(b"x 1"), None);
    }

    #[test]
    fn read_once_per_period() {
        let root = server();
        let mut b = Board::default();
        let t0 = Instant::now();
        let mut buf = Vec::new();
        b.refresh(&root, t0, 1, BOARD_PERIOD, &mut buf, true);
        assert_eq!(b.load_avg, Some([2.5, 1.75, 1.0]));
        assert_eq!(b.uptime_s(t0), Some(864000.25));
        assert_eq!(b.uptime_s(t0 + Duration::from_secs(2)), Some(864002.25));
        let p = b.pressure.unwrap();
        assert_eq!(p.cpu.unwrap().some.unwrap().avg10, 12.5);
        b.load_avg = None;
        let half = t0 + Duration::from_millis(500);
        b.refresh(&root, half, 1, BOARD_PERIOD, &mut buf, true);
        assert_eq!(b.load_avg, None, "not read again inside the period");
        b.refresh(
            &root,
            t0 + Duration::from_secs(1),
            1,
            BOARD_PERIOD,
            &mut buf,
            true,
        );
        assert!(b.load_avg.is_some());
    }

    #[test]
    fn a_history_tick_reads_no_load_average_and_pressure_every_two_seconds() {
        let root = server();
        let mut b = Board::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut buf = Vec::new();
        b.refresh(&root, t0, 1, BOARD_PERIOD, &mut buf, false);
        assert_eq!(
            b.load_avg, None,
            "a history tick's slot keeps no load average"
        );
        assert_eq!(b.uptime_s(t0), None);
        assert!(b.pressure.is_some());
        b.pressure = None;
        b.refresh(&root, t0 + ms(1000), 1, BOARD_PERIOD, &mut buf, false);
        assert!(b.pressure.is_none(), "pressure's averages move every 2 s");
        // a tick that comes a little early still reads it
        b.refresh(&root, t0 + ms(1900), 1, BOARD_PERIOD, &mut buf, false);
        assert!(b.pressure.is_some());
        // an answer's sample gets load, uptime and pressure at most a
        // period old, whatever the ticks read
        b.pressure = None;
        b.refresh(&root, t0 + ms(2950), 1, BOARD_PERIOD, &mut buf, true);
        assert_eq!(b.load_avg, Some([2.5, 1.75, 1.0]));
        assert!(b.uptime_s(t0 + ms(2950)).is_some());
        assert!(b.pressure.is_some(), "its totals go to /metrics");
    }

    #[test]
    fn the_hosts_uptime_is_the_boot_clock_proc_uptime_prints() {
        let mut b = Board::default();
        let now = Instant::now();
        let before = parse_uptime(&std::fs::read("/proc/uptime").unwrap()).unwrap();
        b.refresh(&Root::new("/"), now, 1, BOARD_PERIOD, &mut Vec::new(), true);
        let after = parse_uptime(&std::fs::read("/proc/uptime").unwrap()).unwrap();
        let u = b.uptime_s(now).unwrap();
        // /proc/uptime prints hundredths, truncated
        assert!(
            u >= before && u < after + 0.01,
            "{before} <= {u} < {after} + 0.01"
        );
    }
}
