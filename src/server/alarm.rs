//! The loop's alarm clock: a `timerfd` in the poll set, armed for the
//! earliest deadline only when that deadline comes sooner than the one it
//! is set for.
//!
//! Why: `epoll_wait` with a timeout arms and cancels a kernel hrtimer on
//! every call, and at the guide's cadence (a request every 0.5–5 s, or
//! every 20 ms in `benches/compare.rs`'s paced mode) every call sleeps
//! and is woken by a request long before its deadline. With the deadline
//! on a timerfd, the wait has no timeout and the timer is set once per
//! deadline (the history tick: once a second), not once per request.
//! Paced cached `get_metrics` measured 2–3% less agent CPU per request
//! this way, the two builds interleaved (benches/README.md, "Issue 26,
//! fourth pass"). The rest of a paced request is the wakeup and what the
//! loop's turn finds cold after sleeping ("fifth pass").
//!
//! Where no timerfd can be made, the loop falls back to the timeout.

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::fd::{AsRawFd, OwnedFd};
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use std::time::{Duration, Instant};

pub struct Alarm {
    /// `None` where the kernel gave none: timeouts are passed to the wait.
    fd: Option<OwnedFd>,
    /// The instant the timer is set for (`None`: not set, or it has gone off).
    armed: Option<Instant>,
}

impl Alarm {
    /// A monotonic timerfd registered under `token`, or a fallback alarm
    /// that only hands timeouts back (with a warning) if that fails.
    pub fn new(registry: &Registry, token: Token) -> Alarm {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(std::io::Error::from)
        .and_then(|fd| {
            registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
            Ok(fd)
        });
        match fd {
            Ok(fd) => Alarm {
                fd: Some(fd),
                armed: None,
            },
            Err(e) => {
                log::warn!("no timerfd ({e}): the loop's waits carry their deadline instead");
                Alarm {
                    fd: None,
                    armed: None,
                }
            }
        }
    }

    /// The timeout to wait with, given the earliest deadline `next` (after
    /// `now`, or none). `None` (wait until an event) where the timer is set
    /// for `next` or sooner, or is set for `next` now; a sooner setting
    /// whose deadline went away costs one early wakeup. With no deadline
    /// at all the timer is unset: an idle agent is never woken.
    pub fn wait_for(&mut self, next: Option<Instant>, now: Instant) -> Option<Duration> {
        let Some(next) = next else {
            if self.armed.take().is_some() {
                self.set(Duration::ZERO);
            }
            return None;
        };
        let left = next.saturating_duration_since(now);
        if self.armed.is_some_and(|a| a <= next) {
            return None;
        }
        // zero would unset the timer: a deadline already due is a zero wait
        if left.is_zero() || !self.set(left) {
            return Some(left);
        }
        self.armed = Some(next);
        None
    }

    /// Sets the timer to go off once, `left` from now (zero: unset it);
    /// false where there is no timer or the kernel refused.
    fn set(&self, left: Duration) -> bool {
        let Some(fd) = &self.fd else {
            return false;
        };
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            }),
        };
        timerfd_settime(fd, TimerfdTimerFlags::empty(), &spec).is_ok()
    }

    /// The timer went off: it is no longer set (and its count is read, so
    /// the fd is quiet until it is set again).
    pub fn rang(&mut self) {
        self.armed = None;
        if let Some(fd) = &self.fd {
            let mut n = [0u8; 8];
            let _ = rustix::io::read(fd, &mut n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    const ALARM: Token = Token(7);

    /// Waits for the alarm alone, up to `limit`; true if it rang.
    fn rings(poll: &mut Poll, limit: Duration) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(limit)).unwrap();
        events.iter().any(|e| e.token() == ALARM)
    }

    #[test]
    fn set_once_for_a_deadline_and_again_only_for_a_sooner_one() {
        let mut poll = Poll::new().unwrap();
        let mut a = Alarm::new(poll.registry(), ALARM);
        assert!(a.fd.is_some(), "this kernel makes timerfds");
        let now = Instant::now();
        assert_eq!(a.wait_for(None, now), None, "no deadline: wait for events");
        let far = now + Duration::from_secs(3600);
        assert_eq!(a.wait_for(Some(far), now), None);
        assert_eq!(a.armed, Some(far));
        // a later deadline keeps the setting; a sooner one replaces it
        assert_eq!(a.wait_for(Some(far + Duration::from_secs(1)), now), None);
        assert_eq!(a.armed, Some(far));
        let soon = Instant::now() + Duration::from_millis(30);
        assert_eq!(a.wait_for(Some(soon), Instant::now()), None);
        assert_eq!(a.armed, Some(soon));
        // (a slow machine may already be past it: then ringing is right)
        let early = rings(&mut poll, Duration::from_millis(1));
        assert!(!early || Instant::now() >= soon, "not before its deadline");
        assert!(
            early || rings(&mut poll, Duration::from_secs(5)),
            "it goes off"
        );
        assert!(Instant::now() >= soon, "never before its deadline");
        a.rang();
        assert_eq!(a.armed, None);
        assert!(
            !rings(&mut poll, Duration::from_millis(50)),
            "quiet once read"
        );
        // gone off: the far deadline, still pending, sets it again
        assert_eq!(a.wait_for(Some(far), Instant::now()), None);
        assert_eq!(a.armed, Some(far));
    }

    #[test]
    fn no_deadline_left_unsets_it() {
        let mut poll = Poll::new().unwrap();
        let mut a = Alarm::new(poll.registry(), ALARM);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(a.wait_for(Some(soon), Instant::now()), None);
        assert_eq!(a.wait_for(None, Instant::now()), None);
        let unset_at = Instant::now();
        assert_eq!(a.armed, None);
        let fd = a.fd.as_ref().unwrap();
        let left = rustix::time::timerfd_gettime(fd).unwrap().it_value;
        assert_eq!(
            (left.tv_sec, left.tv_nsec),
            (0, 0),
            "the kernel's timer is unset"
        );
        // unset before its deadline (not so on a machine slow enough to
        // pass it in between, where the timer already went off): no ring
        if unset_at < soon {
            assert!(!rings(&mut poll, Duration::from_millis(100)), "unset");
        }
    }

    #[test]
    fn a_due_deadline_is_a_zero_wait_not_a_disarmed_timer() {
        let poll = Poll::new().unwrap();
        let mut a = Alarm::new(poll.registry(), ALARM);
        let now = Instant::now();
        assert_eq!(a.wait_for(Some(now), now), Some(Duration::ZERO));
        assert_eq!(a.armed, None);
    }

    #[test]
    fn without_a_timerfd_the_wait_carries_the_deadline() {
        let mut a = Alarm {
            fd: None,
            armed: None,
        };
        let now = Instant::now();
        let at = now + Duration::from_millis(250);
        assert_eq!(a.wait_for(Some(at), now), Some(Duration::from_millis(250)));
        assert_eq!(a.wait_for(None, now), None);
        a.rang();
    }
}
