//! Who may use `/ws` and `/metrics` besides the token: the agent's own
//! names (Origin and Host checks against other sites and DNS rebinding),
//! the allowed origins, and the addresses locked out for guessing tokens.
//! Everything here is pure (time is passed in); `http::route` decides with
//! `Names`, and the server owns one `Guard` (the lockout and the log limit).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong tokens from one address within `WRONG_WINDOW` that lock it out.
pub const MAX_WRONG: u32 = 10;
/// The window those wrong tokens are counted in.
pub const WRONG_WINDOW: Duration = Duration::from_secs(10);
/// How long a locked-out address gets 429 on `/ws` and `/metrics`.
pub const BLOCK_FOR: Duration = Duration::from_secs(10);
/// Addresses whose wrong tokens are tracked at once: ~64 bytes each, so
/// at most ~256 KiB however many addresses an attacker has; past it the
/// oldest unblocked entry goes (expired ones first).
pub const MAX_TRACKED: usize = 4096;
/// At most one refusal line this often; the others are counted and the
/// count goes in the next line.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// A host as a URL or a `Host` header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// Lowercase, only `[a-z0-9._-]`: safe to write into a header.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(a) => write!(f, "{a}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// `host[:port]` (an IPv6 host in brackets); `None` for anything else.
pub fn parse_authority(s: &str) -> Option<(Host, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = h.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (h, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (parse_host(h)?, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

/// An IPv4 literal or a DNS name (lowercased); not an IPv6 literal, which
/// needs brackets in an authority.
fn parse_host(h: &str) -> Option<Host> {
    if let Ok(ip) = h.parse::<std::net::Ipv4Addr>() {
        return Some(Host::Ip(IpAddr::V4(ip)));
    }
    let ok = !h.is_empty()
        && h.len() < 254
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then(|| Host::Name(h.to_ascii_lowercase()))
}

/// A web origin: `scheme://host[:port]`, the port filled in for http (80)
/// and https (443) when left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: Host,
    port: Option<u16>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Parses an origin as browsers send it (`Origin: http://host:3000`) and
/// as `--allow-origin` takes it (one trailing `/` allowed). `null`, a
/// path, a user name or an empty host is `None`.
pub fn parse_origin(s: &str) -> Option<Origin> {
    let (scheme, rest) = s.trim().split_once("://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let (host, port) = parse_authority(rest)?;
    let port = port.or(match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    });
    Some(Origin { scheme, host, port })
}

/// An `Origin` header as parsed, to log (never the raw bytes).
pub fn shown_origin(v: &[u8]) -> Option<String> {
    std::str::from_utf8(v)
        .ok()
        .and_then(parse_origin)
        .map(|o| o.to_string())
}

/// A `Host` header as parsed, to log (never the raw bytes).
pub fn shown_host(v: &[u8]) -> Option<String> {
    let (h, p) = std::str::from_utf8(v).ok().and_then(parse_authority)?;
    Some(match p {
        Some(p) => format!("{h}:{p}"),
        None => h.to_string(),
    })
}

/// The agent's own names, its port and the allowed origins: built once at
/// start.
#[derive(Debug, Clone)]
pub struct Names {
    names: Vec<String>,
    port: u16,
    allowed: Vec<Origin>,
}

impl Names {
    /// `localhost`, `hostname` (and `hostname.local`), the names in
    /// `extra_sans` (comma-separated, as the certificate takes them); any
    /// IP literal is an own name too.
    pub fn new(port: u16, hostname: &str, extra_sans: &str, allowed: Vec<Origin>) -> Names {
        let mut names = vec!["localhost".to_string()];
        let host = hostname.trim().to_ascii_lowercase();
        let local = if host.is_empty() {
            String::new()
        } else {
            format!("{host}.local")
        };
        for n in [host.as_str(), local.as_str()]
            .into_iter()
            .chain(extra_sans.split(','))
        {
            if let Some(Host::Name(n)) = parse_host(n.trim()) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        Names {
            names,
            port,
            allowed,
        }
    }

    fn own(&self, h: &Host) -> bool {
        match h {
            Host::Ip(_) => true,
            Host::Name(n) => self.names.contains(n),
        }
    }

    /// An `Origin` header that may open `/ws` without a token: one of ours
    /// on our port, or an allowed one. `null` never is.
    pub fn origin_ok(&self, v: &[u8]) -> bool {
        let Some(o) = std::str::from_utf8(v).ok().and_then(parse_origin) else {
            return false;
        };
        (self.own(&o.host) && o.port == Some(self.port)) || self.allowed(v)
    }

    /// Whether an `Origin` header is one of `--allow-origin`'s.
    pub fn allowed(&self, v: &[u8]) -> bool {
        std::str::from_utf8(v)
            .ok()
            .and_then(parse_origin)
            .is_some_and(|o| self.allowed.contains(&o))
    }

    /// A `Host` header a browser may use for `/ws` and `/metrics`: one of
    /// our names (on our port when it names one), or an allowed origin's host.
    pub fn host_ok(&self, v: &[u8]) -> bool {
        let Some((h, p)) = std::str::from_utf8(v).ok().and_then(parse_authority) else {
            return false;
        };
        (self.own(&h) && p.is_none_or(|p| p == self.port))
            || self.allowed.iter().any(|o| o.host == h)
    }

    /// The page's `connect-src` beyond `'self'`: the exact `ws://` and
    /// `wss://` of the request's Host when it is one of ours (rebuilt from
    /// the parsed name, never the header's bytes); empty otherwise.
    pub fn page_sources(&self, host: Option<&[u8]>) -> String {
        let Some((h, p)) = host
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(parse_authority)
            .filter(|(h, p)| self.own(h) && p.is_none_or(|p| p == self.port))
        else {
            return String::new();
        };
        let port = p.map(|p| format!(":{p}")).unwrap_or_default();
        format!(" ws://{h}{port} wss://{h}{port}")
    }
}

/// One address's wrong tokens.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    since: Instant,
    count: u32,
    until: Option<Instant>,
}

/// IPv4 addresses one by one; IPv6 by /64, which one host usually holds whole.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => {
            let mut b = a.octets();
            b.iter_mut().skip(8).for_each(|o| *o = 0);
            IpAddr::from(b)
        }
        v4 => v4,
    }
}

/// The server's state beside the names: wrong tokens per address (bounded
/// by `MAX_TRACKED`) and the refusal lines' rate limit.
#[derive(Debug)]
pub struct Guard {
    pub names: Names,
    strikes: HashMap<IpAddr, Strikes>,
    last_line: Option<Instant>,
    suppressed: u64,
}

impl Guard {
    pub fn new(names: Names) -> Guard {
        Guard {
            names,
            strikes: HashMap::new(),
            last_line: None,
            suppressed: 0,
        }
    }

    /// How long `ip` stays locked out; `None` when it is not (an expired
    /// entry is forgotten here).
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let k = key(ip);
        let s = self.strikes.get(&k)?;
        match s.until {
            Some(u) if u > now => Some(u - now),
            Some(_) => {
                self.strikes.remove(&k);
                None
            }
            None => {
                if now.saturating_duration_since(s.since) >= WRONG_WINDOW {
                    self.strikes.remove(&k);
                }
                None
            }
        }
    }

    /// Counts a wrong token from `ip`; true when it locks the address out
    /// (once per burst).
    pub fn wrong_token(&mut self, ip: IpAddr, now: Instant) -> bool {
        let k = key(ip);
        if !self.strikes.contains_key(&k) && self.strikes.len() >= MAX_TRACKED {
            self.evict(now);
        }
        let s = self.strikes.entry(k).or_insert(Strikes {
            since: now,
            count: 0,
            until: None,
        });
        if s.until.is_some_and(|u| u > now) {
            return false;
        }
        if s.until.is_some() || now.saturating_duration_since(s.since) >= WRONG_WINDOW {
            *s = Strikes {
                since: now,
                count: 0,
                until: None,
            };
        }
        s.count = s.count.saturating_add(1);
        if s.count >= MAX_WRONG {
            s.until = Some(now + BLOCK_FOR);
            return true;
        }
        false
    }

    /// Makes room for one more: the expired entries go, else the oldest
    /// unblocked one (else the oldest blocked one).
    fn evict(&mut self, now: Instant) {
        self.strikes.retain(|_, s| match s.until {
            Some(u) => u > now,
            None => now.saturating_duration_since(s.since) < WRONG_WINDOW,
        });
        if self.strikes.len() < MAX_TRACKED {
            return;
        }
        let oldest = self
            .strikes
            .iter()
            .min_by_key(|(_, s)| (s.until.is_some(), s.since))
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.strikes.remove(&k);
        }
    }

    /// Addresses tracked now (for tests).
    pub fn tracked(&self) -> usize {
        self.strikes.len()
    }

    /// Whether a refusal may be logged now: `Some(n)` with the number of
    /// refusals not logged since the last line, `None` to stay quiet.
    pub fn refusal_line(&mut self, now: Instant) -> Option<u64> {
        if self
            .last_line
            .is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_LOG_EVERY)
        {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let allowed = vec![parse_origin("https://dash.example:8080").unwrap()];
        Names::new(3000, "Board", " pi.lan, 10.0.0.9 ,bad name", allowed)
    }

    /// Asserts `accepts` takes every one of `ok` and none of `bad`.
    fn takes_only(accepts: impl Fn(&[u8]) -> bool, ok: &[&str], bad: &[&str]) {
        for s in ok {
            assert!(accepts(s.as_bytes()), "refused {s:?}");
        }
        for s in bad {
            assert!(!accepts(s.as_bytes()), "took {s:?}");
        }
    }

    #[test]
    fn origins_parse_like_browsers_send_them() {
        let o = parse_origin("HTTP://LocalHost").unwrap();
        assert_eq!(o.to_string(), "http://localhost:80");
        assert_eq!(
            parse_origin("https://[::1]:8443/").unwrap().to_string(),
            "https://[::1]:8443"
        );
        for bad in [
            "null",
            "",
            "evil.example",
            "http://",
            "http://a b",
            "http://x/path",
            "http://u@x",
            "http://x:99999",
            "http://x:",
            "http://x:+1",
            "http://[::1",
            "http://::1",
            "1http://x",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn own_origins_on_our_port() {
        let n = names();
        let ok = [
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "https://board:3000",
            "http://board.local:3000",
            "http://PI.lan:3000",
            "http://192.168.1.5:3000",
            "http://[::1]:3000",
            "https://dash.example:8080",
        ];
        let bad = [
            "https://evil.example",
            "null",
            "http://localhost",
            "http://localhost:3001",
            "http://rebind.evil.example:3000",
            "https://dash.example",
            "http://bad:3000",
            "http://board.evil:3000",
        ];
        takes_only(|o| n.origin_ok(o), &ok, &bad);
        assert!(n.allowed(b"https://DASH.example:8080/"));
        let bare = Names::new(3000, "", "", Vec::new());
        assert_eq!(bare.names, ["localhost"]);
        assert!(!n.allowed(b"http://localhost:3000"));
    }

    #[test]
    fn shown_values_are_rebuilt_not_echoed() {
        assert_eq!(
            shown_host(b"Evil.Example:3000").as_deref(),
            Some("evil.example:3000")
        );
        assert_eq!(shown_host(b"[::1]").as_deref(), Some("[::1]"));
        assert_eq!(shown_host(b"a\x1b[31m"), None);
        assert_eq!(shown_origin(b"http://x\ny"), None);
    }

    #[test]
    fn hosts_for_browsers() {
        let n = names();
        let ok = [
            "127.0.0.1:3000",
            "localhost",
            "board:3000",
            "[::1]:3000",
            "10.0.0.9",
            "dash.example",
        ];
        let bad = [
            "rebind.evil.example:3000",
            "localhost:80",
            "",
            "board:3000:1",
            "a\r\nb",
        ];
        takes_only(|h| n.host_ok(h), &ok, &bad);
    }

    #[test]
    fn page_sources_name_only_our_host() {
        let n = names();
        assert_eq!(
            n.page_sources(Some(b"LOCALHOST:3000")),
            " ws://localhost:3000 wss://localhost:3000"
        );
        assert_eq!(
            n.page_sources(Some(b"[::1]:3000")),
            " ws://[::1]:3000 wss://[::1]:3000"
        );
        assert_eq!(n.page_sources(Some(b"board")), " ws://board wss://board");
        assert_eq!(n.page_sources(Some(b"evil.example:3000")), "");
        assert_eq!(n.page_sources(Some(b"x; script-src *")), "");
        assert_eq!(n.page_sources(None), "");
    }

    #[test]
    fn ten_wrong_tokens_lock_one_address_out() {
        let mut g = Guard::new(names());
        let t0 = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for i in 0..MAX_WRONG - 1 {
            assert!(!g.wrong_token(a, t0 + Duration::from_millis(u64::from(i))));
            assert_eq!(g.blocked(a, t0), None);
        }
        assert!(g.wrong_token(a, t0 + Duration::from_secs(1)));
        assert_eq!(g.blocked(a, t0 + Duration::from_secs(1)), Some(BLOCK_FOR));
        assert_eq!(g.blocked(b, t0 + Duration::from_secs(1)), None);
        // the same address seen as IPv4-mapped IPv6
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(g.blocked(mapped, t0 + Duration::from_secs(2)).is_some());
        // once per burst
        assert!(!g.wrong_token(a, t0 + Duration::from_secs(2)));
        assert_eq!(g.blocked(a, t0 + Duration::from_secs(11)), None);
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn wrong_tokens_spread_out_do_not_lock() {
        let mut g = Guard::new(names());
        let t0 = Instant::now();
        let a: IpAddr = "10.1.1.1".parse().unwrap();
        for i in 0..30u64 {
            assert!(!g.wrong_token(a, t0 + Duration::from_secs(2 * i)));
        }
        assert_eq!(g.blocked(a, t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let mut g = Guard::new(names());
        let t0 = Instant::now();
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_WRONG {
            g.wrong_token(bad, t0);
        }
        for i in 0..(MAX_TRACKED as u32 * 2) {
            g.wrong_token(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t0);
            assert!(g.tracked() <= MAX_TRACKED);
        }
        // the locked-out address outlived the flood of others
        assert!(g.blocked(bad, t0).is_some());
        // later, the expired entries make room; IPv6: one /64 is one entry
        assert_eq!(g.tracked(), MAX_TRACKED);
        for i in 0..100u16 {
            let ip: IpAddr = format!("2001:db8::{i:x}").parse().unwrap();
            g.wrong_token(ip, t0 + Duration::from_secs(20));
        }
        assert_eq!(g.tracked(), 1);
    }

    #[test]
    fn refusal_lines_are_rate_limited() {
        let mut g = Guard::new(names());
        let t0 = Instant::now();
        assert_eq!(g.refusal_line(t0), Some(0));
        for i in 1..100 {
            assert_eq!(g.refusal_line(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(g.refusal_line(t0 + Duration::from_secs(1)), Some(99));
        assert_eq!(g.refusal_line(t0 + Duration::from_secs(3)), Some(0));
    }
}
