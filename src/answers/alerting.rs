//! The alert engine on the history tick: `Answers` owns it (`with_alerts`),
//! fills its `Inputs` from the metrics sample the tick just recorded, and
//! answers `alerts` and the `sockagent_alerts` family from it.
//!
//! What the tick fills today: throttling now (`NodeUnderVoltage`,
//! `NodeCpuThrottled`), the CPU temperature and memory used from the
//! sample, the clock's sync state (one `adjtimex` call), and the
//! filesystems from the disks sample, which the tick refreshes every
//! `DISKS_PERIOD` (a `statvfs` per mount) unless a client just did. The
//! other inputs (`oom_kill`, receive packets, cgroups' memory) are empty
//! until their readers ride the tick: their rules hold nothing meanwhile.

use crate::alerts::eval::{mem_used, MAX_FILESYSTEMS};
use crate::alerts::{Engine, FsReading, Inputs, Overrides, Stamp};
use crate::collect::{disks::FsRow, MetricsSample};
use std::time::{Duration, Instant};

/// How often the tick refreshes the filesystems' space for the rules:
/// their `for` is minutes, and a `statvfs` per mount each second is not
/// worth it.
pub const DISKS_PERIOD: Duration = Duration::from_secs(10);
/// Filesystems older than this are left out (a disks collection that keeps
/// failing): their alerts resolve rather than fire on stale space.
pub const DISKS_MAX_AGE: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Alerting {
    pub engine: Engine,
    /// The monotonic clock's zero for `Stamp::mono_ms`.
    start: Instant,
    /// Whether a tick has evaluated the rules yet.
    pub evaluated: bool,
    /// When the tick last asked for the filesystems' space.
    disks_at: Option<Instant>,
}

impl Alerting {
    pub fn new(overrides: &Overrides, alertmanagers: usize) -> Self {
        Alerting {
            engine: Engine::new(overrides, alertmanagers),
            start: Instant::now(),
            evaluated: false,
            disks_at: None,
        }
    }

    /// Whether this tick refreshes the disks sample (and notes it did).
    pub fn disks_due(&mut self, now: Instant) -> bool {
        let due = self
            .disks_at
            .is_none_or(|at| now.saturating_duration_since(at) >= DISKS_PERIOD);
        if due {
            self.disks_at = Some(now);
        }
        due
    }

    /// One evaluation over the tick's sample and the filesystems.
    pub fn tick(&mut self, m: &MetricsSample, filesystems: &[FsRow], now: Instant) {
        let mut fs = [FsReading {
            mountpoint: "",
            avail: 0,
            size: 0,
        }; MAX_FILESYSTEMS];
        let mut n = 0;
        for (r, row) in fs.iter_mut().zip(filesystems) {
            *r = FsReading {
                mountpoint: &row.mountpoint,
                avail: row.space.avail,
                size: row.space.total,
            };
            n += 1;
        }
        let mono = now.saturating_duration_since(self.start).as_millis();
        let inputs = Inputs {
            now: Stamp {
                mono_ms: u64::try_from(mono).unwrap_or(u64::MAX),
                epoch_ms: m.sampled_at_ms,
            },
            throttle_now: m.board.throttle.sample.map(|t| t.now),
            cpu_temp_c: m.cpu_temp_c,
            mem_used: mem_used(
                m.mem.mem_total,
                m.mem.mem_total.saturating_sub(m.mem.mem_used),
            ),
            clock_synced: crate::collect::host::clock_synced(),
            filesystems: fs.get(..n).unwrap_or(&[]),
            ..Inputs::default()
        };
        self.engine.evaluate(&inputs);
        self.evaluated = true;
    }
}
