//! When each Alertmanager is sent to: the send schedule (resend while
//! firing, at once on a change, back off after a failure), below both the
//! state machine (`eval`, which pokes it) and the payload (`deliver`).

/// Alertmanagers one agent may deliver to (`--alertmanager`, repeated):
/// one bit each in `Alert::unacked`.
pub const MAX_ALERTMANAGERS: usize = 8;
/// Firing alerts are sent again this often (Prometheus's
/// `resend_delay` default is 1 m).
pub const RESEND_MS: u64 = 60_000;
/// `endsAt` while firing: four resend intervals ahead, as Prometheus does.
pub const ENDS_AFTER_MS: u64 = 4 * RESEND_MS;
/// The first retry after a failed send; doubles up to `RESEND_MS`.
pub const BACKOFF_MIN_MS: u64 = 1000;
/// One Alertmanager's send schedule, driven by the caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Schedule {
    /// Monotonic ms of the next send.
    pub(super) next_ms: u64,
    /// Sends failed in a row.
    pub(super) failures: u32,
    /// The body being sent was built at this time.
    pub(super) in_flight: Option<u64>,
    /// An alert changed while a send was in flight.
    pub(super) changed: bool,
}

impl Schedule {
    /// An alert fired or resolved: send at once (unless backing off).
    pub(super) fn poke(&mut self, now_ms: u64) {
        if self.in_flight.is_some() {
            self.changed = true;
        } else if self.failures == 0 {
            self.next_ms = self.next_ms.min(now_ms);
        }
    }

    pub(super) fn due(&self, now_ms: u64) -> bool {
        self.in_flight.is_none() && now_ms >= self.next_ms
    }

    pub(super) fn done(&mut self, now_ms: u64, ok: bool) {
        self.in_flight = None;
        if ok {
            self.failures = 0;
            self.next_ms = if std::mem::take(&mut self.changed) {
                now_ms
            } else {
                now_ms.saturating_add(RESEND_MS)
            };
        } else {
            self.failures = self.failures.saturating_add(1);
            let shift = self.failures.saturating_sub(1).min(16);
            self.next_ms = now_ms.saturating_add((BACKOFF_MIN_MS << shift).min(RESEND_MS));
        }
    }
}
