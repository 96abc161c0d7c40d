//! The pushed streams' ticks and the loop's memory accounting: one
//! encoded frame per group and tick, handed to every member; what every
//! client holds, capped in total.

use super::conn::{self, Outcome};
use super::{Server, Timer};
use crate::protocol::{self, Answer, Stream};
#[cfg(feature = "remote-write")]
use mio::Token;
use std::cmp::Reverse;
use std::time::Instant;

impl Server {
    /// One tick of the group of stream `s` at `ms`: one answer (from the
    /// cache, or one collection), framed once and handed to every member,
    /// each written from the same buffer (a reference-counted `Bytes`).
    pub(super) fn push_tick(&mut self, s: Stream, ms: u32, serial: u64, now: Instant) {
        // A disks round is out (statvfs runs off the loop): this group's
        // tick waits for it, as a disks request does (`disks_done`).
        if matches!(s, Stream::Disks) {
            if let Ok(Some(by)) = self.answers.disks_poll(now) {
                if !self.disk_waits.pushes.contains(&(ms, serial)) {
                    self.disk_waits.pushes.push((ms, serial));
                }
                return self.arm_disks(by);
            }
        }
        let Some(members) = self.streams.take_members(s, ms, serial) else {
            self.stale = self.stale.saturating_sub(1);
            return;
        };
        let answer = match s {
            Stream::Metrics => self.answers.metrics(now),
            Stream::Processes => self.answers.processes(now),
            Stream::Disks => self.answers.disks(now),
        }
        .unwrap_or_else(|e| {
            log::warn!("pushed {}: {e}", s.name());
            Answer::text(protocol::error_json(
                &format!("cannot collect {}: {e}", s.name()),
                "subscribe",
                None,
            ))
        });
        // Framed once for every member: each write is one `send` of it.
        let frame = super::frames::framed(&answer);
        // Every member is open: `close` takes a connection out of its
        // groups (`Streams::forget`), so none is stale here.
        let mut failed = Vec::new();
        let counts = &mut self.streams.counts;
        let cap = self.limits.max_queued_output;
        for &(k, serial) in &members {
            let Some(c) = self.conns.get_mut(k).filter(|c| c.serial == serial) else {
                continue;
            };
            conn::offer(c, s, frame.clone(), counts);
            if matches!(conn::push_out(c, counts, cap), Outcome::Drop) {
                failed.push(k);
            }
            let held = c.holding();
            self.held = self.held.saturating_sub(c.held).saturating_add(held);
            c.held = held;
        }
        if let Some(next) = self.streams.restore(s, ms, members, now) {
            self.add_timer(next, Timer::Push(s, ms, serial));
        }
        for k in failed {
            self.close(k);
        }
        self.enforce_total();
    }

    /// Rebuilds the timer heap without its stale timers once they are half
    /// of it: it stays within twice the live timers (a constant cost per
    /// stale one), and a closed connection's deadline wakes no idle agent.
    pub(super) fn compact(&mut self) {
        self.stale += self.streams.take_retired();
        if self.stale == 0 || self.stale * 2 < self.timers.len() {
            return;
        }
        let (conns, streams) = (&self.conns, &self.streams);
        self.timers.retain(|Reverse((_, t))| match *t {
            Timer::Conn(k, serial) => conns.get(k).is_some_and(|c| c.serial == serial),
            Timer::Push(s, ms, serial) => streams.is_live(s, ms, serial),
            _ => true,
        });
        self.stale = 0;
    }

    /// Accounts what connection `k` holds now; drops it or others when
    /// over the total (`Limits::max_queued_total`): the largest first.
    pub(super) fn settle(&mut self, k: usize) {
        if let Some(c) = self.conns.get_mut(k) {
            let now = c.holding();
            self.held = self.held.saturating_sub(c.held).saturating_add(now);
            c.held = now;
        }
        self.enforce_total();
    }

    /// Drops the clients holding the most while all hold over the total.
    pub(super) fn enforce_total(&mut self) {
        while self.held > self.limits.max_queued_total {
            let Some((big, c)) = self.conns.iter().max_by_key(|(_, c)| c.held) else {
                break;
            };
            log::debug!(
                "{}: dropped: holds {} bytes, the most, while all clients hold {} (over the {}-byte total)",
                c.peer,
                c.held,
                self.held,
                self.limits.max_queued_total
            );
            self.streams.counts.dropped_total += 1;
            self.close(big);
        }
    }

    /// The pusher's timer (`token` `None`) or one of its events; then its
    /// next timer, when it moved earlier.
    #[cfg(feature = "remote-write")]
    pub(super) fn remote_step(&mut self, token: Option<Token>) {
        let Some(p) = self.remote.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        let mut src = crate::remote::source::Scrape {
            answers: &mut self.answers,
            pushes: self.streams.counts,
        };
        match token {
            None => p.on_timer(&mut src, registry, Instant::now()),
            Some(t) => p.on_event(&mut src, registry, t == super::WAKE),
        }
        if let Some(at) = p.wake_at() {
            self.timers.push(Reverse((at, Timer::Remote)));
        }
    }
}
