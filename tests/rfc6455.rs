//! RFC 6455 conformance, as a server without extensions must behave: one
//! case per requirement, over raw sockets with a hand-built frame encoder
//! (no WebSocket library between the test and the agent, so nothing is
//! smoothed over). Section numbers are the RFC's.

mod common;

use common::Agent;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// RFC 6455 §1.3's worked example: the accept value for `KEY`.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// One frame as a client sends it: masked unless `masked` is false.
fn frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

/// A frame as the server sent it.
#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

impl Raw {
    fn connect(agent: &Agent) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    /// Sends a request head and returns the response head (status line
    /// and headers); leftover bytes stay in `buf`.
    fn handshake(&mut self, head: &str) -> String {
        self.s.write_all(head.as_bytes()).unwrap();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let h = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return h;
            }
            let mut chunk = [0u8; 4096];
            let n = self.s.read(&mut chunk).expect("a response head");
            assert!(n > 0, "closed before a response head");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// An open WebSocket: the upgrade sent, 101 checked.
    fn open(agent: &Agent) -> Raw {
        let mut r = Raw::connect(agent);
        let head = r.handshake(&upgrade_head(KEY, "13"));
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        r
    }

    fn send(&mut self, bytes: &[u8]) {
        // A peer that already closed may reset: the test then reads the close.
        let _ = self.s.write_all(bytes);
    }

    fn fill(&mut self, want: usize) -> bool {
        while self.buf.len() < want {
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    /// The next frame from the server; `None` when the connection ends.
    fn read_frame(&mut self) -> Option<Frame> {
        if !self.fill(2) {
            return None;
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let (mut len, mut at) = (u64::from(b1 & 0x7f), 2);
        if len == 126 {
            if !self.fill(4) {
                return None;
            }
            len = u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            at = 4;
        } else if len == 127 {
            if !self.fill(10) {
                return None;
            }
            len = u64::from_be_bytes(self.buf[2..10].try_into().unwrap());
            at = 10;
        }
        let masked = b1 & 0x80 != 0;
        let mask_len = if masked { 4 } else { 0 };
        let total = at + mask_len + len as usize;
        if !self.fill(total) {
            return None;
        }
        let payload = self.buf[at + mask_len..total].to_vec();
        self.buf.drain(..total);
        Some(Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0f,
            masked,
            payload,
        })
    }

    /// Reads until the server's Close frame and returns its status code
    /// (`None`: a Close without one); panics if the connection ends first.
    fn close_code(&mut self) -> Option<u16> {
        loop {
            let f = self
                .read_frame()
                .expect("a Close frame before the connection ended");
            if f.opcode == CLOSE {
                return (f.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]));
            }
        }
    }

    /// The server closes the TCP connection after its Close (§7.1.1),
    /// once our own Close is sent.
    fn ends(&mut self) -> bool {
        loop {
            match self.read_frame() {
                None => return true,
                Some(_) => continue,
            }
        }
    }
}

fn upgrade_head(key: &str, version: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn agent() -> Agent {
    Agent::start(&[], &[("SOCKTOP_AGENT_GPU", "0")])
}

/// Sends `frames`, then expects the connection to fail with `code`.
fn fails_with(agent: &Agent, frames: &[Vec<u8>], code: u16) {
    let mut r = Raw::open(agent);
    for f in frames {
        r.send(f);
    }
    assert_eq!(r.close_code(), Some(code));
    // our Close back; the server then ends the TCP connection
    r.send(&frame(true, 0, CLOSE, true, &close_payload(code, b"")));
    assert!(
        r.ends(),
        "the server closes the TCP connection after the close handshake"
    );
}

// ---- §4: the opening handshake -------------------------------------------

#[test]
fn handshake_answers_101_with_the_accept_key() {
    let a = agent();
    let mut r = Raw::connect(&a);
    let head = r.handshake(&upgrade_head(KEY, "13"));
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade"), "{head}");
    assert!(
        head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}")),
        "{head}"
    );
    // no subprotocol was offered, so none is selected (§4.2.2)
    assert!(!lower.contains("sec-websocket-protocol"), "{head}");
}

#[test]
fn a_key_that_is_not_16_bytes_gets_400() {
    let a = agent();
    // 15, 17 and 0 bytes, base64; and not base64 at all (§4.2.1 item 5)
    for key in [
        "AAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAA=",
        "",
        "not base64 at all!!!!!==",
        "dGhlIHNhbXBsZSBub25jZQ",
    ] {
        let mut r = Raw::connect(&a);
        let head = r.handshake(&upgrade_head(key, "13"));
        assert_eq!(status(&head), 400, "key {key:?}: {head}");
    }
}

#[test]
fn an_unknown_version_is_refused_naming_13() {
    let a = agent();
    let mut r = Raw::connect(&a);
    let head = r.handshake(&upgrade_head(KEY, "8"));
    assert!(matches!(status(&head), 400 | 426), "{head}");
    assert!(head.contains("Sec-WebSocket-Version: 13"), "§4.4: {head}");
}

#[test]
fn an_upgrade_without_the_upgrade_headers_is_refused() {
    let a = agent();
    let mut r = Raw::connect(&a);
    let head = r.handshake(&format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ));
    assert_eq!(status(&head), 400, "{head}");
}

#[test]
fn an_upgrade_must_be_a_get() {
    let a = agent();
    let mut r = Raw::connect(&a);
    let head = r.handshake(&upgrade_head(KEY, "13").replacen("GET", "POST", 1));
    assert!(matches!(status(&head), 400 | 405), "§4.2.1 item 1: {head}");
}

// ---- §5: framing -----------------------------------------------------------

#[test]
fn server_frames_are_unmasked_and_final() {
    let a = agent();
    let mut r = Raw::open(&a);
    r.send(&frame(true, 0, TEXT, true, br#"{"type":"metrics"}"#));
    let f = r.read_frame().unwrap();
    assert_eq!(
        (f.fin, f.rsv, f.opcode, f.masked),
        (true, 0, TEXT, false),
        "§5.1"
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&f.payload).is_ok());
}

#[test]
fn an_unmasked_client_frame_fails_the_connection() {
    fails_with(
        &agent(),
        &[frame(true, 0, TEXT, false, b"get_metrics")],
        1002,
    );
}

#[test]
fn reserved_bits_fail_the_connection() {
    let a = agent();
    for rsv in [1, 2, 4] {
        fails_with(&a, &[frame(true, rsv, TEXT, true, b"get_metrics")], 1002);
    }
}

#[test]
fn reserved_opcodes_fail_the_connection() {
    let a = agent();
    for op in [0x3, 0x7, 0xB, 0xF] {
        fails_with(&a, &[frame(true, 0, op, true, b"")], 1002);
    }
}

#[test]
fn a_ping_gets_a_pong_with_its_payload() {
    let a = agent();
    let mut r = Raw::open(&a);
    r.send(&frame(true, 0, PING, true, b"hello"));
    let f = r.read_frame().unwrap();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (PONG, &b"hello"[..]),
        "§5.5.2"
    );
    // an empty ping too, and an unsolicited pong gets nothing (§5.5.3)
    r.send(&frame(true, 0, PONG, true, b"x"));
    r.send(&frame(true, 0, PING, true, b""));
    let f = r.read_frame().unwrap();
    assert_eq!((f.opcode, f.payload.len()), (PONG, 0));
}

#[test]
fn a_control_frame_over_125_bytes_fails_the_connection() {
    fails_with(&agent(), &[frame(true, 0, PING, true, &[b'x'; 126])], 1002);
}

#[test]
fn a_fragmented_control_frame_fails_the_connection() {
    fails_with(&agent(), &[frame(false, 0, PING, true, b"x")], 1002);
}

// ---- §5.4: fragmentation ---------------------------------------------------

#[test]
fn a_fragmented_text_message_is_one_request() {
    let a = agent();
    let mut r = Raw::open(&a);
    r.send(&frame(false, 0, TEXT, true, b"{\"type\":"));
    // a control frame may come between fragments (§5.4)
    r.send(&frame(true, 0, PING, true, b"mid"));
    r.send(&frame(false, 0, CONT, true, b"\"met"));
    r.send(&frame(true, 0, CONT, true, b"rics\"}"));
    let pong = r.read_frame().unwrap();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"mid"[..]));
    let f = r.read_frame().unwrap();
    assert_eq!(f.opcode, TEXT);
    let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
    assert!(v.get("cpu_total").is_some(), "{v}");
}

#[test]
fn a_continuation_without_a_start_fails_the_connection() {
    fails_with(
        &agent(),
        &[frame(true, 0, CONT, true, b"get_metrics")],
        1002,
    );
}

#[test]
fn a_new_message_inside_a_fragmented_one_fails_the_connection() {
    fails_with(
        &agent(),
        &[
            frame(false, 0, TEXT, true, b"get_"),
            frame(true, 0, TEXT, true, b"metrics"),
        ],
        1002,
    );
}

// ---- §8.1, §5.6: UTF-8 -------------------------------------------------------

#[test]
fn a_text_message_that_is_not_utf8_fails_with_1007() {
    let a = agent();
    fails_with(
        &a,
        &[frame(true, 0, TEXT, true, b"get_\xff\xfemetrics")],
        1007,
    );
    // a truncated sequence at the end of the message
    fails_with(
        &a,
        &[frame(true, 0, TEXT, true, b"get_metrics\xe2\x82")],
        1007,
    );
}

#[test]
fn a_fragmented_text_message_that_is_not_utf8_fails_with_1007() {
    fails_with(
        &agent(),
        &[
            frame(false, 0, TEXT, true, b"get_"),
            frame(false, 0, CONT, true, b"\xce\xba\xe1\xbd"),
            frame(true, 0, CONT, true, b"\xff"),
        ],
        1007,
    );
}

#[test]
fn a_utf8_character_split_across_fragments_is_valid() {
    let a = agent();
    let mut r = Raw::open(&a);
    // "κ" (0xce 0xba) split between two fragments: valid once joined
    r.send(&frame(false, 0, TEXT, true, b"\xce"));
    r.send(&frame(true, 0, CONT, true, b"\xba"));
    let f = r.read_frame().unwrap();
    assert_eq!(f.opcode, TEXT, "an answer, not a Close: {f:?}");
    let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
    assert!(v.get("error").is_some(), "an unknown request: {v}");
}

#[test]
fn a_binary_message_is_answered_with_an_error_object() {
    let a = agent();
    let mut r = Raw::open(&a);
    r.send(&frame(true, 0, BINARY, true, b"\xff\x00"));
    let f = r.read_frame().unwrap();
    assert_eq!(f.opcode, TEXT);
    let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
    assert!(v.get("error").is_some(), "{v}");
}

// ---- §5.5.1, §7.4: closing ---------------------------------------------------

#[test]
fn a_close_is_answered_with_a_close_echoing_the_code() {
    let a = agent();
    for code in [1000u16, 1001, 3000, 4999] {
        let mut r = Raw::open(&a);
        r.send(&frame(true, 0, CLOSE, true, &close_payload(code, b"bye")));
        assert_eq!(r.close_code(), Some(code), "§5.5.1");
        assert!(r.ends(), "§7.1.1: the server closes TCP first");
    }
}

#[test]
fn an_empty_close_is_answered_with_a_close() {
    let a = agent();
    let mut r = Raw::open(&a);
    r.send(&frame(true, 0, CLOSE, true, b""));
    let code = r.close_code();
    assert!(matches!(code, None | Some(1000)), "{code:?}");
    assert!(r.ends());
}

#[test]
fn a_close_with_an_invalid_code_fails_with_1002() {
    let a = agent();
    // §7.4.1/§7.4.2: 0-999, the reserved 1004-1006, 1015, 1016-2999 unassigned, 5000+
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        fails_with(
            &a,
            &[frame(true, 0, CLOSE, true, &close_payload(code, b""))],
            1002,
        );
    }
}

#[test]
fn a_close_with_a_one_byte_payload_fails_with_1002() {
    fails_with(&agent(), &[frame(true, 0, CLOSE, true, b"\x03")], 1002);
}

#[test]
fn a_close_whose_reason_is_not_utf8_fails_with_1007() {
    fails_with(
        &agent(),
        &[frame(
            true,
            0,
            CLOSE,
            true,
            &close_payload(1000, b"bye \xff"),
        )],
        1007,
    );
}

#[test]
fn nothing_is_answered_after_a_close() {
    let a = agent();
    let mut r = Raw::open(&a);
    r.send(&frame(true, 0, CLOSE, true, &close_payload(1000, b"")));
    r.send(&frame(true, 0, TEXT, true, b"get_metrics"));
    // the Close comes back, then the end: no answer to the request after it
    let mut frames = Vec::new();
    while let Some(f) = r.read_frame() {
        frames.push(f.opcode);
    }
    assert_eq!(frames, [CLOSE], "§5.5.1: no data frames after a Close");
}

#[test]
fn an_oversize_message_fails_with_1009() {
    let a = agent();
    fails_with(&a, &[frame(true, 0, TEXT, true, &[b' '; 70_000])], 1009);
    // over the limit only once its fragments are joined
    fails_with(
        &a,
        &[
            frame(false, 0, TEXT, true, &[b' '; 3000]),
            frame(true, 0, CONT, true, &[b' '; 3000]),
        ],
        1009,
    );
}
