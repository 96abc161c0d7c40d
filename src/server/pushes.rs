//! One connection's pushed streams: what it subscribed to, and at most one
//! frame per stream waiting for its socket (a newer frame replaces it: a
//! subscriber that does not read never builds a queue). Written out by
//! `conn.rs`; changed by a (un)subscribe in `dispatch.rs`. A waiting frame
//! is the whole WebSocket frame, framed once per tick for every member
//! (`frames::framed`), so writing it is one `send` of a shared buffer.

use crate::answers::prom::PushCounts;
use crate::protocol::{Stream, Subscription};
use bytes::Bytes;

#[derive(Default)]
pub struct Pushes {
    pub sub: Subscription,
    pending: [Option<Bytes>; 3],
    /// The socket's send buffer is bounded (`conn::PUSH_SNDBUF`).
    pub bounded: bool,
}

impl Pushes {
    /// Frames waiting here.
    pub fn pending(&self) -> u64 {
        self.pending.iter().filter(|p| p.is_some()).count() as u64
    }

    /// Bytes of the frames waiting here (they count against the client's
    /// output cap).
    pub fn bytes(&self) -> usize {
        self.pending.iter().flatten().map(Bytes::len).sum()
    }

    /// Takes subscription `new`: frames of streams it drops are let go.
    pub fn resubscribe(&mut self, new: Subscription, n: &mut PushCounts) {
        for s in Stream::ALL {
            if new.period(s).is_none() {
                if let Some(p) = self.pending.get_mut(s as usize) {
                    if p.take().is_some() {
                        n.pending = n.pending.saturating_sub(1);
                    }
                }
            }
        }
        self.sub = new;
    }

    /// Puts stream `s`'s frame in its slot, replacing one still unsent.
    pub fn offer(&mut self, s: Stream, a: Bytes, n: &mut PushCounts) {
        let i = s as usize;
        let Some(slot) = self.pending.get_mut(i) else {
            return;
        };
        if let Some(f) = n.frames.get_mut(i) {
            *f += 1;
        }
        if slot.replace(a).is_some() {
            if let Some(x) = n.coalesced.get_mut(i) {
                *x += 1;
            }
        } else {
            n.pending += 1;
        }
    }

    /// The first waiting frame, in stream order, taken out to be written.
    pub fn take_next(&mut self, n: &mut PushCounts) -> Option<Bytes> {
        let a = self.pending.iter_mut().find_map(Option::take)?;
        n.pending = n.pending.saturating_sub(1);
        Some(a)
    }
}
