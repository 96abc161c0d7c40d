//! What goes over the wire: requests in, answers out.

pub mod gzip;
pub mod pb;
pub mod prom;

use serde::Deserialize;
use tungstenite::{Bytes, Utf8Bytes};

/// Longest request text we parse. Real requests are < 64 bytes; longer text
/// gets an error object. Frames over `MAX_FRAME` close the connection (1009).
pub const MAX_REQUEST: usize = 1024;
/// Largest frame or message a client may send: a few KiB is plenty for any
/// request; past it the connection closes with 1009, payload never buffered.
pub const MAX_FRAME: usize = 4096;

/// An encoded answer, ready to become one WebSocket frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Answer {
    pub fn text(s: String) -> Self {
        Answer::Text(Utf8Bytes::from(s))
    }

    /// The payload's bytes: what the answer holds while it waits for a client.
    pub fn size(&self) -> usize {
        match self {
            Answer::Text(t) => t.len(),
            Answer::Binary(b) => b.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Metrics,
    Disks,
    Processes,
    ProcessMetrics(u32),
    Journal(u32),
    /// Services and containers: every cgroup that holds processes.
    Cgroups,
    /// The history ring, samples newer than `since_ms` (epoch ms) only;
    /// gzipped into a binary frame when asked.
    History {
        since_ms: Option<u64>,
        gzip: bool,
    },
    /// The pending and firing alerts (the agent's own rules).
    Alerts,
    /// Pushed streams from now on (replacing any earlier subscription).
    Subscribe(Subscription),
    /// No more pushed streams.
    Unsubscribe,
}

/// A kind of answer that can be pushed (`subscribe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stream {
    Metrics = 0,
    Processes = 1,
    Disks = 2,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Metrics, Stream::Processes, Stream::Disks];

    /// Its member in a `subscribe` request and answer.
    pub fn key(self) -> &'static str {
        match self {
            Stream::Metrics => "metrics_ms",
            Stream::Processes => "processes_ms",
            Stream::Disks => "disks_ms",
        }
    }

    /// Its name as a `/metrics` label.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Metrics => "metrics",
            Stream::Processes => "processes",
            Stream::Disks => "disks",
        }
    }

    /// The shortest period a client may ask for: the API guide's polling
    /// intervals (metrics 500 ms, processes 2 s, disks 5 s).
    pub fn min_ms(self) -> u32 {
        match self {
            Stream::Metrics => 500,
            Stream::Processes => 2000,
            Stream::Disks => 5000,
        }
    }
}

/// The longest period a stream may have: an hour.
pub const MAX_PERIOD_MS: u32 = 3_600_000;

/// Each stream's period in ms (`None`: not subscribed), by `Stream as usize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Subscription(pub [Option<u32>; 3]);

impl Subscription {
    pub fn period(&self, s: Stream) -> Option<u32> {
        self.0.get(s as usize).copied().flatten()
    }

    /// The `{"subscribed":{…}}` answer.
    pub fn answer_json(&self) -> String {
        let mut o = serde_json::Map::new();
        for s in Stream::ALL {
            if let Some(ms) = self.period(s) {
                o.insert(s.key().into(), ms.into());
            }
        }
        let mut top = serde_json::Map::new();
        top.insert("subscribed".into(), serde_json::Value::Object(o));
        serde_json::Value::Object(top).to_string()
    }
}

/// A request we could not understand: becomes an error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub error: String,
    pub pid: Option<serde_json::Value>,
}

impl RequestError {
    fn new(msg: impl Into<String>) -> Self {
        RequestError {
            error: msg.into(),
            pid: None,
        }
    }
}

#[derive(Deserialize)]
struct JsonRequest {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    pid: Option<serde_json::Value>,
    since_ms: Option<serde_json::Value>,
    gzip: Option<serde_json::Value>,
    metrics_ms: Option<serde_json::Value>,
    processes_ms: Option<serde_json::Value>,
    disks_ms: Option<serde_json::Value>,
}

impl JsonRequest {
    fn history(&self) -> Result<Request, RequestError> {
        let since_ms = match &self.since_ms {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                RequestError::new(format!(
                    "since_ms must be a non-negative integer (epoch ms), got {}",
                    cut(&v.to_string(), 32)
                ))
            })?),
        };
        let gzip = match &self.gzip {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(v) => {
                return Err(RequestError::new(format!(
                    "gzip must be true or false, got {}",
                    cut(&v.to_string(), 32)
                )))
            }
        };
        Ok(Request::History { since_ms, gzip })
    }

    fn subscribe(&self) -> Result<Request, RequestError> {
        let mut sub = Subscription::default();
        for (s, v) in
            Stream::ALL
                .into_iter()
                .zip([&self.metrics_ms, &self.processes_ms, &self.disks_ms])
        {
            let Some(v) = v.as_ref().filter(|v| !v.is_null()) else {
                continue;
            };
            let (key, min) = (s.key(), s.min_ms());
            let ms = v
                .as_u64()
                .filter(|ms| (u64::from(min)..=u64::from(MAX_PERIOD_MS)).contains(ms))
                .ok_or_else(|| {
                    RequestError::new(format!(
                        "{key} must be a whole number of ms from {min} to {MAX_PERIOD_MS}, got {}",
                        cut(&v.to_string(), 32)
                    ))
                })?;
            if let Some(p) = sub.0.get_mut(s as usize) {
                *p = Some(ms as u32);
            }
        }
        if sub == Subscription::default() {
            return Err(RequestError::new(
                "subscribe needs at least one of metrics_ms, processes_ms, disks_ms",
            ));
        }
        Ok(Request::Subscribe(sub))
    }
}

fn pid_from_str(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("pid must be a positive integer".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!(
            "pid must be a positive integer, got {:?}",
            cut(s.trim(), 32)
        )),
    }
}

fn pid_from_json(v: Option<&serde_json::Value>) -> Result<u32, String> {
    match v {
        None | Some(serde_json::Value::Null) => Err("missing \"pid\"".into()),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(p) if p > 0 && p <= u64::from(u32::MAX) => Ok(p as u32),
            _ => Err(format!("pid must be a positive integer, got {n}")),
        },
        Some(serde_json::Value::String(s)) => pid_from_str(s),
        Some(other) => Err(format!(
            "pid must be a positive integer, got {}",
            cut(&other.to_string(), 32)
        )),
    }
}

/// Parses one text frame: the guide's JSON form or the legacy form.
pub fn parse_request(text: &str) -> Result<Request, RequestError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(RequestError::new("empty request"));
    }
    if t.len() > MAX_REQUEST {
        return Err(RequestError::new(format!(
            "request longer than {MAX_REQUEST} bytes"
        )));
    }
    if t.starts_with("{") {
        parse_json(t)
    } else {
        parse_legacy(t)
    }
}

/// The guide's form: `{"type":...}`, trimmed.
fn parse_json(t: &str) -> Result<Request, RequestError> {
    let j: JsonRequest =
        serde_json::from_str(t).map_err(|e| RequestError::new(format!("malformed JSON: {e}")))?;
    let kind = match &j.kind {
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(_) => return Err(RequestError::new("\"type\" must be a string")),
        None => return Err(RequestError::new("missing \"type\"")),
    };
    let with_pid = |f: fn(u32) -> Request| {
        pid_from_json(j.pid.as_ref())
            .map(f)
            .map_err(|e| RequestError {
                error: e,
                pid: j.pid.clone().filter(|p| !p.is_null()),
            })
    };
    match kind {
        "metrics" => Ok(Request::Metrics),
        "disks" => Ok(Request::Disks),
        "processes" => Ok(Request::Processes),
        "cgroups" => Ok(Request::Cgroups),
        "history" => j.history(),
        "alerts" => Ok(Request::Alerts),
        "subscribe" => j.subscribe(),
        "unsubscribe" => Ok(Request::Unsubscribe),
        "process_metrics" => with_pid(Request::ProcessMetrics),
        "journal_entries" => with_pid(Request::Journal),
        other => Err(RequestError::new(format!(
            "unknown request type {:?}",
            cut(other, 40)
        ))),
    }
}

/// The legacy form: `get_metrics`, `get_process_metrics:PID`, trimmed.
fn parse_legacy(t: &str) -> Result<Request, RequestError> {
    let with_pid = |arg: &str, f: fn(u32) -> Request| {
        pid_from_str(arg).map(f).map_err(|e| RequestError {
            error: e,
            pid: arg.trim().parse::<u64>().ok().map(serde_json::Value::from),
        })
    };
    match t {
        "get_metrics" => Ok(Request::Metrics),
        "get_disks" => Ok(Request::Disks),
        "get_processes" => Ok(Request::Processes),
        "get_cgroups" => Ok(Request::Cgroups),
        "get_alerts" => Ok(Request::Alerts),
        "get_history" => Ok(Request::History {
            since_ms: None,
            gzip: false,
        }),
        _ => {
            if let Some(arg) = t.strip_prefix("get_process_metrics:") {
                with_pid(arg, Request::ProcessMetrics)
            } else if let Some(arg) = t.strip_prefix("get_journal_entries:") {
                with_pid(arg, Request::Journal)
            } else if t == "get_process_metrics" || t == "get_journal_entries" {
                Err(RequestError::new(format!("missing pid: send {t}:PID")))
            } else {
                Err(RequestError::new("unknown request: send {\"type\":\"metrics\"|\"disks\"|\"processes\"|\"cgroups\"|\"history\"} or get_metrics|get_disks|get_processes|get_cgroups|get_history"))
            }
        }
    }
}

pub use crate::text::cut;

/// The one-line JSON error object for a bad request, its keys in order
/// (`error`, `pid` when given, `request`): written straight out, as
/// serde_json would write the object, without building one.
pub fn error_json(error: &str, request: &str, pid: Option<&serde_json::Value>) -> String {
    let error: std::borrow::Cow<str> = if error.contains(['\n', '\r']) {
        error.replace(['\n', '\r'], " ").into()
    } else {
        error.into()
    };
    let request = cut(request, 64);
    let mut out = Vec::with_capacity(32 + error.len() + request.len());
    out.extend_from_slice(b"{\"error\":");
    // Writing a str or a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, error.as_ref());
    if let Some(p) = pid {
        out.extend_from_slice(b",\"pid\":");
        let _ = serde_json::to_writer(&mut out, p);
    }
    out.extend_from_slice(b",\"request\":");
    let _ = serde_json::to_writer(&mut out, request);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(parse_request("get_metrics"), Ok(Request::Metrics));
        assert_eq!(parse_request(" get_disks\n"), Ok(Request::Disks));
        assert_eq!(parse_request("get_processes"), Ok(Request::Processes));
        assert_eq!(parse_request(r#"{"type":"metrics"}"#), Ok(Request::Metrics));
        assert_eq!(
            parse_request(r#" { "type" : "disks", "extra": [1] } "#),
            Ok(Request::Disks)
        );
        assert_eq!(
            parse_request(r#"{"type":"processes"}"#),
            Ok(Request::Processes)
        );
        assert_eq!(
            parse_request("get_process_metrics:42"),
            Ok(Request::ProcessMetrics(42))
        );
        assert_eq!(
            parse_request("get_journal_entries:7"),
            Ok(Request::Journal(7))
        );
        assert_eq!(
            parse_request(r#"{"type":"process_metrics","pid":42}"#),
            Ok(Request::ProcessMetrics(42))
        );
        assert_eq!(
            parse_request(r#"{"type":"journal_entries","pid":"9"}"#),
            Ok(Request::Journal(9))
        );
        assert_eq!(parse_request("get_cgroups"), Ok(Request::Cgroups));
        assert_eq!(parse_request(r#"{"type":"cgroups"}"#), Ok(Request::Cgroups));
    }

    #[test]
    fn history_and_streams() {
        let h = |since_ms, gzip| Ok(Request::History { since_ms, gzip });
        assert_eq!(parse_request("get_history"), h(None, false));
        assert_eq!(parse_request("get_alerts"), Ok(Request::Alerts));
        assert_eq!(parse_request(r#"{"type":"alerts"}"#), Ok(Request::Alerts));
        assert_eq!(parse_request(r#"{"type":"history"}"#), h(None, false));
        assert_eq!(
            parse_request(r#"{"type":"history","since_ms":1700000000000,"gzip":true}"#),
            h(Some(1_700_000_000_000), true)
        );
        for bad in [
            r#"{"type":"history","since_ms":-1}"#,
            r#"{"type":"history","since_ms":"1"}"#,
            r#"{"type":"history","since_ms":1.5}"#,
            r#"{"type":"history","gzip":1}"#,
        ] {
            assert!(parse_request(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_request(r#"{"type":"subscribe","metrics_ms":1000,"disks_ms":5000}"#),
            Ok(Request::Subscribe(Subscription([
                Some(1000),
                None,
                Some(5000)
            ])))
        );
        assert_eq!(
            parse_request(r#"{"type":"unsubscribe"}"#),
            Ok(Request::Unsubscribe)
        );
        for (bad, says) in [
            (r#"{"type":"subscribe"}"#, "at least one"),
            (r#"{"type":"subscribe","metrics_ms":499}"#, "metrics_ms"),
            (r#"{"type":"subscribe","processes_ms":1000}"#, "from 2000"),
            (r#"{"type":"subscribe","disks_ms":"5000"}"#, "disks_ms"),
            (r#"{"type":"subscribe","metrics_ms":3600001}"#, "3600000"),
            (r#"{"type":"subscribe","metrics_ms":600.5}"#, "metrics_ms"),
        ] {
            let e = parse_request(bad).unwrap_err();
            assert!(e.error.contains(says), "{bad}: {}", e.error);
        }
        let s = Subscription([Some(1000), Some(3000), None]);
        assert_eq!(
            s.answer_json(),
            r#"{"subscribed":{"metrics_ms":1000,"processes_ms":3000}}"#
        );
        assert_eq!(
            Subscription::default().answer_json(),
            r#"{"subscribed":{}}"#
        );
    }

    #[test]
    fn errors_carry_pid() {
        let e = parse_request("get_process_metrics:0").unwrap_err();
        assert_eq!(e.pid, Some(0.into()));
        let e = parse_request("get_process_metrics:abc").unwrap_err();
        assert_eq!(e.pid, None);
        let e = parse_request(r#"{"type":"process_metrics","pid":-1}"#).unwrap_err();
        assert_eq!(e.pid, Some((-1).into()));
        assert!(parse_request(r#"{"type":"process_metrics"}"#).is_err());
    }

    #[test]
    fn bad_inputs() {
        for bad in [
            "",
            "   ",
            "{",
            "{\"type\":1}",
            "{}",
            "[1]",
            "get_metricsx",
            "get_cgroups:1",
            "{\"type\":\"cgroup\"}",
            "{\"type\":\"nope\"}",
            "null",
        ] {
            assert!(parse_request(bad).is_err(), "{bad:?}");
        }
        assert!(parse_request(&"x".repeat(MAX_REQUEST + 1)).is_err());
    }

    #[test]
    fn error_object_is_one_line_and_cut() {
        let long = "é".repeat(100);
        let s = error_json("bad\nthing", &long, Some(&5.into()));
        assert!(!s.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["request"].as_str().unwrap().len(), 64);
        assert_eq!(v["pid"], 5);
        // the bytes serde_json writes for the same object (its keys sorted)
        let quote = "a \"q\" \\ \u{1}\t";
        for pid in [
            None,
            Some(serde_json::json!(7)),
            Some(serde_json::json!("x\"y")),
        ] {
            let mut o = serde_json::Map::new();
            o.insert("error".into(), "bad thing".into());
            o.insert("request".into(), quote.into());
            if let Some(p) = &pid {
                o.insert("pid".into(), p.clone());
            }
            let want = serde_json::Value::Object(o).to_string();
            assert_eq!(error_json("bad\nthing", quote, pid.as_ref()), want);
        }
    }
}
