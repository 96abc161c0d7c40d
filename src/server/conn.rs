//! One connection's state machine: HTTP head → WebSocket → closing, its
//! socket and its queue of answers, kept in request order.

use super::dispatch::{self, Ctx, Slot};
use super::http;
use super::pushes::Pushes;
use super::transport::Transport;
use crate::answers::prom::PushCounts;
use crate::protocol::{self, Answer, Stream, Subscription};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::Shutdown;
use std::time::Instant;
use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketContext};
use tungstenite::Message;

/// Answers one connection may have queued behind a slow one before we stop
/// reading its requests.
const MAX_PENDING: usize = 256;

/// A subscriber's socket send buffer (the kernel doubles it). Without a
/// bound the kernel's autotuning lets a viewer that stops reading hold
/// megabytes of stale frames; with it, the socket fills after a few frames
/// and newer frames replace the one waiting (`Pushes`), so what a slow
/// viewer gets next is fresh. A larger answer still goes out whole, over
/// several writable events.
const PUSH_SNDBUF: libc::c_int = 16 * 1024;

/// Bounds the socket's send buffer (see `PUSH_SNDBUF`); best effort.
fn bound_sndbuf(sock: &mio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let v = PUSH_SNDBUF;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        log::debug!("SO_SNDBUF: {}", io::Error::last_os_error());
    }
}

/// What the loop does with a connection after its step.
pub enum Outcome {
    Keep,
    Drop,
}

pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub enum Phase {
    /// Reading the request head.
    Http { buf: Vec<u8> },
    /// Upgraded.
    Ws { ctx: Box<WebSocketContext> },
    /// Sending the last bytes (an HTTP error, a close frame), then reading
    /// and discarding until the peer closes or the deadline passes: closing
    /// with unread input would reset the connection and lose our last words.
    Closing {
        ctx: Option<Box<WebSocketContext>>,
        shut: bool,
    },
}

pub struct Conn {
    pub io: Transport,
    pub phase: Phase,
    /// Distinguishes this connection from a later one in the same slab slot.
    pub serial: u64,
    pub deadline: Option<Instant>,
    /// When the one timer this connection has in the heap fires, if any.
    pub timer_at: Option<Instant>,
    pub queue: VecDeque<Slot>,
    pub peer: String,
    pub pushes: Pushes,
}

/// Hands stream `s`'s frame to connection `c`, replacing one still unsent.
pub fn offer(c: &mut Conn, s: Stream, a: Answer, n: &mut PushCounts) {
    if !matches!(c.phase, Phase::Ws { .. }) {
        return;
    }
    c.pushes.offer(s, a, n);
}

/// Writes connection `c`'s waiting pushes, if its socket has room and no
/// answer is queued ahead of them.
pub fn push_out(c: &mut Conn, n: &mut PushCounts) -> Outcome {
    let Phase::Ws { ctx } = &mut c.phase else {
        return Outcome::Keep;
    };
    match write_pushes(&mut c.io, ctx, &c.queue, &mut c.pushes, n, &c.peer) {
        Ok(()) => Outcome::Keep,
        Err(()) => Outcome::Drop,
    }
}

/// Pushed frames go out only behind every answer already asked for (so a
/// `subscribed` answer precedes its stream's first frame), and only to a
/// socket that took everything before: else they wait, one per stream.
fn write_pushes(
    io: &mut Transport,
    ctx: &mut WebSocketContext,
    queue: &VecDeque<Slot>,
    p: &mut Pushes,
    n: &mut PushCounts,
    peer: &str,
) -> Result<(), ()> {
    if !p.bounded && p.sub != Subscription::default() {
        bound_sndbuf(&io.sock);
        p.bounded = true;
    }
    if p.blocked || !queue.is_empty() {
        return Ok(());
    }
    let mut wrote = false;
    for a in p.take_all(n).into_iter().flatten() {
        write_frame(io, ctx, a, peer)?;
        wrote = true;
    }
    if wrote {
        match ctx.flush(io) {
            Ok(()) => {}
            Err(WsError::Io(e)) if would_block(&e) => p.blocked = true,
            Err(e) => {
                log::debug!("{peer}: {e}");
                return Err(());
            }
        }
    }
    Ok(())
}

impl Conn {
    /// Sends a close frame and moves an open WebSocket to Closing (where
    /// its last bytes are flushed and the peer's are drained). False, and
    /// nothing done, in any other phase.
    pub fn close_ws(&mut self, frame: tungstenite::protocol::CloseFrame) -> bool {
        if !matches!(self.phase, Phase::Ws { .. }) {
            return false;
        }
        let old = std::mem::replace(
            &mut self.phase,
            Phase::Closing {
                ctx: None,
                shut: false,
            },
        );
        if let Phase::Ws { mut ctx } = old {
            let _ = ctx.close(&mut self.io, Some(frame));
            self.phase = Phase::Closing {
                ctx: Some(ctx),
                shut: false,
            };
        }
        true
    }
}

/// Advances one connection through its phases.
pub fn step(c: &mut Conn, x: &mut Ctx) -> Outcome {
    loop {
        match &mut c.phase {
            Phase::Http { buf } => {
                let mut chunk = [0u8; 2048];
                let routed = loop {
                    if let Some(r) = http::route(buf, x.token) {
                        break r;
                    }
                    match c.io.read(&mut chunk) {
                        Ok(0) => return Outcome::Drop,
                        Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        Err(e) if would_block(&e) => return Outcome::Keep,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            log::debug!("{}: dropped before the request head: {e}", c.peer);
                            return Outcome::Drop;
                        }
                    }
                };
                let (consumed, route) = routed;
                let (response, status) = match route {
                    http::Route::Upgrade { response } => {
                        let rest = buf.get(consumed..).unwrap_or_default().to_vec();
                        c.io.queue_raw(response);
                        let ctx =
                            WebSocketContext::from_partially_read(rest, Role::Server, Some(*x.cfg));
                        c.phase = Phase::Ws { ctx: Box::new(ctx) };
                        c.deadline = None;
                        log::debug!("{}: upgraded", c.peer);
                        continue;
                    }
                    http::Route::Respond { response, status } => (response, status),
                    http::Route::Metrics { head_only, gzip } => {
                        match dispatch::scrape(x, head_only, gzip) {
                            Some(r) => r,
                            // a disks round is out: driven again when it ends
                            None => return Outcome::Keep,
                        }
                    }
                };
                log::debug!("{}: HTTP {status}", c.peer);
                c.io.queue_raw(response);
                c.phase = Phase::Closing {
                    ctx: None,
                    shut: false,
                };
                c.deadline = None;
            }
            Phase::Ws { ctx } => {
                match ws_step(&mut c.io, ctx, &mut c.queue, &mut c.pushes, x, &c.peer) {
                    Ok(o) => return o,
                    Err(None) => return Outcome::Drop,
                    Err(Some(frame)) => {
                        c.close_ws(frame);
                    }
                }
            }
            Phase::Closing { ctx, shut } => {
                // 1. get our last bytes out
                let flushed = match ctx {
                    Some(ctx) => match ctx.flush(&mut c.io) {
                        Ok(()) => true,
                        Err(WsError::Io(e)) if would_block(&e) => false,
                        Err(_) => true, // closed, or nothing more to send
                    },
                    None => match c.io.flush_raw() {
                        Ok(()) => true,
                        Err(e) if would_block(&e) => false,
                        Err(_) => return Outcome::Drop,
                    },
                };
                if !flushed {
                    return Outcome::Keep;
                }
                if !*shut {
                    c.io.close_notify();
                    let _ = c.io.flush_raw();
                    let _ = c.io.sock.shutdown(Shutdown::Write);
                    *shut = true;
                }
                // 2. discard input until the peer closes
                let mut sink = [0u8; 4096];
                loop {
                    match c.io.sock.read(&mut sink) {
                        Ok(0) => return Outcome::Drop,
                        Ok(_) => {}
                        Err(e) if would_block(&e) => return Outcome::Keep,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Outcome::Drop,
                    }
                }
            }
        }
    }
}

/// Reads every available frame, answers each request in order, flushes.
/// `Err(Some(frame))`: close with that frame; `Err(None)`: drop now.
fn ws_step(
    io: &mut Transport,
    ctx: &mut WebSocketContext,
    queue: &mut VecDeque<Slot>,
    pushes: &mut Pushes,
    x: &mut Ctx,
    peer: &str,
) -> Result<Outcome, Option<CloseFrame>> {
    loop {
        if queue.len() >= MAX_PENDING {
            // Answers wait behind a journal read: stop reading until they go
            // out (the delivery drives this connection again).
            break;
        }
        match ctx.read(io) {
            Ok(Message::Text(t)) => queue.push_back(dispatch::answer(t.as_str(), pushes, x)),
            Ok(Message::Binary(b)) => {
                let a = Answer::text(protocol::error_json(
                    "binary frames are not requests: send a text frame such as {\"type\":\"metrics\"}",
                    &format!("<binary frame, {} bytes>", b.len()),
                    None,
                ));
                queue.push_back(Slot::Ready(a));
            }
            Ok(_) => {} // ping (pong queued by tungstenite), pong, close (reply queued)
            Err(WsError::Io(e)) if would_block(&e) => break,
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            // A text message (whole or fragmented) or a Close reason that is
            // not UTF-8 fails the connection with 1007 (RFC 6455 §8.1, §7.4.1).
            Err(WsError::Utf8(e)) => {
                log::debug!("{peer}: invalid UTF-8 ({e}); closing with 1007");
                return Err(Some(CloseFrame {
                    code: CloseCode::Invalid,
                    reason: "invalid UTF-8".into(),
                }));
            }
            Err(WsError::Capacity(e)) => {
                log::debug!("{peer}: {e}; closing with 1009");
                let reason = match e {
                    CapacityError::MessageTooLong { max_size, .. } => {
                        format!("message over {max_size} bytes")
                    }
                    _ => format!("frame over {} bytes", protocol::MAX_FRAME),
                };
                return Err(Some(CloseFrame {
                    code: CloseCode::Size,
                    reason: reason.into(),
                }));
            }
            Err(WsError::Protocol(e)) => {
                log::debug!("{peer}: protocol error: {e}");
                return Err(Some(CloseFrame {
                    code: CloseCode::Protocol,
                    reason: "protocol error".into(),
                }));
            }
            Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => return Err(None),
            Err(e) => {
                log::debug!("{peer}: {e}");
                return Err(None);
            }
        }
        if pump(io, ctx, queue, peer).is_err() {
            return Err(None);
        }
    }
    if pump(io, ctx, queue, peer).is_err() {
        return Err(None);
    }
    match ctx.flush(io) {
        Ok(()) => {
            pushes.blocked = false;
            write_pushes(io, ctx, queue, pushes, &mut x.streams.counts, peer).map_err(|()| None)?;
            Ok(Outcome::Keep)
        }
        Err(WsError::Io(e)) if would_block(&e) => {
            pushes.blocked = true;
            Ok(Outcome::Keep)
        }
        Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => Err(None),
        Err(e) => {
            log::debug!("{peer}: {e}");
            Err(None)
        }
    }
}

/// Hands the ready answers at the head of the queue to tungstenite.
fn pump(
    io: &mut Transport,
    ctx: &mut WebSocketContext,
    queue: &mut VecDeque<Slot>,
    peer: &str,
) -> Result<(), ()> {
    while let Some(Slot::Ready(_)) = queue.front() {
        let Some(Slot::Ready(a)) = queue.pop_front() else {
            break;
        };
        write_frame(io, ctx, a, peer)?;
    }
    Ok(())
}

/// Hands one frame to tungstenite (buffered there if the socket is full).
fn write_frame(
    io: &mut Transport,
    ctx: &mut WebSocketContext,
    a: Answer,
    peer: &str,
) -> Result<(), ()> {
    let msg = match a {
        Answer::Text(t) => Message::Text(t),
        Answer::Binary(b) => Message::Binary(b),
    };
    match ctx.write(io, msg) {
        Ok(()) => Ok(()),
        // The frame is buffered; it goes out when the socket drains.
        Err(WsError::Io(e)) if would_block(&e) => Ok(()),
        Err(WsError::WriteBufferFull(_)) => {
            log::debug!("{peer}: not reading its answers; output over the limit, dropping");
            Err(())
        }
        Err(e) => {
            log::debug!("{peer}: {e}");
            Err(())
        }
    }
}
