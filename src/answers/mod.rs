//! Answers: the one home of every request kind's answer. Given a parsed
//! `Request`, `Answers` returns the encoded frame, from its cache or from a
//! fresh sample, and knows each kind's TTL, encoding and error object:
//!
//! | kind              | sample (collector)              | TTL (default) | encoding                          |
//! |-------------------|---------------------------------|---------------|-----------------------------------|
//! | `metrics`         | `Collectors::collect_metrics`   | 250 ms        | serde JSON, text frame            |
//! | `disks`           | `Collectors::collect_disks`     | 1 s           | serde JSON, text frame            |
//! | `processes`       | `Collectors::collect_processes` | 1.5 s         | quick-protobuf, gzip over 768 B   |
//! | `process_metrics` | `Collectors::process_detail`    | 250 ms        | serde JSON, text frame            |
//! | `journal_entries` | a journal child (the server's)  | 1 s           | serde JSON, text frame            |
//! | `cgroups`         | `Collectors::collect_cgroups`   | processes'¹   | serde JSON, text frame            |
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

pub mod history;
pub mod prom;

use crate::collect::error::{ErrorKind, Result};
use crate::collect::process_detail::{insert_bounded, Detail};
use crate::collect::{
    cgroups::CgroupRow, cpufreq::CoreFreq, diskstats::DiskIo, epoch_ms, gpu, journal, net,
    power::Battery, pressure::Pressure, processes::ProcRow, sensors::Fan, throttle::Throttling,
    Collectors, MIN_CPU_WINDOW,
};
use crate::protocol::{self, gzip::Gzip, pb, Answer, Request, Subscription};
use bytes::BytesMut;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tungstenite::{Bytes, Utf8Bytes};

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

/// A scanned process is a row of the process frame.
impl pb::ProcessRow for ProcRow {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn cpu_usage(&self) -> f32 {
        self.cpu_usage
    }
    fn mem_bytes(&self) -> u64 {
        self.mem_bytes
    }
}

/// The wire shape of the `metrics` answer (PROTOCOL.md, "metrics").
#[derive(Serialize)]
struct MetricsOut<'a> {
    sampled_at_ms: u64,
    cpu_total: f32,
    cpu_per_core: &'a [f32],
    mem_total: u64,
    mem_used: u64,
    swap_total: u64,
    swap_used: u64,
    hostname: &'a str,
    cpu_temp_c: Option<f32>,
    disks: [u8; 0],
    networks: &'a [net::NetDev],
    top_processes: [u8; 0],
    gpus: Option<&'a [gpu::Gpu]>,
    process_count: u64,
    // Board health (README, "metrics"): null where the machine has no source.
    cpu_freq_mhz: Option<Clocks<'a>>,
    load_avg: Option<[f64; 3]>,
    uptime_s: Option<f64>,
    pressure: Option<PressureOut>,
    throttling: Option<ThrottlingOut>,
    disk_io: Option<&'a [DiskIo]>,
    fans: Option<&'a [Fan]>,
    power: Option<PowerOut<'a>>,
}

/// Each core's clock, MHz (null for a core without a reading).
struct Clocks<'a>(&'a [CoreFreq]);

impl Serialize for Clocks<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|c| c.khz.map(|k| k as f64 / 1000.0)))
    }
}

#[derive(Serialize)]
struct PressureOut {
    cpu_some_avg10: Option<f64>,
    memory_some_avg10: Option<f64>,
    memory_full_avg10: Option<f64>,
    io_some_avg10: Option<f64>,
    io_full_avg10: Option<f64>,
}

impl PressureOut {
    fn of(p: &Pressure) -> Self {
        let avg = |psi: Option<crate::collect::pressure::Psi>, full: bool| {
            psi.and_then(|x| if full { x.full } else { x.some })
                .map(|l| l.avg10)
        };
        PressureOut {
            cpu_some_avg10: avg(p.cpu, false),
            memory_some_avg10: avg(p.memory, false),
            memory_full_avg10: avg(p.memory, true),
            io_some_avg10: avg(p.io, false),
            io_full_avg10: avg(p.io, true),
        }
    }
}

/// `{"now": [...], "since_boot": [...]}`, reasons by name.
struct ThrottlingOut(Throttling);

struct Reasons(u8);

impl Serialize for Reasons {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(Throttling::names(self.0))
    }
}

impl Serialize for ThrottlingOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("now", &Reasons(self.0.now))?;
        m.serialize_entry("since_boot", &Reasons(self.0.since_boot))?;
        m.end()
    }
}

#[derive(Serialize)]
struct PowerOut<'a> {
    batteries: &'a [Battery],
    cpu_package_w: Option<f64>,
}

/// The wire shape of the `process_metrics` answer (the connector's
/// `ProcessMetricsResponse`).
#[derive(Serialize)]
struct DetailOut<'a> {
    process: &'a Detail,
    cached_at: u64,
}

/// One row of the `cgroups` answer (README, "cgroups").
#[derive(Serialize)]
struct CgroupOut<'a> {
    path: &'a str,
    kind: &'static str,
    name: &'a str,
    cpu_pct: Option<f32>,
    mem_bytes: Option<u64>,
    mem_max_bytes: Option<u64>,
    io_read_bytes_per_s: Option<f64>,
    io_write_bytes_per_s: Option<f64>,
    pids: Option<u64>,
}

impl<'a> From<&'a CgroupRow> for CgroupOut<'a> {
    fn from(r: &'a CgroupRow) -> Self {
        CgroupOut {
            path: &r.path,
            kind: r.kind.as_str(),
            name: &r.name,
            cpu_pct: r.cpu_pct,
            mem_bytes: r.mem_bytes,
            mem_max_bytes: r.mem_max_bytes,
            io_read_bytes_per_s: r.io_read_bytes_per_s,
            io_write_bytes_per_s: r.io_write_bytes_per_s,
            pids: r.pids,
        }
    }
}

/// The rows, serialized as a JSON array without a Vec of them.
struct CgroupsOut<'a>(&'a [CgroupRow]);

impl Serialize for CgroupsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(CgroupOut::from))
    }
}

/// Cgroups listed by `/metrics` by default (`SOCKAGENT_PROM_TOP_CGROUPS`).
pub const PROM_TOP_CGROUPS: usize = 20;

struct Cached<T> {
    at: Instant,
    value: T,
}

/// True when a sample taken `at` is still young enough to reuse.
fn fresh(at: Option<Instant>, ttl: Duration, now: Instant) -> bool {
    at.is_some_and(|a| !ttl.is_zero() && now.duration_since(a) < ttl)
}

/// The frame payload for a fresh answer, carved from `pool` (see the
/// module's header).
fn refill(pool: &mut BytesMut, data: &[u8]) -> Bytes {
    pool.reserve(data.len());
    pool.extend_from_slice(data);
    pool.split().freeze()
}

/// Serializes into the reused JSON buffer, then into the frame payload.
fn encode_json<T: Serialize>(json: &mut Vec<u8>, pool: &mut BytesMut, v: &T) -> Utf8Bytes {
    json.clear();
    if let Err(e) = serde_json::to_writer(&mut *json, v) {
        // Only a failing writer errs, and a Vec never fails.
        log::error!("JSON encoding: {e}");
    }
    Utf8Bytes::try_from(refill(pool, json)).unwrap_or_default()
}

pub struct Answers {
    col: Collectors,
    ttl: Ttls,
    json: Vec<u8>,
    /// Frame payload memory for each kind of answer (see `refill`).
    metrics_pool: BytesMut,
    disks_pool: BytesMut,
    processes_pool: BytesMut,
    cgroups_pool: BytesMut,
    pb_buf: Vec<u8>,
    gz_buf: Vec<u8>,
    gzip: Gzip,
    /// The encoded answers of the current samples.
    metrics: Option<Utf8Bytes>,
    disks: Option<Utf8Bytes>,
    processes: Option<Bytes>,
    details: HashMap<u32, Cached<Utf8Bytes>>,
    cgroups: Option<Utf8Bytes>,
    /// Cgroups listed by `/metrics`, the heaviest by CPU (0: none, not sampled).
    prom_top_cgroups: usize,
    journal: HashMap<u32, Cached<Utf8Bytes>>,
    /// A disks round just ended: its sample answers every request of this
    /// loop turn, whatever the TTL (`disks_poll`, `end_turn`).
    disks_hold: bool,
    scrape: prom::ScrapeStats,
    /// One sample a second (`--history`); `None`: off.
    history: Option<history::History>,
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
            json: Vec::with_capacity(4 * 1024),
            metrics_pool: BytesMut::new(),
            disks_pool: BytesMut::new(),
            processes_pool: BytesMut::new(),
            cgroups_pool: BytesMut::new(),
            pb_buf: Vec::new(),
            gz_buf: Vec::new(),
            gzip: Gzip::default(),
            metrics: None,
            disks: None,
            processes: None,
            details: HashMap::new(),
            cgroups: None,
            prom_top_cgroups: PROM_TOP_CGROUPS,
            journal: HashMap::new(),
            disks_hold: false,
            scrape: prom::ScrapeStats::default(),
            history: None,
        }
    }

    /// Keeps `seconds` of history, one sample a second (0: none).
    pub fn with_history(mut self, seconds: u32) -> Self {
        self.history = (seconds > 0).then(|| history::History::new(seconds));
        self
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
            self.metrics = None;
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

    /// Makes the metrics sample fresh: reused inside its TTL, else
    /// collected (and the old encoding let go, so its memory is reused).
    fn metrics_sample(&mut self, now: Instant) -> Result<()> {
        let m = self.col.metrics();
        if !m.full || !fresh(m.at, self.ttl.metrics, now) {
            self.metrics = None;
            self.col.collect_metrics(now)?;
        }
        Ok(())
    }

    /// Makes the disks sample fresh without waiting: `None` when it is
    /// (inside its TTL, or a round just ended), else the instant by which
    /// the round that is out ends (the server is woken when it does).
    /// Without a callback set (`Collectors::set_disks_notify`) this waits
    /// for the round and is never `Some`.
    pub fn disks_poll(&mut self, now: Instant) -> Result<Option<Instant>> {
        if self.disks_hold || fresh(self.col.disks().at, self.ttl.disks, now) {
            return Ok(None);
        }
        if self.col.collect_disks(now)?.is_none() {
            return Ok(self.col.disks_deadline());
        }
        self.disks = None;
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
        if !fresh(self.col.processes().0, self.ttl.processes, now) {
            self.processes = None;
            self.col.collect_processes(now)?;
        }
        Ok(())
    }

    /// The cgroups sample's TTL: the processes one, at least `MIN_CPU_WINDOW`.
    fn cgroups_ttl(&self) -> Duration {
        self.ttl.processes.max(MIN_CPU_WINDOW)
    }

    fn cgroups_sample(&mut self, now: Instant) -> Result<()> {
        if !fresh(self.col.cgroups().0, self.cgroups_ttl(), now) {
            self.cgroups = None;
            self.col.collect_cgroups(now)?;
        }
        Ok(())
    }

    /// The `cgroups` answer (JSON text): services and containers.
    pub fn cgroups(&mut self, now: Instant) -> Result<Answer> {
        self.cgroups_sample(now)?;
        if let Some(v) = &self.cgroups {
            return Ok(Answer::Text(v.clone()));
        }
        let rows = CgroupsOut(self.col.cgroups().1);
        let v = encode_json(&mut self.json, &mut self.cgroups_pool, &rows);
        self.cgroups = Some(v.clone());
        Ok(Answer::Text(v))
    }

    /// The `metrics` answer (JSON text).
    pub fn metrics(&mut self, now: Instant) -> Result<Answer> {
        self.metrics_sample(now)?;
        if let Some(v) = &self.metrics {
            return Ok(Answer::Text(v.clone()));
        }
        let (m, gpus) = self.col.metrics_and_gpus(now);
        let b = &m.board;
        let out = MetricsOut {
            sampled_at_ms: m.sampled_at_ms,
            cpu_total: m.cpu_total,
            cpu_per_core: &m.per_core,
            mem_total: m.mem.mem_total,
            mem_used: m.mem.mem_used,
            swap_total: m.mem.swap_total,
            swap_used: m.mem.swap_used,
            hostname: &m.hostname,
            cpu_temp_c: m.cpu_temp_c,
            disks: [],
            networks: &m.nets,
            top_processes: [],
            gpus,
            process_count: m.process_count,
            cpu_freq_mhz: b.cpufreq.any().then_some(Clocks(&b.cpufreq.cores)),
            load_avg: b.load_avg,
            uptime_s: b
                .uptime_s(m.at.unwrap_or(now))
                .map(|u| (u * 100.0).round() / 100.0),
            pressure: b.pressure.as_ref().map(PressureOut::of),
            throttling: b.throttle.sample.map(ThrottlingOut),
            disk_io: m.disk_io.ok.then_some(m.disk_io.rows.as_slice()),
            fans: (!b.fans.fans.is_empty()).then_some(b.fans.fans.as_slice()),
            power: b.power.present().then_some(PowerOut {
                batteries: &b.power.batteries,
                cpu_package_w: b.power.cpu_package_w,
            }),
        };
        let v = encode_json(&mut self.json, &mut self.metrics_pool, &out);
        self.metrics = Some(v.clone());
        Ok(Answer::Text(v))
    }

    /// The `disks` answer (JSON text); while a round is out (see
    /// `disks_poll`), the last sample's.
    pub fn disks(&mut self, now: Instant) -> Result<Answer> {
        self.disks_sample(now)?;
        if let Some(v) = &self.disks {
            return Ok(Answer::Text(v.clone()));
        }
        let rows = &self.col.disks().rows;
        let v = encode_json(&mut self.json, &mut self.disks_pool, rows);
        self.disks = Some(v.clone());
        Ok(Answer::Text(v))
    }

    /// The `processes` answer (protobuf, gzipped above the threshold).
    /// Rows a `/metrics` scrape scanned inside the TTL are encoded, not
    /// scanned again.
    pub fn processes(&mut self, now: Instant) -> Result<Answer> {
        self.processes_sample(now)?;
        if let Some(v) = &self.processes {
            return Ok(Answer::Binary(v.clone()));
        }
        pb::encode_processes(self.col.processes().1, &mut self.pb_buf);
        let v = if self.pb_buf.len() > GZIP_THRESHOLD {
            self.gzip.compress(&self.pb_buf, &mut self.gz_buf);
            refill(&mut self.processes_pool, &self.gz_buf)
        } else {
            refill(&mut self.processes_pool, &self.pb_buf)
        };
        self.processes = Some(v.clone());
        Ok(Answer::Binary(v))
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

    /// The `history` answer: JSON text, or gzipped into a binary frame;
    /// `None` when history is off. Its buffer goes out with the frame
    /// (a whole ring is far larger than any other answer, and rarer).
    pub fn history_answer(&mut self, since_ms: Option<u64>, gzip: bool) -> Option<Answer> {
        let h = self.history.as_ref()?;
        let mut json = Vec::with_capacity(256 + h.len() * 320);
        if let Err(e) = serde_json::to_writer(&mut json, &h.view(since_ms)) {
            log::error!("JSON encoding: {e}");
        }
        Some(if gzip {
            let mut out = Vec::with_capacity(json.len() / 6 + 64);
            self.gzip.compress(&json, &mut out);
            Answer::Binary(Bytes::from(out))
        } else {
            Answer::Text(Utf8Bytes::try_from(Bytes::from(json)).unwrap_or_default())
        })
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
    pub fn prometheus(&mut self, now: Instant, top_n: usize) -> Result<String> {
        self.prometheus_with(now, top_n, prom::PushCounts::default())
    }

    /// A scrape that also shows the server's pushed streams.
    pub fn prometheus_with(
        &mut self,
        now: Instant,
        top_n: usize,
        pushes: prom::PushCounts,
    ) -> Result<String> {
        let t0 = Instant::now();
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
            self.col.collect_sensors(now);
        }
        // Cheap where there are none: the collector then looks for a
        // cgroup filesystem at most every `cgroups::REPROBE`.
        let cgroups_ok = self.prom_top_cgroups > 0
            && match self.cgroups_sample(now) {
                Ok(()) => true,
                Err(e) => {
                    log::debug!("/metrics: no cgroups: {e}");
                    false
                }
            };
        let body = prom::render(
            &mut self.col,
            &self.scrape,
            prom::Parts {
                top_n: if procs_ok { top_n } else { 0 },
                procs_listed: top_n > 0,
                filesystems: fs_ok,
                top_cgroups: if cgroups_ok { self.prom_top_cgroups } else { 0 },
                now,
                history: self.history.as_ref().map(|h| (h.bytes(), h.len())),
                pushes,
            },
        );
        self.scrape.done(t0.elapsed(), body.len());
        Ok(body)
    }

    /// `input` gzipped with the agent's one compressor.
    pub fn gzip(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 4 + 64);
        self.gzip.compress(input, &mut out);
        out
    }
}
