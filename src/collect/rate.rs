//! Rates from counters kept between samples. A collector keeps one
//! `Window` per set of counters (net devices, disks, RAPL zones, throttle
//! counts) and, for each counter, its value at the window's start (the
//! base). `Window::step` says what this sample does with them:
//!
//! - `Start`: no base yet (first sample, or the set was re-discovered):
//!   every rate is null, the bases become the current counters;
//! - `Hold`: the base is younger than `MIN_RATE_WINDOW`: the rates of the
//!   last window are kept, and so are the bases (a burst of requests never
//!   measures microseconds of traffic);
//! - `Due(secs)`: the rates are over the `secs` since the base, and the
//!   bases move to the current counters.
//!
//! Nothing sleeps: a rate is always over the time between two requests'
//! samples. A counter that went backwards (a device reset, a module
//! reloaded) gives a null rate, never a huge number; a counter the kernel
//! wraps at a known range (RAPL's `max_energy_range_uj`) is unwrapped.

use std::time::{Duration, Instant};

/// Rates are over at least this much time.
pub const MIN_RATE_WINDOW: Duration = Duration::from_millis(100);

/// What a sample does with its rates and bases (see the module's header).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Start,
    Hold,
    Due(f64),
}

/// When the bases of one set of counters were taken.
#[derive(Debug, Default, Clone, Copy)]
pub struct Window {
    base_at: Option<Instant>,
}

impl Window {
    /// This sample's step; moves the window's start when a rate is due.
    pub fn step(&mut self, now: Instant) -> Step {
        match self.base_at {
            None => {
                self.base_at = Some(now);
                Step::Start
            }
            Some(b) => {
                let d = now.saturating_duration_since(b);
                if d >= MIN_RATE_WINDOW {
                    self.base_at = Some(now);
                    Step::Due(d.as_secs_f64())
                } else {
                    Step::Hold
                }
            }
        }
    }

    /// Forgets the bases: the next step is `Start`.
    pub fn reset(&mut self) {
        self.base_at = None;
    }
}

/// `(now - base) / secs`; `None` when the counter went backwards.
pub fn per_sec(now: u64, base: u64, secs: f64) -> Option<f64> {
    let d = now.checked_sub(base)?;
    (secs > 0.0).then(|| d as f64 / secs)
}

/// As `per_sec` for a counter that wraps to 0 after `range` (RAPL's
/// `max_energy_range_uj`): a smaller value than the base is a wrap when
/// both are inside the range, else a reset (`None`).
pub fn wrapping_per_sec(now: u64, base: u64, range: Option<u64>, secs: f64) -> Option<f64> {
    if now >= base {
        return per_sec(now, base, secs);
    }
    let range = range.filter(|&r| base <= r && now <= r)?;
    let d = range.wrapping_sub(base).wrapping_add(now);
    (secs > 0.0).then(|| d as f64 / secs)
}

/// One counter's rate, kept beside its base (see `Step`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Rate {
    pub base: u64,
    pub per_s: Option<f64>,
}

impl Rate {
    /// Applies one sample's `step` to the counter's current value `now`;
    /// `fresh`: the row is new (no base of its own), so the rate is null.
    pub fn apply(&mut self, step: Step, now: u64, fresh: bool) {
        match (step, fresh) {
            (_, true) | (Step::Start, _) => {
                self.base = now;
                self.per_s = None;
            }
            (Step::Hold, false) => {}
            (Step::Due(secs), false) => {
                self.per_s = per_sec(now, self.base, secs);
                self.base = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_hold_and_fall_due() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.step(t0), Step::Start);
        assert_eq!(w.step(t0 + Duration::from_millis(50)), Step::Hold);
        assert_eq!(w.step(t0 + Duration::from_millis(500)), Step::Due(0.5));
        // measured from the last due step, not the hold
        assert_eq!(w.step(t0 + Duration::from_millis(550)), Step::Hold);
        assert_eq!(w.step(t0 + Duration::from_millis(1500)), Step::Due(1.0));
        w.reset();
        assert_eq!(w.step(t0 + Duration::from_secs(2)), Step::Start);
    }

    #[test]
    fn rates_from_two_counters() {
        assert_eq!(per_sec(3000, 1000, 2.0), Some(1000.0));
        assert_eq!(per_sec(5, 5, 1.0), Some(0.0));
        // a reset: null, not 2^64 - 995 per second
        assert_eq!(per_sec(5, 1000, 1.0), None);
        assert_eq!(per_sec(5, 1, 0.0), None);
        // RAPL: wraps at the range; a value past it is a reset
        assert_eq!(wrapping_per_sec(100, 900, Some(1000), 1.0), Some(200.0));
        assert_eq!(wrapping_per_sec(100, 900, None, 1.0), None);
        assert_eq!(wrapping_per_sec(100, 1900, Some(1000), 1.0), None);
        assert_eq!(
            wrapping_per_sec(u64::MAX, u64::MAX - 10, Some(u64::MAX), 1.0),
            Some(10.0)
        );
        assert_eq!(
            wrapping_per_sec(4, u64::MAX - 5, Some(u64::MAX), 2.0),
            Some(4.5)
        );
    }

    #[test]
    fn a_rate_follows_its_steps() {
        let mut r = Rate::default();
        r.apply(Step::Start, 100, false);
        assert_eq!(r.per_s, None);
        r.apply(Step::Hold, 150, false);
        assert_eq!((r.base, r.per_s), (100, None));
        r.apply(Step::Due(0.5), 200, false);
        assert_eq!((r.base, r.per_s), (200, Some(200.0)));
        r.apply(Step::Hold, 250, false);
        assert_eq!(r.per_s, Some(200.0));
        r.apply(Step::Due(1.0), 10, false);
        assert_eq!(r.per_s, None, "backwards: null");
        r.apply(Step::Due(1.0), 20, true);
        assert_eq!((r.base, r.per_s), (20, None), "a new row starts over");
    }
}
