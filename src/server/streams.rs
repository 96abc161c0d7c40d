//! Pushed streams: which connections subscribed to which stream at which
//! period. Subscribers of one stream and period form a group with one
//! timer; every group ticks on one grid (multiples of its period since the
//! server started), so subscribers at the same period share each tick's
//! collection and its one encoded frame, whenever they subscribed, and a
//! 1 s metrics group ticks with the history ring.

use crate::answers::prom::PushCounts;
use crate::collect::host::next_tick;
use crate::protocol::{Stream, Subscription};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A connection: its slab key and serial.
pub type Member = (usize, u64);

/// Live groups at most. A group is one timer and one collection per tick;
/// each connection is in at most three (one per stream), and real clients
/// share a few periods, so this is far above any real use and keeps a
/// client that asks for ever new periods from making unbounded work. A
/// subscribe that would pass it gets an error object.
pub const MAX_GROUPS: usize = 256;

/// A group's key: its stream and period (ms).
type Key = (Stream, u32);

struct Group {
    /// Tells this group's timer from one of an earlier group with the same
    /// key (removed while its timer was in the heap: a stale timer).
    serial: u64,
    next: Instant,
    members: Vec<Member>,
    /// Its timer is in the loop's heap (not only in `fresh`).
    timed: bool,
}

/// A subscribe that would make more than `MAX_GROUPS` groups.
#[derive(Debug)]
pub struct TooManyGroups;

pub struct Streams {
    epoch: Instant,
    groups: HashMap<Key, Group>,
    next_serial: u64,
    /// Groups made since the loop last looked, needing their first timer.
    fresh: Vec<(Instant, Stream, u32, u64)>,
    /// Groups removed while their timer was in the heap, since the loop
    /// last looked (`take_retired`): its count of stale timers.
    retired: usize,
    pub counts: PushCounts,
}

impl Streams {
    pub fn new(epoch: Instant) -> Self {
        Streams {
            epoch,
            groups: HashMap::new(),
            next_serial: 0,
            fresh: Vec::new(),
            retired: 0,
            counts: PushCounts::default(),
        }
    }

    /// Whether the timer of group (`s`, `ms`) with `serial` is live.
    pub fn is_live(&self, s: Stream, ms: u32, serial: u64) -> bool {
        self.groups
            .get(&(s, ms))
            .is_some_and(|g| g.serial == serial)
    }

    /// Moves connection `me` from its subscription `old` to `new`; refused,
    /// and nothing changed, when it would make more than `MAX_GROUPS`.
    pub fn set(
        &mut self,
        me: Member,
        old: Subscription,
        new: Subscription,
        now: Instant,
    ) -> Result<(), TooManyGroups> {
        let (mut made, mut freed) = (0usize, 0usize);
        for s in Stream::ALL {
            let (was, will) = (old.period(s), new.period(s));
            if was == will {
                continue;
            }
            if let Some(ms) = will {
                made += usize::from(!self.groups.contains_key(&(s, ms)));
            }
            if let Some(ms) = was {
                let alone = self
                    .groups
                    .get(&(s, ms))
                    .is_some_and(|g| g.members.len() == 1 && g.members.first() == Some(&me));
                freed += usize::from(alone);
            }
        }
        if made > freed && self.groups.len() + made - freed > MAX_GROUPS {
            return Err(TooManyGroups);
        }
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
        Ok(())
    }

    /// Forgets a closed connection.
    pub fn forget(&mut self, me: Member, sub: Subscription) {
        let _ = self.set(me, sub, Subscription::default(), Instant::now());
    }

    fn join(&mut self, me: Member, s: Stream, ms: u32, now: Instant) {
        if let Some(n) = self.counts.subscribers.get_mut(s as usize) {
            *n += 1;
        }
        if let Some(g) = self.groups.get_mut(&(s, ms)) {
            g.members.push(me);
            return;
        }
        let next = next_tick(self.epoch, Duration::from_millis(u64::from(ms)), now);
        self.next_serial += 1;
        let serial = self.next_serial;
        self.groups.insert(
            (s, ms),
            Group {
                serial,
                next,
                members: vec![me],
                timed: false,
            },
        );
        self.counts.groups = self.groups.len() as u64;
        self.fresh.push((next, s, ms, serial));
    }

    /// Takes `me` out of group (`s`, `ms`); an empty group goes at once
    /// (its timer, if in the heap, is then stale: `take_retired`).
    fn leave(&mut self, me: Member, s: Stream, ms: u32) {
        let Some(g) = self.groups.get_mut(&(s, ms)) else {
            return;
        };
        if let Some(i) = g.members.iter().position(|m| *m == me) {
            g.members.swap_remove(i);
            if let Some(n) = self.counts.subscribers.get_mut(s as usize) {
                *n = n.saturating_sub(1);
            }
        }
        if g.members.is_empty() {
            if g.timed {
                self.retired += 1;
            }
            self.groups.remove(&(s, ms));
            self.counts.groups = self.groups.len() as u64;
        }
    }

    /// The live groups made since the last call, for their first timers:
    /// (when, stream, period, serial).
    pub fn take_fresh(&mut self) -> Vec<(Instant, Stream, u32, u64)> {
        let mut fresh = std::mem::take(&mut self.fresh);
        fresh.retain(|&(_, s, ms, serial)| match self.groups.get_mut(&(s, ms)) {
            Some(g) if g.serial == serial => {
                g.timed = true;
                true
            }
            _ => false,
        });
        fresh
    }

    /// Stale timers made since the last call (groups removed with a timer
    /// in the heap).
    pub fn take_retired(&mut self) -> usize {
        std::mem::take(&mut self.retired)
    }

    /// A group's tick: its members, lent out (hand them back through
    /// `restore`); `None` for a stale timer (the group is gone).
    pub fn take_members(&mut self, s: Stream, ms: u32, serial: u64) -> Option<Vec<Member>> {
        let g = self
            .groups
            .get_mut(&(s, ms))
            .filter(|g| g.serial == serial)?;
        Some(std::mem::take(&mut g.members))
    }

    /// Hands a group's members back after its tick (`members`: the ones
    /// still open, plus any that joined meanwhile) and says when it ticks
    /// next: the next grid point after `now` (ticks missed while the loop
    /// was busy are skipped, not bunched). `None`: no members left, the
    /// group is gone.
    pub fn restore(
        &mut self,
        s: Stream,
        ms: u32,
        mut members: Vec<Member>,
        now: Instant,
    ) -> Option<Instant> {
        let epoch = self.epoch;
        let g = self.groups.get_mut(&(s, ms))?;
        members.append(&mut g.members);
        if members.is_empty() {
            self.groups.remove(&(s, ms));
            self.counts.groups = self.groups.len() as u64;
            return None;
        }
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
        st.set((1, 1), Subscription::default(), a, t0).unwrap();
        st.set((2, 2), Subscription::default(), a, t0).unwrap();
        assert_eq!(
            st.take_fresh().len(),
            2,
            "one timer per group, not per member"
        );
        assert_eq!(st.counts.subscribers, [2, 0, 2]);
        // the second drops disks and moves metrics to 2 s
        st.set((2, 2), a, Subscription([Some(2000), None, None]), t0)
            .unwrap();
        let fresh = st.take_fresh();
        assert_eq!(fresh.len(), 1);
        assert_eq!(st.counts.subscribers, [2, 0, 1]);
        let serial =
            |st: &Streams, s, ms| st.groups.get(&(s, ms)).map(|g: &Group| g.serial).unwrap();
        let one_s = serial(&st, Stream::Metrics, 1000);
        let m = st.take_members(Stream::Metrics, 1000, one_s).unwrap();
        assert_eq!(m, vec![(1, 1)]);
        let next = st.restore(Stream::Metrics, 1000, m, t0 + Duration::from_millis(1001));
        assert_eq!(next, Some(t0 + Duration::from_secs(2)));
        assert_eq!(st.counts.groups, 3);
        st.forget((1, 1), a);
        assert_eq!(st.counts.subscribers, [1, 0, 0]);
        assert_eq!(st.counts.groups, 1, "empty groups go at once");
        assert_eq!(st.take_retired(), 2, "their timers are stale");
        assert!(
            st.take_members(Stream::Metrics, 1000, one_s).is_none(),
            "a stale timer ticks nothing"
        );
    }

    #[test]
    fn new_periods_do_not_pile_up_and_groups_are_bounded() {
        let t0 = Instant::now();
        let mut st = Streams::new(t0);
        let mut old = Subscription::default();
        for ms in 1000..1000 + 5 * MAX_GROUPS as u32 {
            let new = Subscription([Some(ms), None, None]);
            st.set((1, 1), old, new, t0).unwrap();
            old = new;
        }
        assert_eq!(st.counts.groups, 1);
        assert_eq!(st.take_fresh().len(), 1, "groups gone before their timer");
        for k in 2..MAX_GROUPS as u64 + 1 {
            let sub = Subscription([None, None, Some(k as u32 * 1000)]);
            st.set((k as usize, k), Subscription::default(), sub, t0)
                .unwrap();
        }
        assert_eq!(st.groups.len(), MAX_GROUPS);
        let sub = Subscription([None, Some(999_000), None]);
        assert!(st
            .set((9999, 9999), Subscription::default(), sub, t0)
            .is_err());
        // moving within the bound is allowed: the old group goes
        let moved = Subscription([Some(777), None, None]);
        st.set((1, 1), old, moved, t0).unwrap();
        assert_eq!(st.groups.len(), MAX_GROUPS);
    }
}
