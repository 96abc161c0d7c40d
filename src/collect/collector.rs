//! The one shape of a collector: it reads what it reads from the root at a
//! time into buffers it keeps, and leaves a typed sample behind (with the
//! time it was taken). What every collection shares (the settings, the
//! read buffer, the once-only error log, `/proc/stat`) is the `Cx` handed
//! to it; what is known of its runs (`Timing`) is kept beside it by
//! `Kept`, the same for all. Sets that change rarely are looked up again
//! on the one re-probe clock (`rediscover`).

use super::error::{CollectError, Reported, Result};
use super::fs::KeptFile;
use super::{cpu, Settings};
use std::time::{Duration, Instant};

pub trait Collector {
    /// Its name in `sockagent_collector_*{collector}`.
    const NAME: &'static str;
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

/// A collector and its runs' timing.
pub struct Kept<C> {
    pub c: C,
    pub timing: Timing,
}

impl<C: Collector> Kept<C> {
    pub fn new(c: C) -> Self {
        Kept {
            c,
            timing: Timing::default(),
        }
    }

    /// One collection, timed (a failed one, or one that left no new
    /// sample yet, such as a disks round still out, is not a run).
    pub fn run(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
        let t0 = Instant::now();
        let before = self.c.taken();
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
