//! The one re-probe clock: collectors keep files for sets that change
//! rarely (cores, disks, fans, batteries, RAPL zones, throttle counters,
//! the cgroup layout, GPUs and NVML): each set is looked up at first use,
//! again at the next run of its reader after its collector's re-probe
//! epoch moved on (`collector::Kept` moves it every `REDISCOVER`), and at
//! once after a file of it vanished (the reader then forgets the epoch it
//! looked at).

use super::error::CollectError;
use super::fs::KeptFile;
use std::time::Duration;

/// How often a kept set is looked up again (a disk plugged in, a driver
/// loaded: seen within this; a host without NVML pays one failed `dlopen`
/// per period).
pub const REDISCOVER: Duration = Duration::from_secs(30);

/// True, and `found` set to `epoch`, when the set was never looked up, was
/// forgotten, or was looked up in an earlier epoch: the caller looks it up
/// now. An epoch latches: a reader that runs less often than its collector
/// still looks again at its next run.
pub fn due(found: &mut Option<u64>, epoch: u64) -> bool {
    if *found == Some(epoch) {
        return false;
    }
    *found = Some(epoch);
    true
}

/// Reads `file`, one of a set looked up in epoch `found`: its bytes, or
/// `None` when it could not be read; one that vanished makes the set looked
/// up again at the reader's next run (`found` forgotten).
pub fn read<'b>(
    file: &mut KeptFile,
    buf: &'b mut Vec<u8>,
    found: &mut Option<u64>,
) -> Option<&'b [u8]> {
    match file.read(buf) {
        Ok(()) => Some(buf),
        Err(e) => {
            if CollectError::vanished(&e) {
                *found = None;
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_use_then_each_epoch_then_after_forgetting() {
        let mut found = None;
        assert!(due(&mut found, 1));
        assert!(!due(&mut found, 1));
        assert!(due(&mut found, 2));
        assert_eq!(found, Some(2));
        // an epoch skipped (the reader did not run in it) still counts
        assert!(due(&mut found, 4));
        assert!(!due(&mut found, 4));
        found = None; // a file vanished
        assert!(due(&mut found, 4));
        assert!(!due(&mut found, 4));
    }
}
