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
    if t.starts_with('{') {
        let j: JsonRequest = serde_json::from_str(t)
            .map_err(|e| RequestError::new(format!("malformed JSON: {e}")))?;
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
        return match kind {
            "metrics" => Ok(Request::Metrics),
            "disks" => Ok(Request::Disks),
            "processes" => Ok(Request::Processes),
            "cgroups" => Ok(Request::Cgroups),
            "process_metrics" => with_pid(Request::ProcessMetrics),
            "journal_entries" => with_pid(Request::Journal),
            other => Err(RequestError::new(format!(
                "unknown request type {:?}",
                cut(other, 40)
            ))),
        };
    }
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
        _ => {
            if let Some(arg) = t.strip_prefix("get_process_metrics:") {
                with_pid(arg, Request::ProcessMetrics)
            } else if let Some(arg) = t.strip_prefix("get_journal_entries:") {
                with_pid(arg, Request::Journal)
            } else if t == "get_process_metrics" || t == "get_journal_entries" {
                Err(RequestError::new(format!("missing pid: send {t}:PID")))
            } else {
                Err(RequestError::new("unknown request: send {\"type\":\"metrics\"|\"disks\"|\"processes\"|\"cgroups\"} or get_metrics|get_disks|get_processes|get_cgroups"))
            }
        }
    }
}

/// `s` cut to at most `max` bytes on a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The one-line JSON error object for a bad request.
pub fn error_json(error: &str, request: &str, pid: Option<&serde_json::Value>) -> String {
    let mut o = serde_json::Map::new();
    o.insert("error".into(), error.replace(['\n', '\r'], " ").into());
    o.insert("request".into(), cut(request, 64).into());
    if let Some(p) = pid {
        o.insert("pid".into(), p.clone());
    }
    serde_json::Value::Object(o).to_string()
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
    }
}
