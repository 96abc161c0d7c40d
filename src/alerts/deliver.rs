//! Delivery to Alertmanager, the payload and the bookkeeping only: the
//! caller owns the HTTP client (the remote-write issue's, non-blocking on
//! the loop), asks `Engine::due` on its tick, sends the body
//! `Engine::payload` writes as `POST {url}/api/v2/alerts`
//! (`Content-Type: application/json`), and reports the outcome with
//! `Engine::delivered`.
//!
//! As Prometheus does: every firing alert is sent again every `RESEND`;
//! `endsAt` is `ENDS_AFTER` ahead while firing (Alertmanager resolves it
//! itself if the agent goes silent), the resolve time once resolved; a
//! resolved alert is sent until that Alertmanager answers a 2xx. A change
//! (an alert fired or resolved) is sent at once; a failure is retried
//! after `BACKOFF_MIN`, doubling up to `RESEND`.

use super::eval::{Alert, Engine, Stamp, State};
use super::rules::Rule;
pub use super::schedule::{Schedule, BACKOFF_MIN_MS, ENDS_AFTER_MS, MAX_ALERTMANAGERS, RESEND_MS};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use std::fmt;

/// The path the body is posted to, below the Alertmanager's base URL.
pub const PATH: &str = "/api/v2/alerts";

/// Checks one `--alertmanager` URL (http or https, a host); the base URL
/// kept, without a trailing slash.
pub fn parse_url(what: &str, v: &str) -> Result<String, String> {
    let v = v.trim();
    let bad = |why: &str| format!("{what}: invalid URL {v:?} ({why})");
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .ok_or_else(|| bad("expected http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostname = host.rsplit('@').next().unwrap_or("");
    if hostname.is_empty() || hostname.starts_with(':') {
        return Err(bad("no host"));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("spaces or control characters"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("a query or fragment: give the base URL"));
    }
    if let Some((_, port)) = hostname
        .rsplit_once(':')
        .filter(|_| !hostname.ends_with(']'))
    {
        port.parse::<u16>().map_err(|_| bad("bad port"))?;
    }
    Ok(v.trim_end_matches('/').to_string())
}

impl Engine {
    /// How many Alertmanagers this engine delivers to.
    pub fn alertmanagers(&self) -> usize {
        self.sched.len()
    }

    /// Whether Alertmanager `am` should be sent a body now: its schedule
    /// says so and there is a firing or unacknowledged resolved alert.
    pub fn due(&self, am: usize, now_ms: u64) -> bool {
        let bit = 1u8 << (am % MAX_ALERTMANAGERS);
        self.sched.get(am).is_some_and(|s| s.due(now_ms))
            && self
                .alerts()
                .any(|(_, _, a)| a.state == State::Firing || a.unacked & bit != 0)
    }

    /// Writes the body for Alertmanager `am` into `out` (cleared first)
    /// and marks a send in flight; `instance` is the `instance` label,
    /// `generator_url` the agent's page.
    pub fn payload(
        &mut self,
        am: usize,
        now: Stamp,
        instance: &str,
        generator_url: &str,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        let body = Body {
            engine: self,
            bit: 1u8 << (am % MAX_ALERTMANAGERS),
            now,
            instance,
            generator_url,
        };
        // Writing into a Vec cannot fail; a map key is always a string.
        let _ = serde_json::to_writer(&mut *out, &body);
        if let Some(s) = self.sched.get_mut(am) {
            s.in_flight = Some(now.mono_ms);
        }
    }

    /// The send to `am` ended: `ok` is a 2xx answer. On success, the
    /// resolved alerts that body carried are acknowledged by `am`.
    pub fn delivered(&mut self, am: usize, now_ms: u64, ok: bool) {
        let Some(s) = self.sched.get_mut(am) else {
            return;
        };
        let built = s.in_flight.unwrap_or(0);
        s.done(now_ms, ok);
        if !ok {
            return;
        }
        let bit = 1u8 << (am % MAX_ALERTMANAGERS);
        self.for_each_alert_mut(|a| {
            if a.unacked & bit != 0 && a.resolved_at.mono_ms <= built {
                a.unacked &= !bit;
            }
        });
    }
}

struct Body<'a> {
    engine: &'a Engine,
    bit: u8,
    now: Stamp,
    instance: &'a str,
    generator_url: &'a str,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (rule, label, a) in self.engine.alerts() {
            let resolved = a.state != State::Firing;
            if resolved && a.unacked & self.bit == 0 {
                continue;
            }
            let ends = if resolved {
                a.resolved_at.epoch_ms
            } else {
                self.now.epoch_ms.saturating_add(ENDS_AFTER_MS)
            };
            seq.serialize_element(&Posted {
                rule,
                label,
                a,
                ends,
                body: self,
            })?;
        }
        seq.end()
    }
}

/// One `postableAlert` (Alertmanager API v2).
struct Posted<'a> {
    rule: &'a Rule,
    label: Option<(&'static str, &'a str)>,
    a: &'a Alert,
    ends: u64,
    body: &'a Body<'a>,
}

impl Serialize for Posted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("labels", &Labels(self))?;
        m.serialize_entry("annotations", &Annotations(self))?;
        m.serialize_entry("startsAt", &Rfc3339(self.a.fired_at.epoch_ms))?;
        m.serialize_entry("endsAt", &Rfc3339(self.ends))?;
        m.serialize_entry("generatorURL", self.body.generator_url)?;
        m.end()
    }
}

struct Labels<'a>(&'a Posted<'a>);

impl Serialize for Labels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("alertname", p.rule.name)?;
        m.serialize_entry("severity", p.rule.severity.as_str())?;
        m.serialize_entry("instance", p.body.instance)?;
        if let Some((k, v)) = p.label {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct Annotations<'a>(&'a Posted<'a>);

impl Serialize for Annotations<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("summary", p.rule.summary)?;
        m.serialize_entry("description", &Described(p.rule, p.label, p.a.value))?;
        m.end()
    }
}

/// The `description` annotation, written as it is serialized.
pub(super) struct Described<'a>(
    pub(super) &'a Rule,
    pub(super) Option<(&'static str, &'a str)>,
    pub(super) f64,
);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe(self.1.map_or("", |l| l.1), self.2, f)
    }
}

impl Serialize for Described<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Epoch milliseconds as RFC 3339 in UTC, millisecond precision.
pub struct Rfc3339(pub u64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = i64::try_from(self.0 / 1000).unwrap_or(i64::MAX);
        let t = time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        crate::text::write_rfc3339(f, t, self.0 % 1000, 3)
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
