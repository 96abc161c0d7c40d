//! The one re-probe clock: collectors keep files for sets that change
//! rarely (cores, disks, fans, batteries, RAPL zones, throttle counters,
//! the cgroup layout, GPUs and NVML): each set is looked up at first use,
//! again every `REDISCOVER`, and at once after a file of it vanished (the
//! reader then forgets when it last looked).

use std::time::{Duration, Instant};

/// How often a kept set is looked up again (a disk plugged in, a driver
/// loaded: seen within this; a host without NVML pays one failed `dlopen`
/// per period).
pub const REDISCOVER: Duration = Duration::from_secs(30);

/// True, and `last` set to `now`, when the set was never looked up or was
/// looked up `REDISCOVER` ago or more: the caller looks it up now.
pub fn due(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|at| now.saturating_duration_since(at) < REDISCOVER) {
        return false;
    }
    *last = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_then_every_period_then_after_forgetting() {
        let t0 = Instant::now();
        let mut last = None;
        assert!(due(&mut last, t0));
        assert!(!due(&mut last, t0 + Duration::from_secs(29)));
        assert!(due(&mut last, t0 + REDISCOVER));
        assert_eq!(last, Some(t0 + REDISCOVER));
        last = None; // a file vanished
        assert!(due(&mut last, t0 + REDISCOVER + Duration::from_secs(1)));
    }
}
