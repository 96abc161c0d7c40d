//! Prometheus remote-write: the agent pushes what `/metrics` shows, and
//! the history ring's seconds, to `--remote-write URL` (README, "Push
//! (remote-write)").
//!
//! The `Pusher` is owned by the server and driven by its loop: a timer in
//! the server's heap (`wake_at`), its socket's events and the resolver's
//! wake-up. One batch at a time is built and in flight; nothing else is
//! queued. Each push carries every `/metrics` family (stamped when it was
//! collected) except the ring's, which go second by second from the ring
//! after the newest second the endpoint accepted: after an outage the
//! missed seconds go oldest first, `BATCH_SECONDS` a push, then pushing
//! goes on live. Per series every sample is newer than the one before, so
//! the server needs no out-of-order window.
//!
//! ```text
//! target.rs   the URL and settings (config.rs validates them)
//! encode.rs   families → WriteRequest protobuf → snappy (a families::Sink)
//! client.rs   one POST at a time in the loop (mio, rustls), httparse
//! resolve.rs  getaddrinfo on a helper thread, answered through a Waker
//! source.rs   what a push reads (Answers, or a test's stub)
//! tls.rs      https: rustls's client config, the trust anchors
//! pusher.rs   the schedule, backoff, catch-up and self-metrics
//! alertmanager.rs  the alerts' senders to Alertmanager (the same client)
//! ```

pub mod target;

#[cfg(feature = "remote-write")]
pub mod alertmanager;
#[cfg(feature = "remote-write")]
pub mod client;
#[cfg(feature = "remote-write")]
pub mod encode;
#[cfg(feature = "remote-write")]
mod pusher;
#[cfg(feature = "remote-write")]
pub mod resolve;
#[cfg(feature = "remote-write")]
pub mod source;
#[cfg(all(feature = "remote-write", feature = "tls"))]
pub mod tls;

#[cfg(feature = "remote-write")]
pub use alertmanager::Alertmanagers;
#[cfg(feature = "remote-write")]
pub use pusher::{setup, Pusher, Setup, Stats, SOCKET};
pub use target::{Auth, Settings, Target};
