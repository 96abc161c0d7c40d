//! The clock's sync state, from `adjtimex(2)` with `modes` 0 (read only:
//! nothing is adjusted), under node_exporter's timex collector's names. A
//! board without an RTC whose NTP client stopped drifts silently; this is
//! what `NodeClockNotSynchronising` watches. The kernel's state is the
//! host's, so under a `Root` that is not "/" (a fixture tree) there is no
//! reading.

use super::fs::Root;
use crate::families::Sink;

crate::families::declare! {
    pub SYNC_STATUS = gauge("node_timex_sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).");
}

crate::families::declare! {
    pub MAX_ERROR = gauge("node_timex_maxerror_seconds", "Maximum error in seconds.");
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSync {
    /// The kernel's `STA_UNSYNC` status bit is clear.
    pub synced: bool,
    /// The kernel's maximum error estimate, seconds.
    pub max_error_s: f64,
}

/// A reading from the `timex` fields: `status` (its `STA_*` bits) and
/// `maxerror` (microseconds).
pub fn from_timex(status: i32, maxerror_us: i64) -> ClockSync {
    ClockSync {
        synced: status & libc::STA_UNSYNC == 0,
        max_error_s: maxerror_us as f64 / 1e6,
    }
}

/// Reads the host's clock state (a system call, no file); `None` under
/// another root or when the call fails.
// `maxerror` is a C long: i64 here, i32 on 32-bit boards.
#[allow(clippy::useless_conversion)]
pub fn read(root: &Root) -> Option<ClockSync> {
    if !root.is_host() {
        return None;
    }
    // SAFETY: an all-zero timex is valid (modes 0: read only).
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid timex for the call to fill.
    let rc = unsafe { libc::adjtimex(&mut t) };
    (rc >= 0).then(|| from_timex(t.status, i64::from(t.maxerror)))
}

/// The last reading (the `sensors` collector, `scrape_only.rs`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Timex(pub Option<ClockSync>);

impl Timex {
    /// `SYNC_STATUS` and `MAX_ERROR`, where there is a reading.
    pub fn describe(&self, out: &mut dyn Sink) {
        if let Some(c) = self.0 {
            SYNC_STATUS.single(out, u64::from(c.synced));
            MAX_ERROR.single(out, c.max_error_s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bits_and_max_error() {
        // STA_PLL | STA_NANO (0x2001): synchronised by an NTP client
        let c = from_timex(0x2001, 16_000);
        assert!(c.synced);
        assert_eq!(c.max_error_s, 0.016);
        // STA_UNSYNC (0x40): the kernel's state at boot with no NTP client
        let c = from_timex(0x40, 16_000_000);
        assert!(!c.synced);
        assert_eq!(c.max_error_s, 16.0);
    }

    #[test]
    fn host_only() {
        assert!(read(&Root::default()).is_some());
        let tree = Root::fixture("rpi4");
        assert_eq!(read(&tree), None);
    }
}
