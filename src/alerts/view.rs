//! The agent's own view of its alerts: the `alerts` answer (`{"type":
//! "alerts"}` / `get_alerts`) and the `sockagent_alerts` family of
//! `/metrics` (Prometheus's own `ALERTS` series, under the agent's name).
//! Both list the pending and firing alerts only.

use super::eval::{Engine, State};
use crate::families::{Sink, Value};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

crate::families::declare! {
    pub ALERTS = gauge("sockagent_alerts", "Alerts pending or firing on the agent (1 each), by alertname, alertstate and severity.");
}

impl Engine {
    /// The `alerts` answer into `out` (cleared first): an array of
    /// `{name, state, severity, since_ms, labels, summary}`.
    pub fn answer_json(&self, out: &mut Vec<u8>) {
        out.clear();
        // Writing into a Vec cannot fail; every map key is a string.
        let _ = serde_json::to_writer(&mut *out, &Answer(self));
    }

    /// `sockagent_alerts{alertname,alertstate,severity,<own label>} 1`.
    pub fn describe(&self, out: &mut dyn Sink) {
        ALERTS.open(out);
        for (rule, label, a) in self.alerts() {
            if a.state == State::Inactive {
                continue;
            }
            let base = [
                ("alertname", rule.name),
                ("alertstate", a.state.as_str()),
                ("severity", rule.severity.as_str()),
            ];
            match label {
                Some(l) => {
                    let [a, b, c] = base;
                    out.sample(&[a, b, c, l], Value::U(1));
                }
                None => out.sample(&base, Value::U(1)),
            }
        }
    }
}

struct Answer<'a>(&'a Engine);

impl Serialize for Answer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (rule, label, a) in self.0.alerts() {
            if a.state == State::Inactive {
                continue;
            }
            seq.serialize_element(&Row {
                name: rule.name,
                state: a.state.as_str(),
                severity: rule.severity.as_str(),
                since_ms: a.since().epoch_ms,
                labels: LabelMap(label),
                summary: rule.summary,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    state: &'a str,
    severity: &'a str,
    since_ms: u64,
    labels: LabelMap<'a>,
    summary: &'a str,
}

struct LabelMap<'a>(Option<(&'static str, &'a str)>);

impl Serialize for LabelMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(usize::from(self.0.is_some())))?;
        if let Some((k, v)) = self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
