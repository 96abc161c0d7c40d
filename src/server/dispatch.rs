//! The dispatch: one request text, or one `/metrics` scrape, handed to the
//! answers module. What a connection's step may touch besides itself is
//! gathered in `Ctx`.

use super::http;
use super::jobs::{Jobs, Started};
use super::pushes::Pushes;
use super::streams::Streams;
use crate::answers::{Answers, Reply};
use crate::protocol::Answer;
use std::time::Instant;
use tungstenite::protocol::WebSocketConfig;

/// One answer slot, kept in request order.
pub enum Slot {
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
    /// Pushed disks groups (their period, ms) whose tick waits for it.
    pub pushes: Vec<u32>,
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
    pub prom_top_n: usize,
    pub cfg: &'a WebSocketConfig,
    /// This connection's (slab key, serial), for journal waiters.
    pub me: (usize, u64),
    pub new_deadlines: &'a mut Vec<JobDeadline>,
    /// Who subscribed to which pushed stream (and their counts).
    pub streams: &'a mut Streams,
    /// Who waits for the disks round that is out.
    pub disks: &'a mut DiskWaits,
}

/// The answer to one request text, or a slot that a journal read will
/// fill; a (un)subscribe changes this connection's `pushes`.
pub fn answer(text: &str, pushes: &mut Pushes, x: &mut Ctx) -> Slot {
    let now = Instant::now();
    match x.answers.answer_text(text, now) {
        Reply::Ready(a) => Slot::Ready(a),
        Reply::Disks(by) => {
            x.disks.wait(x.me, by);
            Slot::Disks
        }
        Reply::Subscribe(new) => {
            x.streams.set(x.me, pushes.sub, new, now);
            pushes.resubscribe(new, &mut x.streams.counts);
            Slot::Ready(Answer::text(new.answer_json()))
        }
        Reply::Journal(pid) => match x.jobs.start(x.registry, pid, x.me) {
            Started::Now(json) => Slot::Ready(x.answers.journal_store(pid, &json, now)),
            // the same error object a `process_metrics` for it gets
            Started::NoProcess => Slot::Ready(Answer::text(crate::protocol::error_json(
                &format!("no such process: {pid}"),
                text,
                Some(&serde_json::Value::from(pid)),
            ))),
            Started::Pending { serial, deadline } => {
                if let Some((at, key)) = deadline {
                    x.new_deadlines.push((at, key, serial));
                }
                Slot::Waiting(serial)
            }
        },
    }
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
    Some(
        match x
            .answers
            .prometheus_with(now, x.prom_top_n, x.streams.counts)
        {
            Ok(body) => {
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
                (
                    http::response(
                        500,
                        "Internal Server Error",
                        "text/plain; charset=utf-8",
                        body.as_bytes(),
                        head_only,
                        "",
                    ),
                    500,
                )
            }
        },
    )
}
