//! Pushed streams: which connections subscribed to which stream at which
//! period. Subscribers of one stream and period form a group with one
//! timer; every group ticks on one grid (multiples of its period since the
//! server started), so subscribers at the same period share each tick's
//! collection and its one encoded frame, whenever they subscribed, and a
//! 1 s metrics group ticks with the history ring.

use crate::answers::prom::PushCounts;
use crate::protocol::{Stream, Subscription};
use std::time::{Duration, Instant};

/// A connection: its slab key and serial.
pub type Member = (usize, u64);

struct Group {
    stream: Stream,
    period_ms: u32,
    next: Instant,
    members: Vec<Member>,
}

pub struct Streams {
    epoch: Instant,
    groups: Vec<Group>,
    /// Groups made since the loop last looked, needing their first timer.
    fresh: Vec<(Instant, Stream, u32)>,
    pub counts: PushCounts,
}

/// The first point of the grid (`epoch` + k × `period`) after `now`.
pub fn next_tick(epoch: Instant, period: Duration, now: Instant) -> Instant {
    let p = period.as_nanos().max(1);
    let since = now.saturating_duration_since(epoch).as_nanos();
    let k = since / p + 1;
    let off = u64::try_from(k.saturating_mul(p)).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(off)
}

impl Streams {
    pub fn new(epoch: Instant) -> Self {
        Streams {
            epoch,
            groups: Vec::new(),
            fresh: Vec::new(),
            counts: PushCounts::default(),
        }
    }

    fn group_mut(&mut self, s: Stream, period_ms: u32) -> Option<&mut Group> {
        self.groups
            .iter_mut()
            .find(|g| g.stream == s && g.period_ms == period_ms)
    }

    /// Moves connection `me` from its subscription `old` to `new`.
    pub fn set(&mut self, me: Member, old: Subscription, new: Subscription, now: Instant) {
        for s in Stream::ALL {
            let (was, will) = (old.period(s), new.period(s));
            if was == will {
                continue;
            }
            if let Some(ms) = was {
                self.leave(me, s, ms);
            }
            if let Some(ms) = will {
                self.join(me, s, ms, now);
            }
        }
    }

    /// Forgets a closed connection.
    pub fn forget(&mut self, me: Member, sub: Subscription) {
        self.set(me, sub, Subscription::default(), Instant::now());
    }

    fn join(&mut self, me: Member, s: Stream, ms: u32, now: Instant) {
        if let Some(n) = self.counts.subscribers.get_mut(s as usize) {
            *n += 1;
        }
        if let Some(g) = self.group_mut(s, ms) {
            g.members.push(me);
            return;
        }
        let next = next_tick(self.epoch, Duration::from_millis(u64::from(ms)), now);
        self.groups.push(Group {
            stream: s,
            period_ms: ms,
            next,
            members: vec![me],
        });
        self.fresh.push((next, s, ms));
    }

    fn leave(&mut self, me: Member, s: Stream, ms: u32) {
        if let Some(g) = self.group_mut(s, ms) {
            if let Some(i) = g.members.iter().position(|m| *m == me) {
                g.members.swap_remove(i);
                if let Some(n) = self.counts.subscribers.get_mut(s as usize) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        // An empty group stays until its timer fires, which drops it (its
        // timer is still in the loop's heap).
    }

    /// The groups made since the last call, for their first timers.
    pub fn take_fresh(&mut self) -> Vec<(Instant, Stream, u32)> {
        std::mem::take(&mut self.fresh)
    }

    /// A group's tick: its members, lent out (hand them back through
    /// `restore`); `None` when the group has none left (it is dropped).
    pub fn take_members(&mut self, s: Stream, ms: u32) -> Option<Vec<Member>> {
        let i = self
            .groups
            .iter()
            .position(|g| g.stream == s && g.period_ms == ms)?;
        let g = self.groups.get_mut(i)?;
        if g.members.is_empty() {
            self.groups.swap_remove(i);
            return None;
        }
        Some(std::mem::take(&mut g.members))
    }

    /// Hands a group's members back after its tick (`members`: the ones
    /// still open, plus any that joined meanwhile) and says when it ticks
    /// next: the next grid point after `now` (ticks missed while the loop
    /// was busy are skipped, not bunched).
    pub fn restore(
        &mut self,
        s: Stream,
        ms: u32,
        mut members: Vec<Member>,
        now: Instant,
    ) -> Option<Instant> {
        let epoch = self.epoch;
        let g = self.group_mut(s, ms)?;
        members.append(&mut g.members);
        g.members = members;
        g.next = next_tick(epoch, Duration::from_millis(u64::from(ms)), now);
        Some(g.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_shared_whenever_one_subscribes() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_tick(t0, s, t0), t0 + s);
        assert_eq!(next_tick(t0, s, t0 + Duration::from_millis(300)), t0 + s);
        assert_eq!(next_tick(t0, s, t0 + s), t0 + 2 * s);
        assert_eq!(
            next_tick(
                t0,
                Duration::from_millis(1500),
                t0 + Duration::from_millis(3100)
            ),
            t0 + Duration::from_millis(4500)
        );
    }

    #[test]
    fn groups_by_stream_and_period() {
        let t0 = Instant::now();
        let mut st = Streams::new(t0);
        let a = Subscription([Some(1000), None, Some(5000)]);
        st.set((1, 1), Subscription::default(), a, t0);
        st.set((2, 2), Subscription::default(), a, t0);
        assert_eq!(
            st.take_fresh().len(),
            2,
            "one timer per group, not per member"
        );
        assert_eq!(st.counts.subscribers, [2, 0, 2]);
        // the second drops disks and moves metrics to 2 s
        st.set((2, 2), a, Subscription([Some(2000), None, None]), t0);
        assert_eq!(st.take_fresh().len(), 1);
        assert_eq!(st.counts.subscribers, [2, 0, 1]);
        let m = st.take_members(Stream::Metrics, 1000).unwrap();
        assert_eq!(m, vec![(1, 1)]);
        let next = st.restore(Stream::Metrics, 1000, m, t0 + Duration::from_millis(1001));
        assert_eq!(next, Some(t0 + Duration::from_secs(2)));
        st.forget((1, 1), a);
        assert_eq!(st.counts.subscribers, [1, 0, 0]);
        assert!(
            st.take_members(Stream::Metrics, 1000).is_none(),
            "empty: dropped"
        );
        assert!(st.take_members(Stream::Metrics, 1000).is_none());
    }
}
