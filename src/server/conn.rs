//! One connection's state machine: HTTP head → WebSocket → closing, its
//! socket and its queue of answers, kept in request order.

use super::dispatch::{self, Ctx, Queued};
use super::frames;
use super::http;
use super::pushes::Pushes;
use super::transport::{would_block, Transport};
use crate::answers::prom::PushCounts;
use crate::protocol::{self, Answer, Stream, Subscription};
use bytes::Bytes;
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

/// Messages (requests and control frames) one connection's turn reads
/// before the others get theirs: a client that floods requests is served
/// in turns of this many, so it cannot starve the rest. Small enough that
/// a turn is well under a millisecond of cached answers, large enough that
/// a client's burst of a few requests goes in one turn.
pub const MAX_TURN_MESSAGES: usize = 32;

/// Reads (of 4 KiB) one closing connection's turn discards (see above).
const MAX_TURN_DISCARDS: usize = 32;

/// TCP keepalive on accepted sockets: a peer that vanished (behind NAT, a
/// board pulled off the network) is found after idle + count × interval
/// = 60 + 6 × 10 s = 2 minutes, and its slot freed.
const KEEPALIVE_IDLE_S: libc::c_int = 60;
const KEEPALIVE_INTERVAL_S: libc::c_int = 10;
const KEEPALIVE_COUNT: libc::c_int = 6;

/// A subscriber's socket send buffer (the kernel doubles it). Without a
/// bound the kernel's autotuning lets a viewer that stops reading hold
/// megabytes of stale frames; with it, the socket fills after a few frames
/// and newer frames replace the one waiting (`Pushes`), so what a slow
/// viewer gets next is fresh. A larger answer still goes out whole, over
/// several writable events.
const PUSH_SNDBUF: libc::c_int = 16 * 1024;

/// Bounds the socket's send buffer (see `PUSH_SNDBUF`); best effort.
fn bound_sndbuf(sock: &mio::net::TcpStream) {
    set_opt(sock, libc::SOL_SOCKET, libc::SO_SNDBUF, PUSH_SNDBUF);
}

/// One `int` socket option; best effort (logged at debug).
fn set_opt(sock: &mio::net::TcpStream, level: libc::c_int, name: libc::c_int, v: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        log::debug!("setsockopt {level}/{name}: {}", io::Error::last_os_error());
    }
}

/// Turns TCP keepalive on for an accepted socket (see `KEEPALIVE_IDLE_S`).
pub fn keepalive(sock: &mio::net::TcpStream) {
    set_opt(sock, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set_opt(
        sock,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPIDLE,
        KEEPALIVE_IDLE_S,
    );
    set_opt(
        sock,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        KEEPALIVE_INTERVAL_S,
    );
    set_opt(sock, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, KEEPALIVE_COUNT);
}

/// What the loop does with a connection after its step.
pub enum Outcome {
    Keep,
    /// Its turn is over with input left: drive it again after the others.
    Again,
    Drop,
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
    pub out: Out,
    pub peer: String,
    pub pushes: Pushes,
    /// Bytes this connection held when last accounted (`Server::settle`).
    pub held: usize,
    /// On the loop's list of connections with input left after their turn.
    pub ready: bool,
}

impl Conn {
    /// A connection just accepted, reading its request head by `deadline`.
    pub fn new(io: Transport, serial: u64, deadline: Instant, peer: String) -> Conn {
        Conn {
            io,
            phase: Phase::Http {
                buf: Vec::with_capacity(1024),
            },
            serial,
            deadline: Some(deadline),
            timer_at: Some(deadline),
            out: Out::default(),
            peer,
            pushes: Pushes::default(),
            held: 0,
            ready: false,
        }
    }

    /// Every byte held for this client: what waits, and the frame in flight.
    pub fn holding(&self) -> usize {
        self.out
            .queued
            .saturating_add(self.out.in_flight)
            .saturating_add(self.pushes.bytes())
    }
}

/// A connection's answers, in request order, and what they hold. A frame
/// is written only once the socket has taken the one before,
/// so what waits is here, counted, as reference-counted buffers (a cached
/// answer waiting for many clients is one buffer).
#[derive(Default)]
pub struct Out {
    pub queue: VecDeque<Queued>,
    /// Bytes of the ready answers in `queue`.
    pub queued: usize,
    /// Bytes of the frame in flight that the socket has not taken yet
    /// (queued on the transport, or a pong or close in tungstenite; 0: it
    /// took everything). Not held against the client's cap.
    pub in_flight: usize,
    /// The peer's close frame was read (tungstenite queued its reply): no
    /// pushed frame may follow it. Kept here so a push need not look into
    /// tungstenite's state.
    pub peer_closed: bool,
}

impl Out {
    pub fn push(&mut self, s: Queued) {
        if let Queued::Ready(a) = &s {
            self.queued = self.queued.saturating_add(a.size());
        }
        self.queue.push_back(s);
    }

    /// Puts the disks round's answer in every slot waiting for it.
    pub fn fill_disks(&mut self, a: &Answer) {
        for slot in self.queue.iter_mut().filter(|s| matches!(s, Queued::Disks)) {
            *slot = Queued::Ready(a.clone());
            self.queued = self.queued.saturating_add(a.size());
        }
    }

    /// Puts journal job `job`'s answer in the slot waiting for it.
    pub fn fill(&mut self, job: u64, a: &Answer) {
        if let Some(slot) = self
            .queue
            .iter_mut()
            .find(|s| matches!(s, Queued::Waiting(j) if *j == job))
        {
            *slot = Queued::Ready(a.clone());
            self.queued = self.queued.saturating_add(a.size());
        }
    }

    /// The ready answer at the head of the queue, taken out.
    fn pop_ready(&mut self) -> Option<Answer> {
        if !matches!(self.queue.front(), Some(Queued::Ready(_))) {
            return None;
        }
        let Some(Queued::Ready(a)) = self.queue.pop_front() else {
            return None;
        };
        self.queued = self.queued.saturating_sub(a.size());
        Some(a)
    }
}

/// Hands stream `s`'s frame (`framed`) to connection `c`, replacing one
/// still unsent.
pub fn offer(c: &mut Conn, s: Stream, a: Bytes, n: &mut PushCounts) {
    if !matches!(c.phase, Phase::Ws { .. }) {
        return;
    }
    c.pushes.offer(s, a, n);
}

/// Writes connection `c`'s waiting pushes, if its socket has room and no
/// answer is queued ahead of them; drops it when what waits is over `cap`.
pub fn push_out(c: &mut Conn, n: &mut PushCounts, cap: usize) -> Outcome {
    let Phase::Ws { ctx } = &mut c.phase else {
        return Outcome::Keep;
    };
    let p = &mut c.pushes;
    if !p.bounded && p.sub != Subscription::default() {
        bound_sndbuf(&c.io.sock);
        p.bounded = true;
    }
    if pump(&mut c.io, ctx, &mut c.out, p, n, &c.peer).is_err()
        || over_cap(&c.out, p, cap, n, &c.peer)
    {
        return Outcome::Drop;
    }
    Outcome::Keep
}

/// True (logged, counted) when what waits for a client is over its cap.
fn over_cap(out: &Out, p: &Pushes, cap: usize, n: &mut PushCounts, peer: &str) -> bool {
    let waiting = out.queued.saturating_add(p.bytes());
    if waiting <= cap {
        return false;
    }
    log::debug!(
        "{peer}: dropped: not reading its answers ({waiting} bytes waiting, over the {cap}-byte cap)"
    );
    n.dropped_queue += 1;
    true
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
    c.io.new_turn();
    loop {
        match &mut c.phase {
            Phase::Http { buf } => {
                let mut chunk = [0u8; 2048];
                let routed = loop {
                    if let Some(r) = dispatch::route(buf, &c.peer, x) {
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
                match ws_step(&mut c.io, ctx, &mut c.out, &mut c.pushes, x, &c.peer) {
                    Ok(o) => return o,
                    Err(None) => return Outcome::Drop,
                    Err(Some(frame)) => {
                        c.close_ws(frame);
                    }
                }
            }
            Phase::Closing { ctx, shut } => return closing_step(&mut c.io, ctx, shut),
        }
    }
}

/// A closing connection's turn: its last bytes out, then its input
/// discarded until the peer closes.
fn closing_step(
    io: &mut Transport,
    ctx: &mut Option<Box<WebSocketContext>>,
    shut: &mut bool,
) -> Outcome {
    // 1. get our last bytes out
    let flushed = match ctx {
        Some(ctx) => match ctx.flush(io) {
            Ok(()) => true,
            Err(WsError::Io(e)) if would_block(&e) => false,
            Err(_) => true, // closed, or nothing more to send
        },
        None => match io.flush_raw() {
            Ok(()) => true,
            Err(e) if would_block(&e) => false,
            Err(_) => return Outcome::Drop,
        },
    };
    if !flushed {
        return Outcome::Keep;
    }
    if !*shut {
        io.close_notify();
        let _ = io.flush_raw();
        let _ = io.sock.shutdown(Shutdown::Write);
        *shut = true;
    }
    // 2. discard input until the peer closes (in turns)
    let mut sink = [0u8; 4096];
    for _ in 0..MAX_TURN_DISCARDS {
        match io.sock.read(&mut sink) {
            Ok(0) => return Outcome::Drop,
            Ok(_) => {}
            Err(e) if would_block(&e) => return Outcome::Keep,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Outcome::Drop,
        }
    }
    Outcome::Again
}

/// Reads the frames available (at most `MAX_TURN_MESSAGES`), answers each
/// request in order, writes what the socket takes.
/// `Err(Some(frame))`: close with that frame; `Err(None)`: drop now.
fn ws_step(
    io: &mut Transport,
    ctx: &mut WebSocketContext,
    out: &mut Out,
    pushes: &mut Pushes,
    x: &mut Ctx,
    peer: &str,
) -> Result<Outcome, Option<CloseFrame>> {
    // What the socket takes first: each check below follows a pump, so a
    // socket found full has its writable event to come.
    let n = &mut x.streams.counts;
    if pump(io, ctx, out, pushes, n, peer).is_err() || over_cap(out, pushes, x.cap, n, peer) {
        return Err(None);
    }
    let mut turn = 0;
    let more = loop {
        if out.queue.len() >= MAX_PENDING {
            // Answers wait behind a journal read: stop reading until they go
            // out (the delivery drives this connection again).
            break false;
        }
        if turn >= MAX_TURN_MESSAGES {
            break true;
        }
        match ctx.read(io) {
            Ok(Message::Text(t)) => out.push(dispatch::answer(t.as_str(), pushes, x)),
            Ok(Message::Binary(b)) => {
                let a = Answer::text(protocol::error_json(
                    "binary frames are not requests: send a text frame such as {\"type\":\"metrics\"}",
                    &format!("<binary frame, {} bytes>", b.len()),
                    None,
                ));
                out.push(Queued::Ready(a));
            }
            // tungstenite queued its reply: no data frame may follow
            Ok(Message::Close(_)) => out.peer_closed = true,
            Ok(_) => {} // ping (pong queued by tungstenite), pong
            Err(WsError::Io(e)) if would_block(&e) => break false,
            Err(e) => read_error(e, peer)?,
        }
        turn += 1;
        let n = &mut x.streams.counts;
        if pump(io, ctx, out, pushes, n, peer).is_err() || over_cap(out, pushes, x.cap, n, peer) {
            return Err(None);
        }
    };
    if out.in_flight == 0 {
        // a pong or close reply tungstenite queued while no frame was in flight
        match ctx.flush(io) {
            Ok(()) => {}
            Err(WsError::Io(e)) if would_block(&e) => out.in_flight = 1,
            Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => return Err(None),
            Err(e) => {
                log::debug!("{peer}: {e}");
                return Err(None);
            }
        }
    }
    Ok(if more { Outcome::Again } else { Outcome::Keep })
}

/// What a read error does to the connection: `Ok`: read again.
fn read_error(e: WsError, peer: &str) -> Result<(), Option<CloseFrame>> {
    match e {
        WsError::Io(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        // A text message (whole or fragmented) or a Close reason that is
        // not UTF-8 fails the connection with 1007 (RFC 6455 §8.1, §7.4.1).
        WsError::Utf8(e) => {
            log::debug!("{peer}: invalid UTF-8 ({e}); closing with 1007");
            Err(Some(CloseFrame {
                code: CloseCode::Invalid,
                reason: "invalid UTF-8".into(),
            }))
        }
        WsError::Capacity(e) => {
            log::debug!("{peer}: {e}; closing with 1009");
            let reason = match e {
                CapacityError::MessageTooLong { max_size, .. } => {
                    format!("message over {max_size} bytes")
                }
                _ => format!("frame over {} bytes", protocol::MAX_FRAME),
            };
            Err(Some(CloseFrame {
                code: CloseCode::Size,
                reason: reason.into(),
            }))
        }
        WsError::Protocol(e) => {
            log::debug!("{peer}: protocol error: {e}");
            Err(Some(CloseFrame {
                code: CloseCode::Protocol,
                reason: "protocol error".into(),
            }))
        }
        WsError::ConnectionClosed | WsError::AlreadyClosed => Err(None),
        e => {
            log::debug!("{peer}: {e}");
            Err(None)
        }
    }
}

/// Writes frames one at a time, each once the socket has
/// taken all of the one before: the ready answers at the head of the queue
/// (a journal wait holds the ones behind it), then, when no answer is
/// queued, the waiting pushes (so a `subscribed` answer precedes its
/// stream's first frame). What the socket does not take waits in `Out`.
fn pump(
    io: &mut Transport,
    ctx: &mut WebSocketContext,
    out: &mut Out,
    pushes: &mut Pushes,
    n: &mut PushCounts,
    peer: &str,
) -> Result<(), ()> {
    if out.in_flight > 0 {
        match ctx.flush(io) {
            Ok(()) => out.in_flight = 0,
            Err(WsError::Io(e)) if would_block(&e) => return Ok(()),
            Err(e) => {
                log::debug!("{peer}: {e}");
                return Err(());
            }
        }
    }
    while out.in_flight == 0 {
        out.in_flight = match out.queue.front() {
            Some(Queued::Ready(_)) => match out.pop_ready() {
                Some(a) => frames::write_frame(io, ctx, a, peer)?,
                None => break,
            },
            Some(Queued::Waiting(_) | Queued::Disks) => break,
            // A push touches neither tungstenite nor its buffers: with a
            // thousand subscribers, each context is a cache miss.
            None => match pushes.take_next(n) {
                Some(f) if !out.peer_closed => frames::write_raw(io, &f, &[], peer)?,
                Some(_) | None => break,
            },
        };
    }
    Ok(())
}
