//! Answers: the one home of every request kind's answer. Given a parsed
//! `Request`, `Answers` returns the encoded frame, from its cache or from a
//! fresh sample, and knows each kind's TTL, encoding and error object:
//!
//! | kind              | sample (collector)              | TTL (default) | encoding                          |
//! |-------------------|---------------------------------|---------------|-----------------------------------|
//! | `metrics`         | `collect::metrics::Metrics`     | 250 ms        | serde JSON, text frame            |
//! | `disks`           | `collect::filesystems::Disks`   | 1 s           | serde JSON, text frame            |
//! | `processes`       | `collect::processes::Processes` | 1.5 s         | quick-protobuf, gzip over 768 B   |
//! | `process_metrics` | `Collectors::process_detail`    | 250 ms        | serde JSON, text frame            |
//! | `journal_entries` | a journal child (the server's)  | 1 s           | serde JSON, text frame            |
//! | `cgroups`         | `collect::cgroups::Cgroups`     | processes'¹   | serde JSON, text frame            |
//! | `history`         | the ring (`history.rs`), fed by `history_tick` | –  | serde JSON, text (gzip on request) |
//! | `subscribe`       | – (the server's streams push the kinds above)  | –  | `{"subscribed":{…}}`     |
//! | `GET /metrics`    | all of the above + sensors      | their own     | Prometheus text (`prom.rs`)       |
//!
//! ¹ the processes TTL (1.5 s; `SOCKTOP_AGENT_PROCESSES_TTL_MS`), never
//! under `MIN_CPU_WINDOW`: its CPU shares and I/O rates need a real window.
//!
//! A sample is fresh while it is younger than its kind's TTL; an encoded
//! answer is kept beside it until the next sample replaces it, so a cached
//! answer costs a reference-count increment, and a scrape that refreshed a
//! sample leaves the WebSocket clients a fresh one too. A fresh answer's
//! payload is carved from a per-kind `BytesMut` pool (`refill`): once the
//! previous answer is dropped here and copied out by tungstenite, `reserve`
//! reclaims the same memory, so the steady state allocates nothing
//! (`tests/alloc.rs`).

pub mod alerting;
pub mod history;
mod kept;
pub mod prom;
mod wire;

use crate::collect::error::{ErrorKind, Result};
use crate::collect::process_detail::insert_bounded;
use crate::collect::{epoch_ms, journal, Collectors, MIN_CPU_WINDOW};
use crate::families::Sink;
use crate::protocol::{self, gzip::Gzip, Answer, Request, Subscription};
use kept::{fresh, Kept, Scratch, CGROUPS, DISKS, METRICS, PROCESSES};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tungstenite::Utf8Bytes;
use wire::DetailOut;

/// Process frames larger than this are gzipped (as the reference does).
pub const GZIP_THRESHOLD: usize = 768;
/// How long one process's detail is served from the cache (the TUI asks
/// every 500 ms; two clients watching one process share a read).
pub const DETAIL_TTL: Duration = Duration::from_millis(250);

/// How long each kind's sample is reused (`SOCKTOP_AGENT_*_TTL_MS`).
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    pub metrics: Duration,
    pub disks: Duration,
    pub processes: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Ttls {
            metrics: Duration::from_millis(250),
            disks: Duration::from_millis(1000),
            processes: Duration::from_millis(1500),
        }
    }
}

/// What a request gets: an answer now, or a journal read the server runs
/// (a child process) whose output comes back through `journal_store`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ready(Answer),
    Journal(u32),
    /// The connection's pushed streams from now on (empty: unsubscribe);
    /// the server keeps them and answers `{"subscribed":{…}}`.
    Subscribe(Subscription),
    /// A disks round is out (`statvfs` runs off the loop): the server
    /// answers `disks` when it ends, or by this instant with what came back.
    Disks(Instant),
}

/// Processes listed by `/metrics` by default (`SOCKAGENT_PROM_TOP_N`).
pub const PROM_TOP_N: usize = 10;
/// Cgroups listed by `/metrics` by default (`SOCKAGENT_PROM_TOP_CGROUPS`).
pub const PROM_TOP_CGROUPS: usize = 20;

struct Cached<T> {
    at: Instant,
    value: T,
}

pub struct Answers {
    col: Collectors,
    ttl: Ttls,
    x: Scratch,
    metrics: Kept,
    disks: Kept,
    processes: Kept,
    cgroups: Kept,
    details: HashMap<u32, Cached<Utf8Bytes>>,
    /// Processes listed by `/metrics`, the heaviest by CPU (0: none, not scanned).
    prom_top_n: usize,
    /// Cgroups listed by `/metrics`, the heaviest by CPU (0: none, not sampled).
    prom_top_cgroups: usize,
    journal: HashMap<u32, Cached<Utf8Bytes>>,
    /// A disks round just ended: its sample answers every request of this
    /// loop turn, whatever the TTL (`disks_poll`, `end_turn`).
    disks_hold: bool,
    scrape: prom::ScrapeStats,
    /// One sample a second (`--history`); `None`: off.
    history: Option<history::History>,
    /// History answers encoded since the ring's last tick.
    history_cache: history::Encoded,
    /// The alert rules, evaluated on the history tick (`with_alerts`).
    alerts: Option<alerting::Alerting>,
}

/// A metrics sample this young (a request's, or the one a pushed stream
/// just took) is the history's sample for this second: the ring's samples
/// stay one second apart within this much.
const HISTORY_REUSE: Duration = Duration::from_millis(50);

impl Answers {
    pub fn new(col: Collectors, ttl: Ttls) -> Self {
        Answers {
            col,
            ttl,
            x: Scratch {
                json: Vec::with_capacity(4 * 1024),
                pb: Vec::new(),
                gz: Vec::new(),
                gzip: Gzip::default(),
            },
            metrics: Kept::new(&METRICS, ttl.metrics),
            disks: Kept::new(&DISKS, ttl.disks),
            processes: Kept::new(&PROCESSES, ttl.processes),
            // its CPU shares and I/O rates need a real window
            cgroups: Kept::new(&CGROUPS, ttl.processes.max(MIN_CPU_WINDOW)),
            details: HashMap::new(),
            prom_top_n: PROM_TOP_N,
            prom_top_cgroups: PROM_TOP_CGROUPS,
            journal: HashMap::new(),
            disks_hold: false,
            scrape: prom::ScrapeStats::default(),
            history: None,
            history_cache: history::Encoded::default(),
            alerts: None,
        }
    }

    /// Keeps `seconds` of history, one sample a second (0: none).
    pub fn with_history(mut self, seconds: u32) -> Self {
        self.history = (seconds > 0).then(|| history::History::new(seconds));
        self
    }

    /// The history ring, when it is on (remote-write reads its seconds).
    pub fn history(&self) -> Option<&history::History> {
        self.history.as_ref()
    }

    /// Whether the history ring is on (the server then ticks it every
    /// `history::INTERVAL`).
    pub fn history_on(&self) -> bool {
        self.history.is_some()
    }

    /// The history's sample for this second: the metrics sample when one
    /// was just taken (a request's, a pushed stream's), else a history
    /// sample (`Collectors::collect_history_sample`: no host name, no
    /// process count; the next request collects afresh).
    pub fn history_tick(&mut self, now: Instant) {
        let Some(h) = &self.history else { return };
        let last = h.last_at();
        let reuse = self.col.metrics().at.is_some_and(|at| {
            now.saturating_duration_since(at) < HISTORY_REUSE && last.is_none_or(|l| at > l)
        });
        if !reuse {
            self.metrics.answer = None;
            if let Err(e) = self.col.collect_history_sample(now) {
                match e.kind {
                    ErrorKind::Malformed => self.col.report(&e),
                    _ => log::warn!("history: {e}"),
                }
                return;
            }
        }
        let (m, gpus) = self.col.metrics_and_gpus(now);
        if let Some(h) = &mut self.history {
            h.record(m, gpus);
        }
        self.alerts_tick(now);
    }

    /// How many processes `/metrics` lists (`SOCKAGENT_PROM_TOP_N`; 0:
    /// none, and the scrape does not scan them).
    pub fn with_prom_top_n(mut self, n: usize) -> Self {
        self.set_prom_top_n(n);
        self
    }

    /// The same, on an `Answers` in use (`sockagent bench` times both).
    pub fn set_prom_top_n(&mut self, n: usize) {
        self.prom_top_n = n;
    }

    /// How many cgroups `/metrics` lists (`SOCKAGENT_PROM_TOP_CGROUPS`;
    /// 0: none, and the scrape does not sample them).
    pub fn with_prom_top_cgroups(mut self, n: usize) -> Self {
        self.prom_top_cgroups = n;
        self
    }

    pub fn collectors(&mut self) -> &mut Collectors {
        &mut self.col
    }

    /// The answer to one request text: parsed, then answered; a request
    /// that does not parse, or whose collection fails, gets an error object.
    pub fn answer_text(&mut self, text: &str, now: Instant) -> Reply {
        match protocol::parse_request(text) {
            Ok(req) => self.answer(req, text, now),
            Err(e) => Reply::Ready(Answer::text(protocol::error_json(
                &e.error,
                text,
                e.pid.as_ref(),
            ))),
        }
    }

    /// The answer to a parsed request (`text` is quoted in error objects).
    pub fn answer(&mut self, req: Request, text: &str, now: Instant) -> Reply {
        let result = match req {
            Request::Metrics => self.metrics(now),
            Request::Disks => match self.disks_poll(now) {
                Ok(Some(by)) => return Reply::Disks(by),
                Ok(None) => self.disks(now),
                Err(e) => Err(e),
            },
            Request::Processes => self.processes(now),
            Request::Cgroups => self.cgroups(now),
            // Every error names the pid asked for; one that is gone is "no
            // such process", one that cannot be read says which file.
            Request::ProcessMetrics(pid) => match self.process_metrics(pid, now) {
                Err(e) => {
                    let why = match e.kind {
                        ErrorKind::Vanished => format!("no such process: {pid}"),
                        ErrorKind::Malformed => {
                            self.col.report(&e);
                            format!("process {pid}: {e}")
                        }
                        _ => format!("process {pid}: {e}"),
                    };
                    return Reply::Ready(Answer::text(protocol::error_json(
                        &why,
                        text,
                        Some(&serde_json::Value::from(pid)),
                    )));
                }
                ok => ok,
            },
            Request::Journal(pid) => {
                return match self.journal_cached(pid, now) {
                    Some(a) => Reply::Ready(a),
                    None => Reply::Journal(pid),
                };
            }
            Request::History { since_ms, gzip } => match self.history_answer(since_ms, gzip) {
                Some(a) => Ok(a),
                None => {
                    return Reply::Ready(Answer::text(protocol::error_json(
                        "history is off (--history 0)",
                        text,
                        None,
                    )))
                }
            },
            Request::Alerts => return Reply::Ready(self.alerts_answer(text)),
            Request::Subscribe(s) => return Reply::Subscribe(s),
            Request::Unsubscribe => return Reply::Subscribe(Subscription::default()),
        };
        Reply::Ready(match result {
            Ok(a) => a,
            Err(e) => {
                match e.kind {
                    ErrorKind::Malformed => self.col.report(&e),
                    _ => log::warn!("{e}"),
                }
                Answer::text(protocol::error_json(&e.to_string(), text, None))
            }
        })
    }

    fn metrics_sample(&mut self, now: Instant) -> Result<()> {
        self.metrics.sample(&mut self.col, now)
    }

    /// Makes the disks sample fresh without waiting: `None` when it is
    /// (inside its TTL, or a round just ended), else the instant by which
    /// the round that is out ends (the server is woken when it does).
    /// Without a callback set (`Collectors::set_disks_notify`) this waits
    /// for the round and is never `Some`.
    pub fn disks_poll(&mut self, now: Instant) -> Result<Option<Instant>> {
        if self.disks_hold || fresh(self.col.disks().at, self.disks.ttl, now) {
            return Ok(None);
        }
        let before = self.col.disks().at;
        self.col.collect(|k| &mut k.disks, now)?;
        if self.col.disks().at == before {
            return Ok(self.col.disks_deadline());
        }
        self.disks.answer = None;
        // its waiters, asking again this turn, take it even with a zero TTL
        self.disks_hold = self.col.disks_async();
        Ok(None)
    }

    /// The loop's turn is over: the next disks request wants a sample
    /// inside its TTL again.
    pub fn end_turn(&mut self) {
        self.disks_hold = false;
    }

    /// The disks sample, fresh, or the last one while a round is out.
    fn disks_sample(&mut self, now: Instant) -> Result<()> {
        self.disks_poll(now).map(|_| ())
    }

    fn processes_sample(&mut self, now: Instant) -> Result<()> {
        self.processes.sample(&mut self.col, now)
    }

    fn cgroups_sample(&mut self, now: Instant) -> Result<()> {
        self.cgroups.sample(&mut self.col, now)
    }

    /// The `metrics` answer (JSON text).
    pub fn metrics(&mut self, now: Instant) -> Result<Answer> {
        self.metrics.answer(&mut self.col, &mut self.x, now)
    }

    /// The `disks` answer (JSON text); while a round is out (see
    /// `disks_poll`), the last sample's.
    pub fn disks(&mut self, now: Instant) -> Result<Answer> {
        self.disks_sample(now)?;
        Ok(self.disks.encoded(&mut self.col, &mut self.x, now))
    }

    /// The `processes` answer (protobuf, gzipped above the threshold).
    /// Rows a `/metrics` scrape scanned inside the TTL are encoded, not
    /// scanned again.
    pub fn processes(&mut self, now: Instant) -> Result<Answer> {
        self.processes.answer(&mut self.col, &mut self.x, now)
    }

    /// The `cgroups` answer (JSON text): services and containers.
    pub fn cgroups(&mut self, now: Instant) -> Result<Answer> {
        self.cgroups.answer(&mut self.col, &mut self.x, now)
    }

    /// The `process_metrics` answer (JSON text); a process that is gone
    /// is `ErrorKind::Vanished`.
    pub fn process_metrics(&mut self, pid: u32, now: Instant) -> Result<Answer> {
        if let Some(c) = self.details.get(&pid) {
            if fresh(Some(c.at), DETAIL_TTL, now) {
                return Ok(Answer::Text(c.value.clone()));
            }
        }
        let d = match self.col.process_detail(pid, now) {
            Ok(d) => d,
            Err(e) => {
                self.details.remove(&pid);
                return Err(e);
            }
        };
        let out = DetailOut {
            process: &d,
            cached_at: epoch_ms() / 1000,
        };
        let v = Utf8Bytes::from(serde_json::to_string(&out).unwrap_or_default());
        let c = Cached {
            at: now,
            value: v.clone(),
        };
        insert_bounded(&mut self.details, pid, c, now, DETAIL_TTL, |c| c.at);
        Ok(Answer::Text(v))
    }

    /// The `history` answer, shared by every request in one ring tick
    /// (`history::Encoded`); `None` when history is off.
    pub fn history_answer(&mut self, since_ms: Option<u64>, gzip: bool) -> Option<Answer> {
        let h = self.history.as_ref()?;
        Some(
            self.history_cache
                .answer(h, since_ms, gzip, &mut self.x.gzip),
        )
    }

    /// A journal answer for `pid` younger than its TTL.
    pub fn journal_cached(&mut self, pid: u32, now: Instant) -> Option<Answer> {
        let c = self.journal.get(&pid)?;
        fresh(Some(c.at), journal::TTL, now).then(|| Answer::Text(c.value.clone()))
    }

    /// Keeps a journal answer; the cache holds at most
    /// `process_detail::MAX_PIDS` PIDs, expired ones dropped first.
    pub fn journal_store(&mut self, pid: u32, json: &str, now: Instant) -> Answer {
        let v = Utf8Bytes::from(json.to_string());
        let c = Cached {
            at: now,
            value: v.clone(),
        };
        insert_bounded(&mut self.journal, pid, c, now, journal::TTL, |c| c.at);
        Answer::Text(v)
    }

    /// One scrape: the body of a `/metrics` answer. Each collection runs
    /// at most once, and not at all when its sample is fresh. Fails only
    /// when `/proc/stat` or `/proc/meminfo` cannot be read.
    pub fn prometheus(&mut self, now: Instant) -> Result<String> {
        self.prometheus_with(now, prom::PushCounts::default())
    }

    /// A scrape that also shows the server's pushed streams.
    pub fn prometheus_with(&mut self, now: Instant, pushes: prom::PushCounts) -> Result<String> {
        let t0 = Instant::now();
        let parts = self.scrape_parts(now, pushes)?;
        let mut body = prom::render(&mut self.col, &self.scrape, parts);
        self.describe_ring(&mut crate::protocol::prom::Writer::new(&mut body));
        self.scrape.done(t0.elapsed(), body.len());
        Ok(body)
    }

    /// Every `/metrics` family, made fresh as a scrape makes them, into
    /// any encoder (remote-write's, the alerts').
    pub fn families(
        &mut self,
        now: Instant,
        pushes: prom::PushCounts,
        out: &mut dyn Sink,
    ) -> Result<()> {
        let parts = self.scrape_parts(now, pushes)?;
        prom::describe(&mut self.col, &self.scrape, &parts, out);
        self.describe_ring(out);
        Ok(())
    }

    /// The history ring's per-second gauges, its newest second.
    fn describe_ring(&self, out: &mut dyn Sink) {
        if let Some(latest) = self.history.as_ref().and_then(|h| h.latest()) {
            latest.describe_scrape(out);
        }
        // The alerts ride the same tick: `sockagent_alerts`.
        self.alerts_family(out);
    }

    /// Makes every sample a scrape shows fresh (inside its TTL: nothing
    /// read) and says which ones it could not collect.
    fn scrape_parts(&mut self, now: Instant, pushes: prom::PushCounts) -> Result<prom::Parts> {
        let top_n = self.prom_top_n;
        // The process rows first: scanned only when older than the
        // processes TTL, and not encoded here (a WebSocket client's
        // `processes` request encodes them). The metrics collection right
        // after reuses the scan's process count.
        let mut procs_ok = top_n > 0;
        if procs_ok {
            if let Err(e) = self.processes_sample(now) {
                log::debug!("/metrics: no processes: {e}");
                procs_ok = false;
            }
        }
        self.metrics_sample(now)?;
        let fs_ok = match self.disks_sample(now) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("/metrics: no filesystems: {e}");
                false
            }
        };
        if !fresh(self.col.sensors().at, self.ttl.metrics, now) {
            // never fails: what cannot be read is left out
            let _ = self.col.collect(|k| &mut k.sensors, now);
        }
        // Cheap where there are none: the collector then looks for a
        // cgroup filesystem at most every `rediscover::REDISCOVER`.
        let cgroups_ok = self.prom_top_cgroups > 0
            && match self.cgroups_sample(now) {
                Ok(()) => true,
                Err(e) => {
                    log::debug!("/metrics: no cgroups: {e}");
                    false
                }
            };
        Ok(prom::Parts {
            top_n: if procs_ok { top_n } else { 0 },
            procs_listed: top_n > 0,
            filesystems: fs_ok,
            top_cgroups: if cgroups_ok { self.prom_top_cgroups } else { 0 },
            now,
            history: self.history.as_ref().map(|h| (h.bytes(), h.len())),
            pushes,
        })
    }

    /// `input` gzipped with the agent's one compressor.
    pub fn gzip(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 4 + 64);
        self.x.gzip.compress(input, &mut out);
        out
    }
}
