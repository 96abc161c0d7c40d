//! The event loop: one thread, one `mio::Poll`, the listener, every
//! connection in a slab, deadlines in a heap, signals through a pipe.

mod alarm;
pub mod conn;
pub mod dispatch;
mod frames;
pub mod guard;
pub mod http;
pub mod jobs;
#[cfg(feature = "remote-write")]
mod outbound;
pub mod pushes;
pub mod streams;
mod ticks;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;
mod waits;

use crate::answers::{history, Answers};
use crate::protocol::{self, Stream};
use conn::{Conn, Outcome, Phase};
use dispatch::{Ctx, DiskWaits};
use jobs::{Jobs, JOB_BASE};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use streams::Streams;
use transport::{would_block, Transport};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// The mount prober's waker: a disks round ended (`collect::mounts`).
/// The loop's one `mio::Waker` (mio allows one a `Poll`): a disks round
/// that ended, or a remote-write name lookup that was answered.
pub const WAKE: Token = Token(usize::MAX - 3);
/// The loop's alarm clock (`alarm`): the earliest deadline came.
const ALARM: Token = Token(usize::MAX - 5);

/// Limits, with the reason for each value.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections; past it new ones get 503. Each costs ~10 KiB.
    pub max_connections: usize,
    /// What may wait for one client (answers not yet handed to its socket,
    /// those behind a journal read too, and pushed frames); past it, it is
    /// dropped. The frame in flight is not counted: a client that reads
    /// gets any answer whole, one that does not holds at most this plus
    /// that frame. Ten process frames fit easily.
    pub max_queued_output: usize,
    /// What every client together may hold (waiting and in flight); past
    /// it, the client holding the most is dropped, until under. Bounds a
    /// crowd of slow clients each under its own cap.
    pub max_queued_total: usize,
    /// Time to send a complete request head (slowloris).
    pub handshake_timeout: Duration,
    /// How long a closing connection may linger for the peer to close.
    pub linger: Duration,
    /// A WebSocket client silent this long is closed (1001); off by
    /// default: the TUI keeps long sessions and asks every 0.5-5 s anyway.
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_queued_output: 4 << 20,
            max_queued_total: 32 << 20,
            handshake_timeout: Duration::from_secs(5),
            linger: Duration::from_secs(2),
            idle_timeout: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Conn(usize, u64),
    Journal(usize, u64),
    AcceptRetry,
    /// A pushed stream's group tick (stream, period in ms, group serial:
    /// a removed group's timer is stale). Ordered before `History`: at the
    /// same instant the push collects, the ring reuses it.
    Push(Stream, u32, u64),
    History,
    /// The remote-write pusher's next step (a push, a retry, a deadline).
    #[cfg(feature = "remote-write")]
    Remote,
    /// The disks round's deadline: its waiters are answered with what came back.
    Disks,
}

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    alarm: alarm::Alarm,
    answers: Answers,
    token: Option<String>,
    limits: Limits,
    next_serial: u64,
    ws_config: WebSocketConfig,
    signals: signal_hook_mio::v1_0::Signals,
    shutting_down: Option<Instant>,
    jobs: Jobs,
    streams: Streams,
    /// Every byte held for all clients (the sum of their `Conn::held`).
    held: usize,
    /// Timers in the heap known to be stale (a closed connection's, a
    /// removed group's); the heap is rebuilt when they are half of it.
    stale: usize,
    /// Connections whose turn ended with input left, driven after the
    /// others (`conn::MAX_TURN_MESSAGES`).
    ready: VecDeque<(usize, u64)>,
    guard: guard::Guard,
    disk_waits: DiskWaits,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    #[cfg(feature = "remote-write")]
    remote: Option<crate::remote::Pusher>,
    #[cfg(feature = "remote-write")]
    alertmanagers: Option<crate::remote::Alertmanagers>,
}

/// How the server is set up.
pub struct Options {
    /// `?token=` required on /ws when set.
    pub token: Option<String>,
    pub limits: Limits,
    /// The journal reader run for `journal_entries`.
    pub journal_cmd: std::ffi::OsString,
    /// The agent's own names and the allowed origins (Origin and Host checks).
    pub names: guard::Names,
    /// Serve wss:// with this config.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Push to a remote-write endpoint.
    #[cfg(feature = "remote-write")]
    pub remote: Option<crate::remote::Setup>,
    /// Deliver alerts to Alertmanagers.
    #[cfg(feature = "remote-write")]
    pub alertmanagers: Option<crate::remote::alertmanager::Setup>,
}

/// The loop's `Poll` with the listener, the signals (SIGCHLD: a journal
/// child ended, reaped at once by `Jobs::reap`) and its one `Waker`.
#[allow(clippy::type_complexity)]
fn registered(
    listener: std::net::TcpListener,
) -> io::Result<(
    Poll,
    TcpListener,
    signal_hook_mio::v1_0::Signals,
    std::sync::Arc<mio::Waker>,
)> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut signals = signal_hook_mio::v1_0::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGCHLD,
    ])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let waker = std::sync::Arc::new(mio::Waker::new(poll.registry(), WAKE)?);
    Ok((poll, listener, signals, waker))
}

impl Server {
    pub fn new(
        listener: std::net::TcpListener,
        mut answers: Answers,
        opts: Options,
    ) -> io::Result<Self> {
        let (poll, listener, signals, waker) = registered(listener)?;
        // statvfs runs off the loop; the end of each round wakes it here
        let disks_waker = waker.clone();
        answers
            .collectors()
            .set_disks_notify(std::sync::Arc::new(move || {
                let _ = disks_waker.wake();
            }));
        let root = answers.collectors().settings().root.clone();
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_frame_size(Some(protocol::MAX_FRAME))
            .max_message_size(Some(protocol::MAX_FRAME));
        // The grid every pushed stream and the history ring tick on.
        let epoch = Instant::now();
        let mut timers = BinaryHeap::new();
        if answers.history_on() {
            // the first tick sizes the ring as soon as the loop runs
            timers.push(Reverse((epoch, Timer::History)));
        }
        #[cfg(feature = "remote-write")]
        let remote = match opts.remote {
            Some(setup) => {
                let p = crate::remote::Pusher::new(setup, waker.clone(), epoch)?;
                timers.push(Reverse((epoch, Timer::Remote)));
                Some(p)
            }
            None => None,
        };
        #[cfg(feature = "remote-write")]
        let alertmanagers = outbound::setup(opts.alertmanagers, &waker)?;
        let alarm = alarm::Alarm::new(poll.registry(), ALARM);
        Ok(Server {
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            timers,
            alarm,
            answers,
            token: opts.token,
            limits: opts.limits,
            next_serial: 0,
            ws_config,
            signals,
            shutting_down: None,
            jobs: Jobs::new(opts.journal_cmd, root),
            streams: Streams::new(epoch),
            held: 0,
            stale: 0,
            ready: VecDeque::new(),
            guard: guard::Guard::new(opts.names),
            disk_waits: DiskWaits::default(),
            #[cfg(feature = "tls")]
            tls: opts.tls,
            #[cfg(feature = "remote-write")]
            remote,
            #[cfg(feature = "remote-write")]
            alertmanagers,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs until SIGTERM/SIGINT, then closes every connection and returns.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            self.answers.end_turn();
            self.fire_timers(now);
            if let Some(deadline) = self.shutting_down {
                if self.conns.is_empty() || now >= deadline {
                    log::info!("shut down ({} connections still open)", self.conns.len());
                    return Ok(());
                }
            }
            // Connections with input left: others' events, then their turn.
            // Otherwise sleep until an event, the alarm set for the earliest
            // deadline among them.
            let next = self.timers.peek().map(|Reverse((t, _))| *t);
            let next = match (next, self.shutting_down) {
                (Some(t), Some(d)) => Some(t.min(d)),
                (t, d) => t.or(d),
            };
            let timeout = if self.ready.is_empty() {
                self.alarm.wait_for(next, now)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    ALARM => self.alarm.rang(),
                    WAKE => {
                        // whoever woke it: each looks at its own state
                        self.disks_done(Instant::now());
                        #[cfg(feature = "remote-write")]
                        self.remote_step(Some(WAKE));
                        #[cfg(feature = "remote-write")]
                        self.alerts_event(WAKE);
                    }
                    SIGNALS => {
                        let mut stop = false;
                        for sig in self.signals.pending() {
                            stop |= sig != signal_hook::consts::SIGCHLD;
                        }
                        self.jobs.reap();
                        if stop {
                            self.begin_shutdown();
                        }
                    }
                    #[cfg(feature = "remote-write")]
                    t @ crate::remote::SOCKET => self.remote_step(Some(t)),
                    #[cfg(feature = "remote-write")]
                    t if self.alerts_owns(t) => self.alerts_event(t),
                    Token(k) if k >= JOB_BASE => {
                        if let Some((job, answer)) =
                            self.jobs.on_readable(self.poll.registry(), k - JOB_BASE)
                        {
                            self.deliver(job, &answer);
                        }
                    }
                    Token(k) => self.drive(k),
                }
            }
            for _ in 0..self.ready.len() {
                let Some((k, serial)) = self.ready.pop_front() else {
                    break;
                };
                if let Some(c) = self.conns.get_mut(k).filter(|c| c.serial == serial) {
                    c.ready = false;
                    self.drive(k);
                }
            }
        }
    }

    fn add_timer(&mut self, at: Instant, t: Timer) {
        self.timers.push(Reverse((at, t)));
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, t))) = self.timers.pop() else {
                break;
            };
            match t {
                Timer::AcceptRetry => self.accept(),
                Timer::Disks => self.disks_done(now),
                #[cfg(feature = "remote-write")]
                Timer::Remote => self.remote_step(None),
                Timer::Push(s, ms, serial) => self.push_tick(s, ms, serial, now),
                Timer::History => {
                    self.answers.history_tick(now);
                    #[cfg(feature = "remote-write")]
                    self.alerts_deliver(now);
                    let next = crate::collect::host::next_tick(at, history::INTERVAL, now);
                    self.add_timer(next, Timer::History);
                }
                Timer::Journal(key, serial) => {
                    if let Some((job, answer)) =
                        self.jobs.on_deadline(self.poll.registry(), key, serial)
                    {
                        self.deliver(job, &answer);
                    }
                }
                Timer::Conn(k, serial) => {
                    let Some(c) = self.conns.get_mut(k).filter(|c| c.serial == serial) else {
                        self.stale = self.stale.saturating_sub(1);
                        continue;
                    };
                    c.timer_at = None;
                    match c.deadline {
                        Some(d) if d <= now && matches!(c.phase, Phase::Ws { .. }) => {
                            log::debug!("{}: idle, closing", c.peer);
                            c.close_ws(CloseFrame {
                                code: CloseCode::Away,
                                reason: "idle".into(),
                            });
                            c.deadline = None;
                            self.drive(k);
                        }
                        Some(d) if d <= now => {
                            log::debug!("{}: deadline passed, dropping", c.peer);
                            self.close(k);
                        }
                        // moved later since (an idle timeout after activity)
                        Some(_) => self.arm(k),
                        None => {}
                    }
                }
            }
        }
    }

    /// Makes sure connection `k` has a timer at (or before) its deadline;
    /// one timer per connection at a time.
    fn arm(&mut self, k: usize) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let Some(d) = c.deadline else { return };
        if c.timer_at.is_some_and(|t| t <= d) {
            return;
        }
        c.timer_at = Some(d);
        let serial = c.serial;
        self.add_timer(d, Timer::Conn(k, serial));
    }

    fn accept(&mut self) {
        loop {
            let res = match &self.listener {
                Some(l) => l.accept(),
                None => return,
            };
            match res {
                Ok((mut sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    conn::keepalive(&sock);
                    if self.conns.len() >= self.limits.max_connections {
                        log::debug!("{peer}: over max connections, answering 503");
                        if let http::Route::Respond { response, .. } = http::respond(
                            503,
                            "Service Unavailable",
                            "too many connections",
                            false,
                            "Retry-After: 1\r\n",
                        ) {
                            let _ = std::io::Write::write(&mut sock, &response);
                        }
                        continue;
                    }
                    #[cfg(feature = "tls")]
                    let io = match &self.tls {
                        Some(cfg) => match Transport::new_tls(sock, cfg.clone()) {
                            Ok(t) => t,
                            Err(e) => {
                                log::warn!("TLS: {e}");
                                continue;
                            }
                        },
                        None => Transport::new(sock),
                    };
                    #[cfg(not(feature = "tls"))]
                    let io = Transport::new(sock);
                    let mut io = io;
                    let entry = self.conns.vacant_entry();
                    let k = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut io.sock,
                        Token(k),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register connection: {e}");
                        continue;
                    }
                    self.next_serial += 1;
                    let serial = self.next_serial;
                    let deadline = Instant::now() + self.limits.handshake_timeout;
                    entry.insert(Conn::new(io, serial, deadline, peer.to_string()));
                    self.add_timer(deadline, Timer::Conn(k, serial));
                    log::debug!("{peer}: connected");
                }
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    // Out of file descriptors: keep serving what we have and
                    // try again shortly (the listener is edge-triggered).
                    log::warn!("accept: {e}; retrying in 100 ms");
                    self.add_timer(
                        Instant::now() + Duration::from_millis(100),
                        Timer::AcceptRetry,
                    );
                    return;
                }
                Err(e) => {
                    log::debug!("accept: {e}");
                    return;
                }
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down.is_some() {
            return;
        }
        log::info!("signal received: closing {} connections", self.conns.len());
        self.shutting_down = Some(Instant::now() + Duration::from_secs(1));
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.jobs.kill_all(self.poll.registry());
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            let Some(c) = self.conns.get_mut(k) else {
                continue;
            };
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "agent shutting down".into(),
            };
            if c.close_ws(frame) {
                self.drive(k);
            } else if matches!(c.phase, Phase::Http { .. }) {
                self.close(k);
            }
        }
    }

    fn close(&mut self, k: usize) {
        if self.conns.contains(k) {
            let mut c = self.conns.remove(k);
            let _ = self.poll.registry().deregister(&mut c.io.sock);
            self.streams.forget((k, c.serial), c.pushes.sub);
            let n = &mut self.streams.counts;
            n.pending = n.pending.saturating_sub(c.pushes.pending());
            self.held = self.held.saturating_sub(c.held);
            // Its timer is stale now (a handshake deadline outlives the
            // upgrade in the heap); `compact` takes it out with the rest.
            if c.timer_at.is_some() {
                self.stale += 1;
            }
            self.compact();
            log::debug!("{}: closed", c.peer);
        }
    }

    /// Runs connection `k` as far as it can go without blocking.
    fn drive(&mut self, k: usize) {
        let mut new_deadlines = Vec::new();
        let outcome = match self.conns.get_mut(k) {
            Some(c) => {
                let mut ctx = Ctx {
                    answers: &mut self.answers,
                    jobs: &mut self.jobs,
                    registry: self.poll.registry(),
                    token: self.token.as_deref(),
                    cfg: &self.ws_config,
                    me: (k, c.serial),
                    new_deadlines: &mut new_deadlines,
                    streams: &mut self.streams,
                    cap: self.limits.max_queued_output,
                    guard: &mut self.guard,
                    #[cfg(feature = "remote-write")]
                    remote: self.remote.as_ref().map(crate::remote::Pusher::stats),
                    #[cfg(feature = "remote-write")]
                    alertmanagers: self.alertmanagers.as_ref(),
                    disks: &mut self.disk_waits,
                };
                conn::step(c, &mut ctx)
            }
            None => return,
        };
        for (at, key, serial) in new_deadlines {
            self.add_timer(at, Timer::Journal(key, serial));
        }
        if let Some(at) = self.disk_waits.new_deadline.take() {
            self.add_timer(at, Timer::Disks);
        }
        for (at, s, ms, serial) in self.streams.take_fresh() {
            self.add_timer(at, Timer::Push(s, ms, serial));
        }
        self.compact();
        match outcome {
            Outcome::Drop => self.close(k),
            Outcome::Keep | Outcome::Again => {
                if let Some(c) = self.conns.get_mut(k) {
                    if matches!(outcome, Outcome::Again) && !c.ready {
                        c.ready = true;
                        self.ready.push_back((k, c.serial));
                    }
                }
                self.settle(k);
                // A connection that entered Closing gets its linger
                // deadline; an open WebSocket, its idle deadline (if set).
                if let Some(c) = self.conns.get_mut(k) {
                    match (&c.phase, self.limits.idle_timeout) {
                        (Phase::Closing { .. }, _) if c.deadline.is_none() => {
                            c.deadline = Some(Instant::now() + self.limits.linger);
                        }
                        (Phase::Ws { .. }, Some(idle)) => c.deadline = Some(Instant::now() + idle),
                        _ => {}
                    }
                    self.arm(k);
                }
            }
        }
    }
}
