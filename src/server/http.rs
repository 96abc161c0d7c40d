//! The HTTP side: one request head → a route, before any upgrade.

use super::guard::{shown_host, shown_origin, Names};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Largest request head we accept; browsers send < 2 KiB.
pub const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 48;

/// The live page served at `/`: one self-contained file, embedded.
pub const PAGE: &str = include_str!("page.html");

/// Headers of the page: it may run its own inline script and style, talk
/// to this agent's WebSocket (`'self'`, plus the exact `ws://` and `wss://`
/// of its Host when that is one of the agent's names: `guard::Names::page_sources`),
/// and load nothing from anywhere else.
fn page_headers(sources: &str) -> String {
    format!("Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'{sources}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n")
}

/// What `route` needs besides the bytes.
pub struct Gate<'a> {
    /// The token `/ws` and `/metrics` require, if any.
    pub token: Option<&'a str>,
    pub names: &'a Names,
    /// The peer is locked out for guessing tokens, for this long still.
    pub blocked: Option<Duration>,
}

/// What the caller counts or logs about a routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Nothing,
    /// A token was presented and it was wrong (401).
    WrongToken,
    /// 403: why, and the Origin or Host refused as parsed (safe to log;
    /// `None` when it did not parse).
    Refused(&'static str, Option<String>),
    /// 429: the address is locked out.
    Blocked,
}

/// What to do with a complete request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Switch to WebSocket: the 101 response to send.
    Upgrade { response: Vec<u8> },
    /// Answer and close.
    Respond { response: Vec<u8>, status: u16 },
    /// A Prometheus scrape, token already checked: the server renders the
    /// body from its collectors, then answers and closes.
    /// `gzip`: the client accepts a gzip body (Prometheus always does).
    Metrics { head_only: bool, gzip: bool },
}

/// A complete response with `body` that closes the connection.
pub fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    extra: &str,
) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body);
    }
    r
}

/// Whether an Accept-Encoding value lists gzip (q=0 excluded).
pub fn accepts_gzip(value: Option<&[u8]>) -> bool {
    value.is_some_and(|v| {
        String::from_utf8_lossy(v).split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name_ok = parts.next().is_some_and(|n| n.eq_ignore_ascii_case("gzip"));
            let q0 = parts.any(|p| {
                p.replace(' ', "").eq_ignore_ascii_case("q=0") || p.replace(' ', "") == "q=0.0"
            });
            name_ok && !q0
        })
    })
}

/// A complete plain-text response that closes the connection.
pub fn respond(status: u16, reason: &str, body: &str, head_only: bool, extra: &str) -> Route {
    let body = format!("{body}\n");
    Route::Respond {
        response: response(
            status,
            reason,
            "text/plain; charset=utf-8",
            body.as_bytes(),
            head_only,
            extra,
        ),
        status,
    }
}

/// Decodes `%XX` and `+` (a space, as forms send it; `%2B` is a plus) in
/// a query value; `None` on a bad escape (`%` not followed by two hex
/// digits), which percent-encoding would pass through as written.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let escapes_ok = b
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c == b'%')
        .all(|(i, _)| {
            b.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        });
    if !escapes_ok {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    for (k, part) in s.split('+').enumerate() {
        if k > 0 {
            out.push(b' ');
        }
        out.extend(percent_encoding::percent_decode_str(part));
    }
    Some(out)
}

/// The `token` query parameter, decoded.
fn query_token(query: &str) -> Option<Vec<u8>> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .and_then(percent_decode)
}

/// Constant-time token check (the length may leak; the content does not).
pub fn token_ok(expected: &str, given: Option<&[u8]>) -> bool {
    match given {
        Some(g) => bool::from(expected.as_bytes().ct_eq(g)),
        None => false,
    }
}

fn header<'a>(req: &'a httparse::Request, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The credentials of `Authorization: Bearer <token>` (scheme in any case).
fn bearer<'a>(req: &'a httparse::Request) -> Option<&'a [u8]> {
    let v = header(req, "Authorization")?.trim_ascii();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// A request's token against the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No token configured.
    Open,
    Valid,
    Missing,
    Wrong,
}

/// The token rule of `/ws` and `/metrics`: none configured, or the right
/// one as `?token=` or as a bearer token.
fn authorized(req: &httparse::Request, query: &str, token: Option<&str>) -> Auth {
    let Some(t) = token else { return Auth::Open };
    let (q, b) = (query_token(query), bearer(req));
    // Both are checked, so the time taken does not say which one was sent.
    let qok = token_ok(t, q.as_deref());
    let bok = token_ok(t, b);
    match (qok | bok, q.is_some() || b.is_some()) {
        (true, _) => Auth::Valid,
        (false, true) => Auth::Wrong,
        (false, false) => Auth::Missing,
    }
}

/// Whether `/ws` (`ws`) or `/metrics` may go on: not locked out, the
/// token (when one is set), then, without a valid token, the Origin
/// (`/ws`) and a browser's Host (`guard`). `Err`: the answer instead.
fn admit(req: &httparse::Request, query: &str, gate: &Gate, ws: bool) -> Result<(), (Route, Note)> {
    let head_only = req.method == Some("HEAD");
    if let Some(left) = gate.blocked {
        let secs = (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1);
        let r = respond(
            429,
            "Too Many Requests",
            "too many wrong tokens from this address: try again later",
            head_only,
            &format!("Retry-After: {secs}\r\n"),
        );
        return Err((r, Note::Blocked));
    }
    let unauthorized = |note| {
        let r = if ws {
            respond(
                401,
                "Unauthorized",
                "missing or wrong token: connect to /ws?token=...",
                false,
                "",
            )
        } else {
            respond(
                401,
                "Unauthorized",
                "missing or wrong token: send Authorization: Bearer <token> or /metrics?token=...",
                head_only,
                "WWW-Authenticate: Bearer realm=\"sockagent\"\r\n",
            )
        };
        Err((r, note))
    };
    match authorized(req, query, gate.token) {
        Auth::Valid => return Ok(()),
        Auth::Missing => return unauthorized(Note::Nothing),
        Auth::Wrong => return unauthorized(Note::WrongToken),
        Auth::Open => {}
    }
    let forbidden = |why: &'static str, what: Option<String>| {
        let body = "forbidden: this page's origin or host name is not this agent's (see --allow-origin, or send the token)";
        Err((
            respond(403, "Forbidden", body, head_only, ""),
            Note::Refused(why, what),
        ))
    };
    let origin = header(req, "Origin");
    if ws {
        match origin {
            Some(o) if o.trim_ascii() == b"null" => return forbidden("Origin null", None),
            Some(o) if !gate.names.origin_ok(o) => {
                return forbidden("Origin not this agent's nor allowed", shown_origin(o))
            }
            _ => {}
        }
    }
    let browser = req.headers.iter().any(|h| {
        h.name.len() > 10
            && h.name
                .get(..10)
                .is_some_and(|p| p.eq_ignore_ascii_case("sec-fetch-"))
    });
    let allowed = origin.is_some_and(|o| gate.names.allowed(o));
    if browser && !allowed && !header(req, "Host").is_some_and(|h| gate.names.host_ok(h)) {
        let host = header(req, "Host").and_then(shown_host);
        return forbidden("a browser's Host is not one of this agent's names", host);
    }
    Ok(())
}

fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        String::from_utf8_lossy(v)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// Parses the head in `buf`. `None`: incomplete, read more.
/// `Some((consumed, route, note))`: the head was `consumed` bytes long.
pub fn route(buf: &[u8], gate: &Gate) -> Option<(usize, Route, Note)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return None,
        Ok(httparse::Status::Partial) => {
            return Some((
                buf.len(),
                too_large("request head too large"),
                Note::Nothing,
            ))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Some((buf.len(), too_large("too many headers"), Note::Nothing))
        }
        Err(e) => {
            let why = format!("malformed HTTP request: {e}");
            let r = respond(400, "Bad Request", &why, false, "");
            return Some((buf.len(), r, Note::Nothing));
        }
    };
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let head_only = method == "HEAD";
    let get_or_head = method == "GET" || method == "HEAD";
    let (r, note) = match path {
        "/ws" if method != "GET" => (
            not_allowed("only GET is allowed on /ws", head_only, "GET"),
            Note::Nothing,
        ),
        "/ws" => match admit(&req, query, gate, true) {
            Ok(()) => (upgrade(&req), Note::Nothing),
            Err(refused) => refused,
        },
        "/metrics" if get_or_head => match admit(&req, query, gate, false) {
            Ok(()) => (
                Route::Metrics {
                    head_only,
                    gzip: accepts_gzip(header(&req, "Accept-Encoding")),
                },
                Note::Nothing,
            ),
            Err(refused) => refused,
        },
        "/" if get_or_head => (page(&req, gate, head_only), Note::Nothing),
        "/healthz" if get_or_head => (respond(200, "OK", "ok", head_only, ""), Note::Nothing),
        "/metrics" | "/" | "/healthz" => (
            not_allowed(
                &format!("only GET is allowed on {path}"),
                false,
                "GET, HEAD",
            ),
            Note::Nothing,
        ),
        _ if !get_or_head => (
            not_allowed("only GET is allowed", false, "GET"),
            Note::Nothing,
        ),
        _ => (
            respond(
                404,
                "Not Found",
                "not found: this agent serves /, /ws, /metrics and /healthz",
                head_only,
                "",
            ),
            Note::Nothing,
        ),
    };
    Some((consumed, r, note))
}

/// 431: the head is larger than this agent reads.
fn too_large(why: &str) -> Route {
    respond(431, "Request Header Fields Too Large", why, false, "")
}

/// 405 with the methods the path does allow.
fn not_allowed(why: &str, head_only: bool, allow: &str) -> Route {
    let allow = format!("Allow: {allow}\r\n");
    respond(405, "Method Not Allowed", why, head_only, &allow)
}

/// The live page. It holds no data: it opens /ws with the page's own ?token=.
fn page(req: &httparse::Request, gate: &Gate, head_only: bool) -> Route {
    let sources = gate.names.page_sources(header(req, "Host"));
    Route::Respond {
        response: response(
            200,
            "OK",
            "text/html; charset=utf-8",
            PAGE.as_bytes(),
            head_only,
            &page_headers(&sources),
        ),
        status: 200,
    }
}

fn upgrade(req: &httparse::Request) -> Route {
    let bad = |why: &str| respond(400, "Bad Request", why, false, "");
    if !has_token(header(req, "Upgrade"), "websocket")
        || !has_token(header(req, "Connection"), "upgrade")
    {
        return bad("expected a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)");
    }
    if header(req, "Sec-WebSocket-Version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return respond(
            400,
            "Bad Request",
            "unsupported WebSocket version: 13 is required",
            false,
            "Sec-WebSocket-Version: 13\r\n",
        );
    }
    let Some(key) = header(req, "Sec-WebSocket-Key")
        .map(<[u8]>::trim_ascii)
        .filter(|k| !k.is_empty())
    else {
        return bad("missing Sec-WebSocket-Key");
    };
    // RFC 6455 §4.1, §4.2.1: the key is 16 random bytes, base64-encoded.
    if data_encoding::BASE64.decode(key).map(|k| k.len()) != Ok(16) {
        return bad("Sec-WebSocket-Key must be 16 bytes, base64-encoded");
    }
    let accept = tungstenite::handshake::derive_accept_key(key);
    let proto = if has_token(header(req, "Sec-WebSocket-Protocol"), "socktop") {
        "Sec-WebSocket-Protocol: socktop\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{proto}\r\n"
    )
    .into_bytes();
    Route::Upgrade { response }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: &Route) -> u16 {
        match r {
            Route::Upgrade { .. } => 101,
            Route::Respond { status, .. } => *status,
            Route::Metrics {
                head_only: false, ..
            } => 1200,
            Route::Metrics {
                head_only: true, ..
            } => 1201,
        }
    }

    const UPGRADE: &str = "Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    fn names() -> Names {
        let allowed = vec![crate::server::guard::parse_origin("https://dash.example").unwrap()];
        Names::new(3000, "board", "", allowed)
    }

    fn rt(head: &[u8], token: Option<&str>) -> Option<(usize, Route, Note)> {
        route(
            head,
            &Gate {
                token,
                names: &names(),
                blocked: None,
            },
        )
    }

    fn go(head: &str, token: Option<&str>) -> u16 {
        status(&rt(head.as_bytes(), token).unwrap().1)
    }

    #[test]
    fn routes() {
        assert_eq!(go(&format!("GET /ws HTTP/1.1\r\n{UPGRADE}\r\n"), None), 101);
        assert_eq!(go("GET /healthz HTTP/1.1\r\n\r\n", None), 200);
        assert_eq!(go("GET /nope HTTP/1.1\r\n\r\n", None), 404);
        assert_eq!(go("POST /ws HTTP/1.1\r\n\r\n", None), 405);
        assert_eq!(go("GET /ws HTTP/1.1\r\n\r\n", None), 400);
        assert_eq!(go("\x01\x02 garbage\r\n\r\n", None), 400);
        assert!(rt(b"GET /ws HTTP/1.1\r\nHost:", None).is_none());
        assert_eq!(go("GET /metrics HTTP/1.1\r\n\r\n", None), 1200);
        assert_eq!(go("HEAD /metrics HTTP/1.1\r\n\r\n", None), 1201);
        assert_eq!(go("POST /metrics HTTP/1.1\r\n\r\n", None), 405);
        assert_eq!(go("GET / HTTP/1.1\r\n\r\n", None), 200);
        assert_eq!(go("GET /?token=x HTTP/1.1\r\n\r\n", Some("t")), 200);
        assert_eq!(go("DELETE / HTTP/1.1\r\n\r\n", None), 405);
    }

    #[test]
    fn metrics_token_as_query_or_bearer() {
        let t = Some("s3cr et");
        for (head, want) in [
            ("GET /metrics HTTP/1.1\r\n\r\n", 401),
            ("GET /metrics?token=nope HTTP/1.1\r\n\r\n", 401),
            (
                "GET /metrics HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n",
                401,
            ),
            (
                "GET /metrics HTTP/1.1\r\nAuthorization: Basic czNjciBldA==\r\n\r\n",
                401,
            ),
            ("GET /metrics?token=s3cr%20et HTTP/1.1\r\n\r\n", 1200),
            (
                "GET /metrics HTTP/1.1\r\nauthorization: bearer  s3cr et \r\n\r\n",
                1200,
            ),
        ] {
            assert_eq!(go(head, t), want, "{head:?}");
        }
        // the same rule on /ws
        assert_eq!(
            go(
                &format!("GET /ws HTTP/1.1\r\n{UPGRADE}Authorization: Bearer s3cr et\r\n\r\n"),
                t
            ),
            101
        );
        let (_, r, _) = rt(b"GET /metrics HTTP/1.1\r\n\r\n", t).unwrap();
        let Route::Respond { response, .. } = r else {
            panic!()
        };
        let s = String::from_utf8(response).unwrap();
        assert!(s.contains("WWW-Authenticate: Bearer"), "{s}");
    }

    #[test]
    fn page_is_small_self_contained_html() {
        assert!(PAGE.len() < 30 * 1024, "page is {} bytes", PAGE.len());
        // no external assets: nothing is fetched from another origin
        for bad in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "<script src",
        ] {
            assert!(
                !PAGE.contains(bad),
                "page refers to an external asset: {bad}"
            );
        }
        let (_, r, _) = rt(b"GET / HTTP/1.1\r\n\r\n", None).unwrap();
        let Route::Respond { response, .. } = r else {
            panic!()
        };
        let s = String::from_utf8(response).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(s.contains(&format!("Content-Length: {}\r\n", PAGE.len())));
        assert!(s.ends_with(PAGE));
    }

    #[test]
    fn query_values_decode_like_forms() {
        let d = |s| percent_decode(s);
        assert_eq!(d("s3cr%20et").as_deref(), Some(&b"s3cr et"[..]));
        assert_eq!(d("a+b%2Bc").as_deref(), Some(&b"a b+c"[..]));
        assert_eq!(d("%ff%00").as_deref(), Some(&b"\xff\0"[..]));
        assert_eq!(d("").as_deref(), Some(&b""[..]));
        for bad in ["%", "%4", "%zz", "%%41", "a%g1"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_is_checked_before_upgrade() {
        let t = Some("s3cr et");
        assert_eq!(go(&format!("GET /ws HTTP/1.1\r\n{UPGRADE}\r\n"), t), 401);
        assert_eq!(
            go(&format!("GET /ws?token=nope HTTP/1.1\r\n{UPGRADE}\r\n"), t),
            401
        );
        assert_eq!(
            go(
                &format!("GET /ws?a=1&token=s3cr%20et HTTP/1.1\r\n{UPGRADE}\r\n"),
                t
            ),
            101
        );
        assert_eq!(
            go(
                &format!("GET /ws?token=s3cr+et HTTP/1.1\r\n{UPGRADE}\r\n"),
                t
            ),
            101
        );
        // the body of a 401 never echoes the token
        let (_, r, _) = rt(
            format!("GET /ws?token=nope HTTP/1.1\r\n{UPGRADE}\r\n").as_bytes(),
            t,
        )
        .unwrap();
        let Route::Respond { response, .. } = r else {
            panic!()
        };
        assert!(!String::from_utf8_lossy(&response).contains("nope"));
    }

    #[test]
    fn accept_key_and_subprotocol() {
        let (_, r, _) = rt(
            format!("GET /ws HTTP/1.1\r\n{UPGRADE}Sec-WebSocket-Protocol: chat, socktop\r\n\r\n")
                .as_bytes(),
            None,
        )
        .unwrap();
        let Route::Upgrade { response } = r else {
            panic!()
        };
        let s = String::from_utf8(response).unwrap();
        // RFC 6455's own example key and answer
        assert!(s.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(s.contains("Sec-WebSocket-Protocol: socktop\r\n"));
        let (_, r, _) = rt(
            format!("GET /ws HTTP/1.1\r\n{UPGRADE}Sec-WebSocket-Protocol: chat\r\n\r\n").as_bytes(),
            None,
        )
        .unwrap();
        let Route::Upgrade { response } = r else {
            panic!()
        };
        assert!(!String::from_utf8(response)
            .unwrap()
            .contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn accept_encoding() {
        assert!(accepts_gzip(Some(b"gzip")));
        assert!(accepts_gzip(Some(b"deflate, GZIP;q=0.5")));
        assert!(!accepts_gzip(Some(b"gzip;q=0")));
        assert!(!accepts_gzip(Some(b"identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn oversized_head() {
        let big = format!("GET /ws HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(status(&rt(big.as_bytes(), None).unwrap().1), 431);
    }

    fn note(head: &str, token: Option<&str>) -> (u16, Note) {
        let (_, r, n) = rt(head.as_bytes(), token).unwrap();
        (status(&r), n)
    }

    #[test]
    fn origins_on_ws() {
        let ws = |extra: &str| format!("GET /ws HTTP/1.1\r\n{UPGRADE}{extra}\r\n");
        let refused = |why| (403, Note::Refused(why, None));
        let (s, n) = note(&ws("Origin: https://evil.example\r\n"), None);
        let shown = Some("https://evil.example:443".to_string());
        assert_eq!(
            (s, n),
            (
                403,
                Note::Refused("Origin not this agent's nor allowed", shown)
            )
        );
        let (_, n) = note(&ws("Origin: http://a b\r\n"), None);
        assert!(matches!(n, Note::Refused(_, None)), "{n:?}");
        assert_eq!(note(&ws("Origin: null\r\n"), None), refused("Origin null"));
        assert_eq!(note(&ws("Origin: http://127.0.0.1:3000\r\n"), None).0, 101);
        assert_eq!(note(&ws("Origin: http://localhost:3000\r\n"), None).0, 101);
        assert_eq!(note(&ws("Origin: http://localhost:3001\r\n"), None).0, 403);
        assert_eq!(note(&ws("Origin: https://dash.example\r\n"), None).0, 101);
        assert_eq!(note(&ws(""), None).0, 101);
        // a rebinding name: the Origin and the Host both name it
        let rebind =
            "Origin: http://rebind.evil.example:3000\r\nHost: rebind.evil.example:3000\r\n";
        assert_eq!(note(&ws(rebind), None).0, 403);
        // the token is the credential, whatever page holds it
        let t = Some("tok");
        let evil = "Origin: https://evil.example\r\nSec-Fetch-Mode: websocket\r\n";
        assert_eq!(
            note(&ws(&format!("{evil}Authorization: Bearer tok\r\n")), t).0,
            101
        );
        assert_eq!(note(&ws(evil), t), (401, Note::Nothing));
        assert_eq!(
            note(&format!("GET /ws?token=nope HTTP/1.1\r\n{UPGRADE}\r\n"), t),
            (401, Note::WrongToken)
        );
        // no token configured: an empty ?token= is not a credential
        assert_eq!(
            note(
                &format!("GET /ws?token= HTTP/1.1\r\n{UPGRADE}Origin: null\r\n\r\n"),
                None
            )
            .0,
            403
        );
    }

    #[test]
    fn browsers_host_on_metrics() {
        let get = |host: &str, fetch: bool| {
            let f = if fetch {
                "Sec-Fetch-Mode: no-cors\r\n"
            } else {
                ""
            };
            note(
                &format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n{f}\r\n"),
                None,
            )
            .0
        };
        assert_eq!(get("rebind.evil.example:3000", true), 403);
        assert_eq!(get("rebind.evil.example:3000", false), 1200);
        assert_eq!(get("127.0.0.1:3000", true), 1200);
        assert_eq!(get("board:3000", true), 1200);
        assert_eq!(get("board.local", true), 1200);
        assert_eq!(get("board:80", true), 403);
        // the Host check covers a browser's /ws too
        let ws = format!("GET /ws HTTP/1.1\r\n{UPGRADE}Sec-Fetch-Site: cross-site\r\n\r\n");
        assert_eq!(note(&ws, None).0, 403); // UPGRADE's Host is `x`
    }

    #[test]
    fn locked_out_addresses_get_429() {
        let n = names();
        let gate = Gate {
            token: Some("tok"),
            names: &n,
            blocked: Some(Duration::from_millis(9200)),
        };
        for head in [
            format!("GET /ws?token=tok HTTP/1.1\r\n{UPGRADE}\r\n"),
            "GET /metrics HTTP/1.1\r\n\r\n".to_string(),
        ] {
            let (_, r, n) = route(head.as_bytes(), &gate).unwrap();
            assert_eq!(n, Note::Blocked);
            let Route::Respond { response, status } = r else {
                panic!()
            };
            assert_eq!(status, 429);
            let s = String::from_utf8(response).unwrap();
            assert!(s.contains("Retry-After: 10\r\n"), "{s}");
        }
        // the page and /healthz are not locked
        let (_, r, _) = route(b"GET /healthz HTTP/1.1\r\n\r\n", &gate).unwrap();
        assert_eq!(status(&r), 200);
    }

    #[test]
    fn page_connects_to_its_own_agent_only() {
        let csp = |host: &str| {
            let (_, r, _) = rt(
                format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
                None,
            )
            .unwrap();
            let Route::Respond { response, .. } = r else {
                panic!()
            };
            let s = String::from_utf8(response).unwrap();
            let line = s
                .lines()
                .find(|l| l.starts_with("Content-Security-Policy:"))
                .unwrap()
                .to_string();
            let c = line
                .split("connect-src ")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string();
            c
        };
        assert_eq!(
            csp("127.0.0.1:3000"),
            "'self' ws://127.0.0.1:3000 wss://127.0.0.1:3000"
        );
        assert_eq!(csp("evil.example:3000"), "'self'");
        assert_eq!(csp("x\r\nX-Evil: 1"), "'self'");
    }
}
