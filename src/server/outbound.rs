//! The agent's own outgoing requests, driven by the loop: the
//! remote-write pusher (its timer, `Timer::Remote`) and the Alertmanager
//! senders (the history tick, which evaluates the rules every second
//! anyway: no wake-up of their own). Both use `remote::client::Client` and
//! share the server's one `mio::Waker` (`remote::WAKE`) for the resolver's
//! answers; each client takes only its own.

use super::{Server, Timer};
use crate::remote::{alertmanager, Alertmanagers, Pusher, SOCKET, WAKE};
use mio::{Registry, Token, Waker};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// The pusher and the senders, when configured; the shared waker is made
/// only when one of them is.
pub fn setup(
    remote: Option<crate::remote::Setup>,
    alerts: Option<alertmanager::Setup>,
    registry: &Registry,
    epoch: Instant,
    timers: &mut BinaryHeap<Reverse<(Instant, Timer)>>,
) -> io::Result<(Option<Pusher>, Option<Alertmanagers>)> {
    let alerts = alerts.filter(|a| !a.urls.is_empty());
    if remote.is_none() && alerts.is_none() {
        return Ok((None, None));
    }
    let waker = Arc::new(Waker::new(registry, WAKE)?);
    let pusher = remote.map(|setup| {
        timers.push(Reverse((epoch, Timer::Remote)));
        Pusher::new(setup, waker.clone(), epoch)
    });
    let senders = match alerts {
        Some(a) => Some(Alertmanagers::new(a, &waker).map_err(io::Error::other)?),
        None => None,
    };
    Ok((pusher, senders))
}

impl Server {
    /// Whether `t` is one of the outgoing clients' tokens.
    pub(super) fn outbound_owns(&self, t: Token) -> bool {
        t == SOCKET
            || t == WAKE
            || self
                .alertmanagers
                .as_ref()
                .is_some_and(|a| a.owner(t).is_some())
    }

    /// An outgoing client's socket event, or the resolver's wake-up (for
    /// any of them: each looks for its own answer).
    pub(super) fn outbound_event(&mut self, t: Token) {
        if t == SOCKET || t == WAKE {
            self.remote_step(Some(t));
        }
        let Some(a) = self.alertmanagers.as_mut() else {
            return;
        };
        let Some((engine, at)) = self.answers.alert_engine_at(Instant::now()) else {
            return;
        };
        let registry = self.poll.registry();
        if t == WAKE {
            a.on_wake(engine, at.mono_ms, registry);
        } else if let Some(am) = a.owner(t) {
            a.on_event(am, engine, at.mono_ms, registry);
        }
    }

    /// On the history tick, after the rules were evaluated: deliveries due.
    pub(super) fn alerts_deliver(&mut self, now: Instant) {
        let Some(a) = self.alertmanagers.as_mut() else {
            return;
        };
        if let Some((engine, at)) = self.answers.alert_engine_at(now) {
            a.tick(engine, at, self.poll.registry(), now);
        }
    }

    /// The pusher's timer (`token` `None`) or one of its events; then its
    /// next timer, when it moved earlier.
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
            Some(t) => p.on_event(&mut src, registry, t),
        }
        if let Some(at) = p.wake_at() {
            self.timers.push(Reverse((at, Timer::Remote)));
        }
    }
}
