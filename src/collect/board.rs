//! Board health: what the metrics answer shows beside CPU, memory and
//! network that changes slowly or costs a file per core, fan or battery:
//! each core's clock, load average, uptime, pressure, throttling, fans,
//! batteries and RAPL; `Collectors` reads `/proc/diskstats` on the same
//! cadence (the kernel formats a line per block device, loops and
//! partitions included: ~11 µs on a VM, as much as `/proc/stat`). These are read at most once per `Settings::board_period`
//! (1 s by default) and reused by the samples in between (load average
//! moves every 5 s, pressure's avg10 every 2 s); uptime is the last read
//! plus the time since, so it is exact on every sample.
//!
//! Each reader keeps its files open (`KeptFile`) and finds its set
//! (cores, fans, batteries, RAPL domains, throttle counts) at first use,
//! then every 30 s or after a read finds a file gone.

use super::cpufreq::CpuFreqs;
use super::fs::{KeptFile, Root};
use super::num::{fields, parse_decimal};
use super::power::Power;
use super::pressure::{parse_pressure, Pressure, Psi};
use super::sensors::Fans;
use super::throttle::Throttle;
use std::time::{Duration, Instant};

/// The default of `Settings::board_period`.
pub const BOARD_PERIOD: Duration = Duration::from_secs(1);

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
    /// The last `/proc/uptime` reading and when it was taken.
    uptime: Option<(f64, Instant)>,
    read_at: Option<Instant>,
}

#[derive(Debug)]
struct Files {
    loadavg: KeptFile,
    uptime: KeptFile,
    /// cpu, memory, io
    pressure: [KeptFile; 3],
}

impl Board {
    /// True when the last read is `period` old or more (or there is none).
    /// A tenth of the period early counts: a caller on a one-period tick
    /// (the history ring's) wakes a little early or late each time, and
    /// must not find the board fresh every other tick.
    pub fn due(&self, now: Instant, period: Duration) -> bool {
        self.read_at
            .is_none_or(|at| now.saturating_duration_since(at) >= period - period / 10)
    }

    /// Reads every board source if the last read is `period` old or more (see `due`).
    pub fn refresh(&mut self, root: &Root, now: Instant, period: Duration, buf: &mut Vec<u8>) {
        if !self.due(now, period) {
            return;
        }
        self.read_at = Some(now);
        let f = self.files.get_or_insert_with(|| Files {
            loadavg: KeptFile::new(root, "proc/loadavg"),
            uptime: KeptFile::new(root, "proc/uptime"),
            pressure: [
                KeptFile::new(root, "proc/pressure/cpu"),
                KeptFile::new(root, "proc/pressure/memory"),
                KeptFile::new(root, "proc/pressure/io"),
            ],
        });
        self.load_avg = match f.loadavg.read(buf) {
            Ok(()) => super::cpu::parse_loadavg(buf),
            Err(_) => None,
        };
        self.uptime = match f.uptime.read(buf) {
            Ok(()) => parse_uptime(buf).map(|u| (u, now)),
            Err(_) => None,
        };
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
        self.cpufreq.refresh(root, now, buf);
        self.throttle.refresh(root, now, buf);
        self.fans.refresh(root, now, buf);
        self.power.refresh(root, now, buf);
    }

    /// Seconds since boot at `now`.
    pub fn uptime_s(&self, now: Instant) -> Option<f64> {
        self.uptime
            .map(|(u, at)| u + now.saturating_duration_since(at).as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime() {
        assert_eq!(parse_uptime(b"1370.70 399.69\n"), Some(1370.7));
        assert_eq!(parse_uptime(b"12 3\n"), Some(12.0));
        assert_eq!(parse_uptime(b""), None);
        assert_eq!(parse_uptime(b"x 1"), None);
    }

    #[test]
    fn read_once_per_period() {
        let root = Root::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/server"
        ));
        let mut b = Board::default();
        let t0 = Instant::now();
        let mut buf = Vec::new();
        b.refresh(&root, t0, BOARD_PERIOD, &mut buf);
        assert_eq!(b.load_avg, Some([2.5, 1.75, 1.0]));
        assert_eq!(b.uptime_s(t0), Some(864000.25));
        assert_eq!(b.uptime_s(t0 + Duration::from_secs(2)), Some(864002.25));
        let p = b.pressure.unwrap();
        assert_eq!(p.cpu.unwrap().some.unwrap().avg10, 12.5);
        b.load_avg = None;
        b.refresh(
            &root,
            t0 + Duration::from_millis(500),
            BOARD_PERIOD,
            &mut buf,
        );
        assert_eq!(b.load_avg, None, "not read again inside the period");
        b.refresh(&root, t0 + Duration::from_secs(1), BOARD_PERIOD, &mut buf);
        assert!(b.load_avg.is_some());
    }
}
