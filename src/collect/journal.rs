//! Journal lines of one process (`journal_entries`): `journalctl` runs as a
//! child process whose stdout the event loop reads without blocking; this
//! module builds the command and turns its output into the answer.

use serde::Serialize;

/// Newest lines asked of the journal per request (as the reference).
pub const MAX_ENTRIES: usize = 100;
/// Most bytes kept from journalctl's output: 100 entries of JSON, with room.
pub const MAX_OUTPUT: usize = 4 << 20;
/// The answer is sent by then, whatever the journal does (the TUI gives up at 2 s).
pub const DEADLINE: std::time::Duration = std::time::Duration::from_millis(1500);
/// How long a journal answer is served from the cache.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The shape of socktop_connector 1.60.1's `JournalEntry`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub timestamp: String,
    pub priority: &'static str,
    pub message: String,
    pub unit: Option<String>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The shape of the connector's `JournalResponse`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Response {
    pub entries: Vec<Entry>,
    pub total_count: u32,
    pub truncated: bool,
    pub notice: Option<String>,
    pub cached_at: u64,
}

impl Response {
    pub fn empty(notice: impl Into<String>) -> Self {
        Response {
            entries: Vec::new(),
            total_count: 0,
            truncated: false,
            notice: Some(notice.into()),
            cached_at: super::host::epoch_ms() / 1000,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"entries\":[],\"total_count\":0,\"truncated\":false,\"notice\":null,\"cached_at\":0}".into())
    }
}

/// syslog priority 0..7 → the connector's `LogLevel` variant names.
pub fn priority_name(p: u8) -> &'static str {
    match p {
        0 => "Emergency",
        1 => "Alert",
        2 => "Critical",
        3 => "Error",
        4 => "Warning",
        5 => "Notice",
        6 => "Info",
        _ => "Debug",
    }
}

/// Microseconds since the epoch → RFC 3339 in UTC, ASCII only, always
/// six fraction digits. A time past what `time` holds (year 9999; only a
/// corrupt journal says so) is written as its last microsecond.
pub fn rfc3339_us(us: u64) -> String {
    let t = i64::try_from(us / 1_000_000)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or(time::PrimitiveDateTime::MAX.assume_utc(), |t| {
            t.replace_microsecond((us % 1_000_000) as u32).unwrap_or(t)
        });
    let mut s = String::with_capacity(27);
    let _ = crate::text::write_rfc3339(&mut s, t, u64::from(t.microsecond()), 6);
    s
}

fn field_str(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        // journalctl writes non-UTF-8 or binary fields as arrays of bytes
        serde_json::Value::Array(a) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One line of `journalctl -o json` → an entry; `None` for a line that is
/// not a JSON object.
pub fn parse_line(line: &[u8]) -> Option<Entry> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let o = v.as_object()?;
    let get = |k: &str| o.get(k).and_then(field_str);
    let num = |k: &str| get(k).and_then(|s| s.trim().parse::<u32>().ok());
    let ts = get("__REALTIME_TIMESTAMP")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let prio = get("PRIORITY")
        .and_then(|s| s.parse::<u8>().ok())
        .unwrap_or(6);
    Some(Entry {
        timestamp: rfc3339_us(ts),
        priority: priority_name(prio),
        message: get("MESSAGE").unwrap_or_default(),
        unit: get("_SYSTEMD_UNIT").or_else(|| get("UNIT")),
        pid: num("_PID"),
        comm: get("_COMM"),
        uid: num("_UID"),
        gid: num("_GID"),
    })
}

/// What journalctl printed → the answer. `stderr` explains an empty result.
pub fn build_response(pid: u32, stdout: &[u8], stderr: &[u8], exit_ok: bool) -> Response {
    let mut entries: Vec<Entry> = stdout
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .collect();
    if entries.len() > MAX_ENTRIES {
        entries.drain(..entries.len() - MAX_ENTRIES);
    }
    let why = String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string);
    let notice = if !entries.is_empty() {
        None
    } else {
        Some(match (why, exit_ok) {
            (Some(w), _) => format!(
                "no journal entries for PID {pid}: journalctl: {}",
                crate::text::cut(&w, 200)
            ),
            (None, true) => format!("no journal entries for PID {pid}"),
            (None, false) => format!("no journal entries for PID {pid}: journalctl failed"),
        })
    };
    let n = entries.len();
    Response {
        total_count: u32::try_from(n).unwrap_or(u32::MAX),
        truncated: n >= MAX_ENTRIES,
        entries,
        notice,
        cached_at: super::host::epoch_ms() / 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_us(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            rfc3339_us(1_795_665_206_795_123),
            "2026-11-26T03:53:26.795123Z"
        );
        assert_eq!(
            rfc3339_us(253_402_300_799_999_999),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(rfc3339_us(u64::MAX), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn journal_lines() {
        let out = br#"{"__REALTIME_TIMESTAMP":"1700000000000000","PRIORITY":"3","MESSAGE":"disk on fire","_PID":"42","_COMM":"sshd","_UID":"0","_GID":"0","_SYSTEMD_UNIT":"ssh.service"}
{"__REALTIME_TIMESTAMP":"1700000000000001","MESSAGE":[104,105,255],"_PID":"42"}
not json
"#;
        let r = build_response(42, out, b"", true);
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.total_count, 2);
        assert!(r.notice.is_none());
        let e = &r.entries[0];
        assert_eq!(
            (e.priority, e.message.as_str(), e.pid, e.uid),
            ("Error", "disk on fire", Some(42), Some(0))
        );
        assert_eq!(e.unit.as_deref(), Some("ssh.service"));
        assert_eq!(e.timestamp, "2023-11-14T22:13:20.000000Z");
        assert_eq!(r.entries[1].priority, "Info");
        assert!(r.entries[1].message.starts_with("hi"));
        assert!(r.entries.iter().all(|e| e.timestamp.is_ascii()));
        let back: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back["entries"][0]["priority"], "Error");
    }

    #[test]
    fn empty_explains_itself() {
        let r = build_response(7, b"", b"No journal files were found.\n", true);
        assert!(r.entries.is_empty());
        assert!(r.notice.unwrap().contains("No journal files were found."));
        assert!(build_response(7, b"", b"", false)
            .notice
            .unwrap()
            .contains("failed"));
    }
}
