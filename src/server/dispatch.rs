//! The dispatch: one request text, or one `/metrics` scrape, handed to the
//! answers module. What a connection's step may touch besides itself is
//! gathered in `Ctx`.

use super::guard::{self, Guard};
use super::http;
use super::jobs::{Jobs, Started};
use super::pushes::Pushes;
use super::streams::Streams;
use crate::answers::{Answers, Reply};
use crate::protocol::Answer;
use std::time::Instant;
use tungstenite::protocol::WebSocketConfig;

/// One answer queued on a connection, kept in request order.
pub enum Queued {
    Ready(Answer),
    /// Waiting for journal job `serial`; later answers queue behind it.
    Waiting(u64),
    /// Waiting for the disks round that is out (`DiskWaits`).
    Disks,
}

/// Connections waiting for a disks round (a `disks` request, or a scrape
/// still in its HTTP phase), and the deadline the loop must arm for it.
#[derive(Default)]
pub struct DiskWaits {
    /// (connection key, serial); at most one entry per connection.
    pub conns: Vec<(usize, u64)>,
    /// Pushed disks groups (their period, ms, and serial) whose tick waits for it.
    pub pushes: Vec<(u32, u64)>,
    /// A deadline not yet in the loop's timer heap.
    pub new_deadline: Option<Instant>,
    /// The deadline in the heap, if any.
    pub armed: Option<Instant>,
}

impl DiskWaits {
    /// Connection `me` waits for the round that ends by `by`.
    pub fn wait(&mut self, me: (usize, u64), by: Instant) {
        if !self.conns.contains(&me) {
            self.conns.push(me);
        }
        if self.armed != Some(by) {
            self.armed = Some(by);
            self.new_deadline = Some(by);
        }
    }
}

/// A journal job's deadline, for the loop's timer heap: (when, job key, job serial).
pub type JobDeadline = (Instant, usize, u64);

/// What one connection's step may touch besides itself.
pub struct Ctx<'a> {
    pub answers: &'a mut Answers,
    pub jobs: &'a mut Jobs,
    pub registry: &'a mio::Registry,
    pub token: Option<&'a str>,
    pub cfg: &'a WebSocketConfig,
    /// This connection's (slab key, serial), for journal waiters.
    pub me: (usize, u64),
    pub new_deadlines: &'a mut Vec<JobDeadline>,
    /// Who subscribed to which pushed stream (and their counts).
    pub streams: &'a mut Streams,
    /// What may wait for one client (`Limits::max_queued_output`).
    pub cap: usize,
    /// The agent's names, the token lockout, the refusal lines' limit.
    pub guard: &'a mut Guard,
    /// The remote-write pusher's counts, for `/metrics`.
    #[cfg(feature = "remote-write")]
    pub remote: Option<crate::remote::Stats>,
    /// The Alertmanager senders' counts, for `/metrics`.
    #[cfg(feature = "remote-write")]
    pub alertmanagers: Option<&'a crate::remote::Alertmanagers>,
    /// Who waits for the disks round that is out.
    pub disks: &'a mut DiskWaits,
}

/// The answer to one request text, or a slot that a journal read will
/// fill; a (un)subscribe changes this connection's `pushes`.
pub fn answer(text: &str, pushes: &mut Pushes, x: &mut Ctx) -> Queued {
    let now = Instant::now();
    match x.answers.answer_text(text, now) {
        Reply::Ready(a) => Queued::Ready(a),
        Reply::Disks(by) => {
            x.disks.wait(x.me, by);
            Queued::Disks
        }
        Reply::Subscribe(new) => match x.streams.set(x.me, pushes.sub, new, now) {
            Ok(()) => {
                pushes.resubscribe(new, &mut x.streams.counts);
                Queued::Ready(Answer::text(new.answer_json()))
            }
            Err(_) => Queued::Ready(Answer::text(crate::protocol::error_json(
                &format!(
                    "too many distinct periods subscribed to across clients (at most {} stream and period pairs); use a period already in use, or fewer",
                    super::streams::MAX_GROUPS
                ),
                text,
                None,
            ))),
        },
        Reply::Journal(pid) => match x.jobs.start(x.registry, pid, x.me) {
            Started::Now(json) => Queued::Ready(x.answers.journal_store(pid, &json, now)),
            // the same error object a `process_metrics` for it gets
            Started::NoProcess => Queued::Ready(Answer::text(crate::protocol::error_json(
                &format!("no such process: {pid}"),
                text,
                Some(&serde_json::Value::from(pid)),
            ))),
            Started::Pending { serial, deadline } => {
                if let Some((at, key)) = deadline {
                    x.new_deadlines.push((at, key, serial));
                }
                Queued::Waiting(serial)
            }
        },
    }
}

/// Routes a request head from `peer` (`ip:port`) with the guard: a
/// locked-out address gets 429; a wrong token is counted (one warn line
/// when it locks the address out); refusals are logged at info, at most
/// one line a second.
pub fn route(buf: &[u8], peer: &str, x: &mut Ctx) -> Option<(usize, http::Route)> {
    let now = Instant::now();
    let ip = peer.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
    let blocked = ip.and_then(|ip| x.guard.blocked(ip, now));
    let gate = http::Gate {
        token: x.token,
        names: &x.guard.names,
        blocked,
    };
    let (consumed, route, note) = http::route(buf, &gate)?;
    let (why, what) = match note {
        http::Note::Nothing => return Some((consumed, route)),
        http::Note::WrongToken => {
            if ip.is_some_and(|ip| x.guard.wrong_token(ip, now)) {
                log::warn!(
                    "{peer}: {} wrong tokens in {} s; answering 429 to this address for {} s",
                    guard::MAX_WRONG,
                    guard::WRONG_WINDOW.as_secs(),
                    guard::BLOCK_FOR.as_secs()
                );
                return Some((consumed, route));
            }
            ("wrong token (401)", None)
        }
        http::Note::Blocked => ("locked out for wrong tokens (429)", None),
        http::Note::Refused(why, what) => (why, what),
    };
    if let Some(more) = x.guard.refusal_line(now) {
        let what = what.map(|w| format!(": {w}")).unwrap_or_default();
        let more = match more {
            0 => String::new(),
            n => format!(" ({n} more refused since the last line)"),
        };
        log::info!("{peer}: refused: {why}{what}{more}");
    }
    Some((consumed, route))
}

/// A `/metrics` answer: the answers' scrape, or 500 when `/proc` cannot
/// be read (Prometheus then records the target as down). Gzipped when the
/// client takes it (Prometheus does): ~5x fewer bytes to push through the
/// socket costs less than it saves. `None` while a disks round is out:
/// the loop drives this connection again when it ends.
pub fn scrape(x: &mut Ctx, head_only: bool, gzip: bool) -> Option<(Vec<u8>, u16)> {
    let now = Instant::now();
    if let Ok(Some(by)) = x.answers.disks_poll(now) {
        x.disks.wait(x.me, by);
        return None;
    }
    Some(match x.answers.prometheus_with(now, x.streams.counts) {
        Ok(body) => {
            #[cfg(feature = "remote-write")]
            let body = {
                let mut body = body;
                let mut w = crate::protocol::prom::Writer::new(&mut body);
                if let Some(s) = x.remote {
                    s.describe(&mut w);
                }
                if let Some(a) = x.alertmanagers {
                    a.describe(&mut w);
                }
                body
            };
            let zipped = gzip.then(|| x.answers.gzip(body.as_bytes()));
            let (bytes, extra) = match &zipped {
                Some(z) => (
                    z.as_slice(),
                    "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n",
                ),
                None => (body.as_bytes(), "Vary: Accept-Encoding\r\n"),
            };
            let ct = crate::protocol::prom::CONTENT_TYPE;
            (http::response(200, "OK", ct, bytes, head_only, extra), 200)
        }
        Err(e) => {
            log::warn!("/metrics: {e}");
            let body = format!("cannot collect: {e}\n");
            let ct = "text/plain; charset=utf-8";
            let r = http::response(
                500,
                "Internal Server Error",
                ct,
                body.as_bytes(),
                head_only,
                "",
            );
            (r, 500)
        }
    })
}
