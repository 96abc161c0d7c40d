//! The loop's side of the Alertmanager senders (`remote/alertmanager.rs`):
//! their sends ride the history tick, which evaluates the rules every
//! second anyway (no wake-up of their own); their sockets' events and the
//! loop's one `Waker` (`WAKE`, shared with the disks rounds and
//! remote-write's resolver: each looks at its own state) drive them.

use super::{Server, WAKE};
use crate::remote::{alertmanager, Alertmanagers};
use mio::{Token, Waker};
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// The senders, when Alertmanagers are configured.
pub fn setup(
    alerts: Option<alertmanager::Setup>,
    waker: &Arc<Waker>,
) -> io::Result<Option<Alertmanagers>> {
    match alerts.filter(|a| !a.urls.is_empty()) {
        Some(a) => Alertmanagers::new(a, waker)
            .map(Some)
            .map_err(io::Error::other),
        None => Ok(None),
    }
}

impl Server {
    /// Whether `t` is one of the senders' sockets.
    pub(super) fn alerts_owns(&self, t: Token) -> bool {
        self.alertmanagers
            .as_ref()
            .is_some_and(|a| a.owner(t).is_some())
    }

    /// A sender's socket event, or the loop's wake-up (a sender's name
    /// lookup may be what was answered).
    pub(super) fn alerts_event(&mut self, t: Token) {
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
}
