//! The HTTP side: one request head → a route, before any upgrade.

use subtle::ConstantTimeEq;

/// Largest request head we accept; browsers send < 2 KiB.
pub const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 48;

/// What to do with a complete request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Switch to WebSocket: the 101 response to send.
    Upgrade { response: Vec<u8> },
    /// Answer and close.
    Respond { response: Vec<u8>, status: u16 },
}

/// A complete plain-text response that closes the connection.
pub fn respond(status: u16, reason: &str, body: &str, head_only: bool, extra: &str) -> Route {
    let body = format!("{body}\n");
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body.as_bytes());
    }
    Route::Respond {
        response: r,
        status,
    }
}

/// Decodes `%XX` and `+` in a query value; `None` on a bad escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
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

fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        String::from_utf8_lossy(v)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// Parses the head in `buf`. `Ok(None)`: incomplete, read more.
/// `Some((consumed, route))`: the head was `consumed` bytes long.
pub fn route(buf: &[u8], token: Option<&str>) -> Option<(usize, Route)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_HEAD {
                return Some((
                    buf.len(),
                    respond(
                        431,
                        "Request Header Fields Too Large",
                        "request head too large",
                        false,
                        "",
                    ),
                ));
            }
            return None;
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Some((
                buf.len(),
                respond(
                    431,
                    "Request Header Fields Too Large",
                    "too many headers",
                    false,
                    "",
                ),
            ));
        }
        Err(e) => {
            return Some((
                buf.len(),
                respond(
                    400,
                    "Bad Request",
                    &format!("malformed HTTP request: {e}"),
                    false,
                    "",
                ),
            ))
        }
    };
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let head_only = method == "HEAD";
    let r = match path {
        "/ws" => {
            if method != "GET" {
                respond(
                    405,
                    "Method Not Allowed",
                    "only GET is allowed on /ws",
                    head_only,
                    "Allow: GET\r\n",
                )
            } else if token.is_some_and(|t| !token_ok(t, query_token(query).as_deref())) {
                respond(
                    401,
                    "Unauthorized",
                    "missing or wrong token: connect to /ws?token=...",
                    false,
                    "",
                )
            } else {
                upgrade(&req)
            }
        }
        "/healthz" => match method {
            "GET" | "HEAD" => respond(200, "OK", "ok", head_only, ""),
            _ => respond(
                405,
                "Method Not Allowed",
                "only GET is allowed on /healthz",
                false,
                "Allow: GET, HEAD\r\n",
            ),
        },
        _ if method != "GET" && method != "HEAD" => respond(
            405,
            "Method Not Allowed",
            "only GET is allowed",
            false,
            "Allow: GET\r\n",
        ),
        _ => respond(
            404,
            "Not Found",
            "not found: this agent serves /ws and /healthz",
            head_only,
            "",
        ),
    };
    Some((consumed, r))
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
        }
    }

    const UPGRADE: &str = "Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    fn go(head: &str, token: Option<&str>) -> u16 {
        status(&route(head.as_bytes(), token).unwrap().1)
    }

    #[test]
    fn routes() {
        assert_eq!(go(&format!("GET /ws HTTP/1.1\r\n{UPGRADE}\r\n"), None), 101);
        assert_eq!(go("GET /healthz HTTP/1.1\r\n\r\n", None), 200);
        assert_eq!(go("GET /nope HTTP/1.1\r\n\r\n", None), 404);
        assert_eq!(go("POST /ws HTTP/1.1\r\n\r\n", None), 405);
        assert_eq!(go("GET /ws HTTP/1.1\r\n\r\n", None), 400);
        assert_eq!(go("\x01\x02 garbage\r\n\r\n", None), 400);
        assert!(route(b"GET /ws HTTP/1.1\r\nHost:", None).is_none());
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
        let (_, r) = route(
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
        let (_, r) = route(
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
        let (_, r) = route(
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
    fn oversized_head() {
        let big = format!("GET /ws HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(status(&route(big.as_bytes(), None).unwrap().1), 431);
    }
}
