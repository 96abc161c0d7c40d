//! Where pushes go, and how they authenticate: the remote-write settings
//! `config.rs` validates (compiled in every build, so a build without
//! the `remote-write` feature still names the flag in its error).

use std::path::PathBuf;
use std::time::Duration;

/// The push period when `SOCKAGENT_REMOTE_WRITE_INTERVAL_MS` is not set.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(15_000);
/// The shortest push period (tests use 200 ms; below it the agent would
/// spend its time pushing).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A remote-write URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    /// The name (or address, without brackets) to connect to.
    pub host: String,
    pub port: u16,
    /// The request target: the path and query, at least "/".
    pub path: String,
    /// The `Host` header's value (with the port when it is not the default).
    pub authority: String,
}

impl Target {
    /// `http://host[:port][/path]` or `https://…`; anything else (another
    /// scheme, user info, an empty host, a bad port) is an error.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("expected an http:// or https:// URL".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') {
            return Err("user info in the URL is not taken (use the basic-auth file)".into());
        }
        if path.contains(['#', ' ']) || authority.is_empty() {
            return Err("not a URL the agent can push to".into());
        }
        let default = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            match after.strip_prefix(':') {
                Some(p) => (h, p),
                None if after.is_empty() => (h, ""),
                None => return Err("junk after the host".into()),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, ""),
            }
        };
        let port = if port.is_empty() {
            default
        } else {
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("invalid port")?
        };
        if host.is_empty() {
            return Err("empty host".into());
        }
        Ok(Target {
            https,
            host: host.to_string(),
            port,
            path,
            authority: authority.to_string(),
        })
    }
}

/// How a push authenticates: the file named, read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer(PathBuf),
    /// `user:password` on one line.
    Basic(PathBuf),
}

/// Remote-write's settings (`config.rs` fills them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub target: Target,
    pub interval: Duration,
    /// The `instance` label; `None`: the host name.
    pub instance: Option<String>,
    pub auth: Option<Auth>,
    /// Trust anchors for https (PEM); `None`: the system's bundle.
    pub ca: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("https://prom.example/api/v1/write").unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port, t.path.as_str()),
            (true, "prom.example", 443, "/api/v1/write")
        );
        assert_eq!(t.authority, "prom.example");
        let t = Target::parse("http://127.0.0.1:9090/api/v1/write?x=1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 9090));
        assert_eq!(t.path, "/api/v1/write?x=1");
        assert_eq!(t.authority, "127.0.0.1:9090");
        let t = Target::parse("http://[::1]:8428").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8428, "/")
        );
        for bad in [
            "ftp://x/",
            "x:9090",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://u:p@h/",
            "http://[::1/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
