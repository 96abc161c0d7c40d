//! Delivery to Alertmanager (`--alertmanager URL`, README "Alerts"): one
//! sender per Alertmanager, each with its own `Client` (the remote-write
//! one), owned by the server and driven by its loop: the history tick
//! (`tick`: a request's deadline, then a send when `Engine::due` says so),
//! the sender's socket events and the shared resolver wake-up. The body is
//! `Engine::payload`'s, posted to the base URL + `deliver::PATH`; a 2xx is
//! a delivery, anything else (an answer, a refusal, a timeout) a failure
//! whose retry the engine's backoff schedules. Nothing here waits: a dead
//! Alertmanager costs the loop one non-blocking connect a retry.

use super::client::{post_head, Client, Done};
use super::resolve::Resolver;
use super::target::Target;
use crate::alerts::deliver::{MAX_ALERTMANAGERS, PATH};
use crate::alerts::{Engine, Stamp};
use crate::families::Sink;
use mio::{Registry, Token, Waker};
use std::sync::Arc;
use std::time::Instant;

/// The senders' sockets: `FIRST_TOKEN + n` for Alertmanager `n` (below the
/// server's `ALARM`, the pusher's `SOCKET` and the server's `WAKE`, above
/// the journal jobs' range).
pub const FIRST_TOKEN: usize = usize::MAX - 5 - MAX_ALERTMANAGERS;

crate::families::declare! {
    SENT = counter("sockagent_alertmanager_notifications_total", "Alert bodies sent to each Alertmanager (delivered or not).");
    FAILED = counter("sockagent_alertmanager_notifications_failed_total", "Alert bodies not delivered: no 2xx answer (refused, timed out, or an error status).");
}

/// `http://user:password@host…` → the URL without them (what labels and
/// log lines show) and their `Authorization: Basic` line (or empty).
fn split_user_info(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let b64 = data_encoding::BASE64.encode(user.as_bytes());
            (
                format!("{scheme}://{host}{path}"),
                format!("Authorization: Basic {b64}\r\n"),
            )
        }
        None => (url.to_string(), String::new()),
    }
}

/// What `main` prepares at start.
pub struct Setup {
    /// The Alertmanagers' base URLs (checked by `deliver::parse_url`).
    pub urls: Vec<String>,
    /// The `instance` label (the host name).
    pub instance: String,
    /// `generatorURL`: the agent's page.
    pub generator_url: String,
    /// https Alertmanagers: rustls's client config (the system's roots).
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

struct Sender {
    client: Client,
    /// The request head up to `Content-Length:` (built once).
    head: String,
    /// The base URL (the `alertmanager` label, the log lines).
    url: String,
    failing: bool,
    sent: u64,
    failed: u64,
}

pub struct Alertmanagers {
    senders: Vec<Sender>,
    instance: String,
    generator_url: String,
    /// The body being built (kept: no allocation once grown).
    body: Vec<u8>,
}

impl Alertmanagers {
    /// One sender a URL; a URL the client cannot take (user info) or an
    /// https one without TLS is one line naming `--alertmanager`.
    pub fn new(s: Setup, waker: &Arc<Waker>) -> Result<Self, String> {
        let mut senders = Vec::new();
        for (n, url) in s.urls.iter().enumerate().take(MAX_ALERTMANAGERS) {
            let (base, auth) = split_user_info(url);
            let target = Target::parse(&format!("{base}{PATH}"))
                .map_err(|e| format!("--alertmanager {base}: {e}"))?;
            let head = post_head(
                &target,
                &format!("Content-Type: application/json\r\n{auth}"),
            );
            let https = target.https;
            let client = Client::new(target, Token(FIRST_TOKEN + n), Resolver::new(waker.clone()));
            #[cfg(feature = "tls")]
            let client = match (&s.tls, https) {
                (Some(cfg), true) => client.with_tls(cfg.clone()),
                (None, true) => return Err(format!("--alertmanager {base}: no TLS config")),
                _ => client,
            };
            #[cfg(not(feature = "tls"))]
            if https {
                return Err(format!(
                    "--alertmanager {base}: https needs the `tls` feature (this build has none)"
                ));
            }
            log::info!(
                "alerts: delivering to {base}{PATH} as instance {:?}",
                s.instance
            );
            senders.push(Sender {
                client,
                head,
                url: base,
                failing: false,
                sent: 0,
                failed: 0,
            });
        }
        Ok(Alertmanagers {
            senders,
            instance: s.instance,
            generator_url: s.generator_url,
            body: Vec::new(),
        })
    }

    /// The Alertmanager whose socket `t` is.
    pub fn owner(&self, t: Token) -> Option<usize> {
        t.0.checked_sub(FIRST_TOKEN)
            .filter(|n| *n < self.senders.len())
    }

    /// On the history tick: requests past their deadline fail; then each
    /// idle sender the engine says is due sends its body.
    pub fn tick(&mut self, engine: &mut Engine, at: Stamp, registry: &Registry, now: Instant) {
        for am in 0..self.senders.len() {
            if self.senders.get(am).is_some_and(|s| s.client.busy()) {
                self.drive(am, engine, at.mono_ms, |c| c.on_timer(registry, now));
            } else if engine.due(am, at.mono_ms) {
                self.send(am, engine, at, registry, now);
            }
        }
    }

    fn send(
        &mut self,
        am: usize,
        engine: &mut Engine,
        at: Stamp,
        registry: &Registry,
        now: Instant,
    ) {
        engine.payload(am, at, &self.instance, &self.generator_url, &mut self.body);
        let Some(s) = self.senders.get_mut(am) else {
            return;
        };
        s.sent += 1;
        if let Some(d) = s.client.post(&s.head, &self.body, registry, now) {
            self.done(am, engine, at.mono_ms, d);
        }
    }

    /// Sender `am`'s socket event.
    pub fn on_event(&mut self, am: usize, engine: &mut Engine, mono_ms: u64, registry: &Registry) {
        self.drive(am, engine, mono_ms, |c| c.on_event(registry));
    }

    /// The shared resolver wake-up: each sender takes its own answer.
    pub fn on_wake(&mut self, engine: &mut Engine, mono_ms: u64, registry: &Registry) {
        for am in 0..self.senders.len() {
            self.drive(am, engine, mono_ms, |c| c.on_wake(registry));
        }
    }

    /// Sender `am`'s client takes a step (a timer, an event, a wake-up);
    /// the request it ends, if any, is done.
    fn drive(
        &mut self,
        am: usize,
        engine: &mut Engine,
        mono_ms: u64,
        step: impl FnOnce(&mut Client) -> Option<Done>,
    ) {
        let done = self.senders.get_mut(am).and_then(|s| step(&mut s.client));
        if let Some(d) = done {
            self.done(am, engine, mono_ms, d);
        }
    }

    fn done(&mut self, am: usize, engine: &mut Engine, mono_ms: u64, d: Done) {
        let ok = matches!(
            d,
            Done::Status {
                code: 200..=299,
                ..
            }
        );
        engine.delivered(am, mono_ms, ok);
        let Some(s) = self.senders.get_mut(am) else {
            return;
        };
        if ok {
            if std::mem::take(&mut s.failing) {
                log::info!("alerts: {} takes alerts again", s.url);
            }
            return;
        }
        s.failed += 1;
        if !s.failing {
            s.failing = true;
            let why = match &d {
                // the start of its body, without its line breaks
                Done::Status { code, body, .. } => {
                    let body: String = body.chars().filter(|c| !c.is_control()).collect();
                    format!("answered {code} {body}")
                }
                Done::Failed(why) => (*why).to_string(),
            };
            log::warn!(
                "alerts: delivering to {} fails ({}); retrying with backoff",
                s.url,
                why.trim()
            );
        }
    }

    /// The senders' counts, for `/metrics`.
    pub fn describe(&self, out: &mut dyn Sink) {
        SENT.open(out);
        for s in &self.senders {
            out.sample(&[("alertmanager", &s.url)], s.sent.into());
        }
        FAILED.open(out);
        for s in &self.senders {
            out.sample(&[("alertmanager", &s.url)], s.failed.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_becomes_basic_auth() {
        assert_eq!(
            split_user_info("http://am:9093"),
            ("http://am:9093".into(), String::new())
        );
        assert_eq!(
            split_user_info("https://u:p@am:9093/prefix"),
            (
                "https://am:9093/prefix".into(),
                "Authorization: Basic dTpw\r\n".into()
            )
        );
    }
}
