//! The one shape of a collector: it reads what it reads from the root at a
//! time into buffers it keeps, and leaves a typed sample behind (with the
//! time it was taken). What every collection shares (the settings, the
//! read buffer, the once-only error log, `/proc/stat`) is the `Cx` handed
//! to it; what is known of its runs (`Timing`) is kept beside it by
//! `Kept`, the same for all. Sets that change rarely are looked up again
//! on the one re-probe clock: each collector says its period (`REPROBE`),
//! `Kept` keeps its clock and hands the collection its epoch (`Cx::epoch`,
//! read by `rediscover::due`).

use super::cpu;
use super::error::{CollectError, Reported, Result};
use super::fs::{KeptFile, Root};
use std::time::{Duration, Instant};

/// The default of `Settings::board_period`.
pub const BOARD_PERIOD: Duration = Duration::from_secs(1);

/// What every collection is told at start (`Cx::s`).
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
    /// power) are read at most this often (`BOARD_PERIOD`).
    pub board_period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: Root::default(),
            temp_enabled: true,
            gpu_enabled: true,
            nvml_lib: None,
            board_period: BOARD_PERIOD,
        }
    }
}

pub trait Collector {
    /// Its name in `sockagent_collector_*{collector}`.
    const NAME: &'static str;
    /// How often its kept sets are looked up again (`None`: it keeps no
    /// set, such as the process scan that lists `/proc` every time).
    const REPROBE: Option<Duration>;
    /// Reads into its kept buffers and its sample, at `now`.
    fn collect(&mut self, cx: &mut Cx, now: Instant) -> Result<()>;
    /// When its sample was taken (`None`: none yet).
    fn taken(&self) -> Option<Instant>;
}

/// What every collection shares.
pub struct Cx {
    pub s: Settings,
    /// The read buffer (a file at a time).
    pub buf: Vec<u8>,
    /// Malformed input is logged once per file.
    pub reported: Reported,
    stat_file: KeptFile,
    stat: cpu::StatSample,
    /// The last process scan: when, and how many processes it found (the
    /// metrics sample's `process_count` reuses it).
    pub last_scan: Option<(Instant, u64)>,
    /// The running collection's re-probe epoch (`Kept::reprobe`).
    pub epoch: u64,
}

impl Cx {
    pub fn new(s: Settings) -> Self {
        Cx {
            stat_file: KeptFile::new(&s.root, "proc/stat"),
            s,
            buf: Vec::with_capacity(16 * 1024),
            reported: Reported::default(),
            stat: cpu::StatSample::default(),
            last_scan: None,
            epoch: 0,
        }
    }

    /// Reads and parses `/proc/stat` into `out`.
    pub fn read_stat(&mut self, out: &mut cpu::StatSample) -> Result<()> {
        self.stat_file
            .read(&mut self.buf)
            .map_err(CollectError::reading("/proc/stat"))?;
        cpu::parse_stat(&self.buf, out).map_err(|why| CollectError::malformed("/proc/stat", why))
    }

    /// `/proc/stat` read afresh: its aggregate jiffies (the scans' unit of
    /// CPU share) and its boot time.
    pub fn stat_now(&mut self) -> Result<&cpu::StatSample> {
        let mut stat = std::mem::take(&mut self.stat);
        let r = self.read_stat(&mut stat);
        self.stat = stat;
        r.map(|()| &self.stat)
    }
}

/// How often and how long one collection has run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub runs: u64,
    pub total: Duration,
    pub last: Duration,
}

/// A collector, its runs' timing and its re-probe clock.
pub struct Kept<C> {
    pub c: C,
    pub timing: Timing,
    /// When the epoch last moved on.
    probed: Option<Instant>,
    /// Moves on every `C::REPROBE`: readers whose set was looked up in an
    /// earlier epoch look it up again (`rediscover::due`).
    epoch: u64,
}

impl<C: Collector> Kept<C> {
    pub fn new(c: C) -> Self {
        Kept {
            c,
            timing: Timing::default(),
            probed: None,
            epoch: 0,
        }
    }

    /// The re-probe epoch at `now`: moved on at the first call and once
    /// `C::REPROBE` has passed since it last moved (never without a period).
    pub fn reprobe(&mut self, now: Instant) -> u64 {
        let Some(period) = C::REPROBE else {
            return self.epoch;
        };
        if self
            .probed
            .is_none_or(|at| now.saturating_duration_since(at) >= period)
        {
            self.probed = Some(now);
            self.epoch += 1;
        }
        self.epoch
    }

    /// The epoch of the last collection (or `reprobe`).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// One collection, timed (a failed one, or one that left no new
    /// sample yet, such as a disks round still out, is not a run).
    pub fn run(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
        let t0 = Instant::now();
        let before = self.c.taken();
        cx.epoch = self.reprobe(now);
        self.c.collect(cx, now)?;
        if self.c.taken() == before {
            return Ok(());
        }
        let d = t0.elapsed();
        self.timing.runs += 1;
        self.timing.total += d;
        self.timing.last = d;
        Ok(())
    }

    /// Its name and timing, for `/metrics`.
    pub fn timing(&self) -> (&'static str, &Timing) {
        (C::NAME, &self.timing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes a sample each run and keeps the epoch it was handed.
    struct Probe<const REPROBES: bool> {
        at: Option<Instant>,
        seen: u64,
    }

    impl<const REPROBES: bool> Collector for Probe<REPROBES> {
        const NAME: &'static str = "probe";
        const REPROBE: Option<Duration> = if REPROBES {
            Some(Duration::from_secs(30))
        } else {
            None
        };

        fn collect(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
            self.seen = cx.epoch;
            self.at = Some(now);
            Ok(())
        }

        fn taken(&self) -> Option<Instant> {
            self.at
        }
    }

    fn epochs<const R: bool>(offsets_s: &[u64]) -> Vec<u64> {
        let mut cx = Cx::new(Settings::default());
        let mut k = Kept::new(Probe::<R> { at: None, seen: 0 });
        let t0 = Instant::now();
        offsets_s
            .iter()
            .map(|&s| {
                k.run(&mut cx, t0 + Duration::from_secs(s)).unwrap();
                assert_eq!(k.epoch(), k.c.seen);
                k.c.seen
            })
            .collect()
    }

    #[test]
    fn the_epoch_moves_on_at_the_first_run_and_once_a_period() {
        // the first run, not again inside the period, again after it
        // (counted from when it moved, not from each run)
        assert_eq!(
            epochs::<true>(&[0, 1, 29, 30, 45, 59, 60, 200]),
            [1, 1, 1, 2, 2, 2, 3, 4]
        );
    }

    #[test]
    fn a_collector_without_a_period_never_moves_it() {
        assert_eq!(epochs::<false>(&[0, 30, 60, 600]), [0, 0, 0, 0]);
    }
}
