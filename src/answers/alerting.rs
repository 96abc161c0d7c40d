//! The alert engine on the history tick: `Answers` owns it (`with_alerts`),
//! fills its `Inputs` from the metrics sample the tick just recorded, and
//! answers `alerts` and the `sockagent_alerts` family from it.
//!
//! What the tick fills today: throttling now (`NodeUnderVoltage`,
//! `NodeCpuThrottled`), the CPU temperature and memory used from the
//! sample, and the clock's sync state (one `adjtimex` call). The other
//! inputs (filesystems, `oom_kill`, receive packets, cgroups' memory) are
//! empty until their readers ride the tick: their rules hold nothing
//! meanwhile.

use crate::alerts::eval::mem_used;
use crate::alerts::{Engine, Inputs, Overrides, Stamp};
use crate::collect::MetricsSample;
use std::time::Instant;

#[derive(Debug)]
pub struct Alerting {
    pub engine: Engine,
    /// The monotonic clock's zero for `Stamp::mono_ms`.
    start: Instant,
    /// Whether a tick has evaluated the rules yet.
    pub evaluated: bool,
}

impl Alerting {
    pub fn new(overrides: &Overrides, alertmanagers: usize) -> Self {
        Alerting {
            engine: Engine::new(overrides, alertmanagers),
            start: Instant::now(),
            evaluated: false,
        }
    }

    /// One evaluation over the tick's sample.
    pub fn tick(&mut self, m: &MetricsSample, now: Instant) {
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
            ..Inputs::default()
        };
        self.engine.evaluate(&inputs);
        self.evaluated = true;
    }
}
