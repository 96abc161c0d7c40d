//! The push schedule: when to push, what goes in a batch, what a failure
//! does (backoff with jitter, `Retry-After`, a dropped batch), and the
//! self-metrics (see `remote/mod.rs`).

use super::client::{Client, Done};
use super::encode::Encoder;
use super::resolve::Resolver;
use super::source::Source;
use super::target::{Auth, Settings};
use crate::answers::history::families as ring;
use crate::families::Sink;
use mio::{Registry, Token, Waker};
use std::time::{Duration, Instant};

/// The pusher's socket in the server's `Poll`. The resolver's wake-up
/// comes through the server's one `Waker` (mio allows one a `Poll`),
/// which the server hands in and tells `on_event` of (`woken`).
pub const SOCKET: Token = Token(usize::MAX - 4);

/// Ring seconds in one push while catching up after an outage (a minute:
/// about 1 500 samples on a 4-core board, ~15 KiB on the wire).
pub const BATCH_SECONDS: usize = 60;
/// The first retry's delay; each failure doubles it, up to `BACKOFF_CAP`
/// or the push interval, the shorter (a try at least once an interval).
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured (a bigger one waits this long).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why pushes fail: the `reason` label of `…_failures_total`.
const REASONS: [&str; 9] = [
    "resolve",
    "connect",
    "timeout",
    "tls",
    "io",
    "bad_response",
    "http_5xx",
    "http_429",
    "http_4xx",
];

crate::families::declare! {
    SAMPLES = counter("sockagent_remote_write_samples_total", "Samples the remote-write endpoint accepted.");
    FAILURES = counter("sockagent_remote_write_failures_total", "Pushes that failed, by reason.");
    DROPPED = counter("sockagent_remote_write_samples_dropped_total", "Samples never accepted: refused by the endpoint (a 4xx), or overwritten in the history ring during an outage.");
    LAST_SUCCESS = gauge("sockagent_remote_write_last_success_timestamp_seconds", "When the endpoint last accepted a push (0: never).");
    BACKLOG = gauge("sockagent_remote_write_backlog_seconds", "History-ring seconds not yet accepted by the endpoint.");
}

/// The self-metrics, for `/metrics` and the push itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub samples: u64,
    pub failures: [u64; REASONS.len()],
    pub dropped: u64,
    pub last_success_ms: u64,
    pub backlog_s: u64,
}

impl Stats {
    pub fn describe(&self, out: &mut dyn Sink) {
        SAMPLES.single(out, self.samples);
        FAILURES.open(out);
        for (r, n) in REASONS.iter().zip(self.failures) {
            out.sample(&[("reason", r)], n.into());
        }
        DROPPED.single(out, self.dropped);
        LAST_SUCCESS.single(out, self.last_success_ms as f64 / 1000.0);
        BACKLOG.single(out, self.backlog_s);
    }

    fn fail(&mut self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            if let Some(n) = self.failures.get_mut(i) {
                *n += 1;
            }
        }
    }
}

/// What `setup` prepares at start (files read, TLS config built).
pub struct Setup {
    pub settings: Settings,
    pub instance: String,
    /// `Authorization: …\r\n`, or empty.
    pub auth_line: String,
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Reads the auth file and the trust anchors; an error is one line
/// naming the variable (exit status 2).
pub fn setup(settings: Settings, hostname: &str) -> Result<Setup, String> {
    let read = |var: &str, p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{var}: cannot read {}: {e}", p.display()))
    };
    let auth_line = match &settings.auth {
        None => String::new(),
        Some(Auth::Bearer(p)) => {
            let t = read("SOCKAGENT_REMOTE_WRITE_BEARER_FILE", p)?;
            format!("Authorization: Bearer {t}\r\n")
        }
        Some(Auth::Basic(p)) => {
            let up = read("SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE", p)?;
            if !up.contains(':') {
                return Err(format!(
                    "SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE: {} does not hold user:password",
                    p.display()
                ));
            }
            let b64 = data_encoding::BASE64.encode(up.as_bytes());
            format!("Authorization: Basic {b64}\r\n")
        }
    };
    if auth_line.trim_end().contains(['\r', '\n']) {
        return Err("remote-write credentials: the file holds more than one line".into());
    }
    #[cfg(feature = "tls")]
    let tls = if settings.target.https {
        Some(super::tls::client_config(settings.ca.as_deref())?)
    } else {
        None
    };
    #[cfg(not(feature = "tls"))]
    if settings.target.https {
        return Err("--remote-write: https needs the `tls` feature (this build has none)".into());
    }
    let instance = settings
        .instance
        .clone()
        .unwrap_or_else(|| hostname.to_string());
    Ok(Setup {
        settings,
        instance,
        auth_line,
        #[cfg(feature = "tls")]
        tls,
    })
}

pub struct Pusher {
    enc: Encoder,
    client: Client,
    /// The request head up to `Content-Length:` (built once).
    head: String,
    url: String,
    interval: Duration,
    /// When the families are next due (the live schedule).
    next_live: Instant,
    /// Families are owed (their interval came; not yet accepted or dropped).
    live_owed: bool,
    /// The last batch was a full one of missed seconds: more follow.
    catch_up: bool,
    /// A retry (or the next catch-up batch) is due then.
    retry_at: Option<Instant>,
    attempts: u32,
    /// The newest ring second the endpoint accepted (or dropped), ms.
    acked_ms: Option<u64>,
    /// The batch in flight: its newest ring second, samples, whether it
    /// holds the families and whether it was a full catch-up batch.
    batch: (Option<u64>, u64, bool, bool),
    failing: bool,
    logged_4xx: bool,
    stats: Stats,
    armed: Option<Instant>,
    rng: u64,
}

impl Pusher {
    pub fn new(s: Setup, waker: std::sync::Arc<Waker>, now: Instant) -> std::io::Result<Self> {
        let client = Client::new(s.settings.target.clone(), SOCKET, Resolver::new(waker));
        #[cfg(feature = "tls")]
        let client = match s.tls {
            Some(cfg) => client.with_tls(cfg),
            None => client,
        };
        let t = &s.settings.target;
        let head = super::client::post_head(
            t,
            &format!(
                "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
                 X-Prometheus-Remote-Write-Version: 0.1.0\r\n{}",
                s.auth_line
            ),
        );
        let scheme = if t.https { "https" } else { "http" };
        let seed = crate::collect::epoch_ms() ^ u64::from(std::process::id()) << 32;
        log::info!(
            "remote-write: pushing to {scheme}://{}{} every {} ms as instance {:?}",
            t.authority,
            t.path,
            s.settings.interval.as_millis(),
            s.instance
        );
        Ok(Pusher {
            enc: Encoder::new(s.instance, &ring::ALL),
            client,
            head,
            url: format!("{scheme}://{}{}", t.authority, t.path),
            interval: s.settings.interval,
            next_live: now,
            live_owed: false,
            catch_up: false,
            retry_at: None,
            attempts: 0,
            acked_ms: None,
            batch: (None, 0, false, false),
            failing: false,
            logged_4xx: false,
            stats: Stats::default(),
            armed: None,
            rng: seed | 1,
        })
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// When the loop should next call `on_timer`.
    fn due(&self) -> Instant {
        if self.client.busy() {
            return self.client.deadline().unwrap_or(self.next_live);
        }
        match self.retry_at {
            Some(r) => r,
            None => self.next_live,
        }
    }

    /// A timer to add to the loop's heap, when it is earlier than the
    /// one already there (so at most a few are ever pending).
    pub fn wake_at(&mut self) -> Option<Instant> {
        let due = self.due();
        if self.armed.is_some_and(|a| a <= due) {
            return None;
        }
        self.armed = Some(due);
        Some(due)
    }

    pub fn on_timer(&mut self, src: &mut dyn Source, registry: &Registry, now: Instant) {
        if self.armed.is_some_and(|a| a <= now) {
            self.armed = None;
        }
        if self.client.busy() {
            if let Some(d) = self.client.on_timer(registry, now) {
                self.done(src, d, now);
            }
            return;
        }
        if now >= self.next_live {
            self.live_owed = true;
            self.next_live = crate::collect::host::next_tick(self.next_live, self.interval, now);
        }
        if self.retry_at.is_some_and(|r| r > now) {
            return;
        }
        self.retry_at = None;
        if self.live_owed || self.catch_up {
            self.push(src, registry, now);
        }
    }

    /// Its socket is ready, or (`woken`) the server's waker fired.
    pub fn on_event(&mut self, src: &mut dyn Source, registry: &Registry, woken: bool) {
        let done = if woken {
            self.client.on_wake(registry)
        } else {
            self.client.on_event(registry)
        };
        if let Some(d) = done {
            self.done(src, d, Instant::now());
        }
    }

    fn push(&mut self, src: &mut dyn Source, registry: &Registry, now: Instant) {
        self.enc.clear();
        let live = self.live_owed;
        if live {
            self.enc.at_ms = crate::collect::epoch_ms() as i64;
            // the ring's families go from the ring, second by second
            self.enc.skip_listed(true);
            if let Err(e) = src.families(now, &mut self.enc) {
                log::debug!("remote-write: {e}");
            }
            self.enc.skip_listed(false);
            self.stats.describe(&mut self.enc);
        }
        let (newest, full) = self.ring_seconds(src);
        self.batch = (newest, self.enc.samples(), live, full);
        if self.enc.samples() == 0 {
            self.live_owed = false;
            self.catch_up = false;
            return;
        }
        let body = self.enc.finish();
        if let Some(d) = self.client.post(&self.head, body, registry, now) {
            self.done(src, d, now);
        }
    }

    /// The ring's seconds after the newest accepted, up to a batch; counts
    /// what the ring overwrote unsent. (Its newest second, whether full.)
    fn ring_seconds(&mut self, src: &mut dyn Source) -> (Option<u64>, bool) {
        let Some(h) = src.history() else {
            return (None, false);
        };
        let step = h.interval_ms();
        if let (Some(acked), Some(oldest), true) = (self.acked_ms, h.oldest_ms(), h.is_full()) {
            let lost = (oldest.saturating_sub(acked) + step / 2) / step;
            if lost > 1 {
                let per = h.latest().map_or(0, |s| count_samples(&s));
                self.stats.dropped += (lost - 1) * per;
                self.acked_ms = Some(oldest.saturating_sub(1));
            }
        }
        let (mut newest, mut n) = (None, 0);
        for s in h
            .slots_after(self.acked_ms.unwrap_or(0))
            .take(BATCH_SECONDS)
        {
            self.enc.at_ms = s.at_ms() as i64;
            s.describe(&mut self.enc);
            newest = Some(s.at_ms());
            n += 1;
        }
        (newest, n == BATCH_SECONDS)
    }

    fn done(&mut self, src: &mut dyn Source, d: Done, now: Instant) {
        let (newest, samples, live, full) = self.batch;
        let reason = match &d {
            Done::Status {
                code: 200..=299, ..
            } => None,
            Done::Status { code: 429, .. } => Some("http_429"),
            Done::Status { code: 500.., .. } => Some("http_5xx"),
            Done::Status { code, body, .. } => {
                // not retried: the batch is dropped
                self.stats.fail("http_4xx");
                self.stats.dropped += samples;
                if !self.logged_4xx {
                    log::warn!("remote-write: {} answered {code} ({body}); that batch is dropped, and later ones while this goes on", self.url);
                    self.logged_4xx = true;
                }
                self.accepted(newest, live, full, now, false);
                self.backlog(src);
                return;
            }
            Done::Failed(why) => Some(*why),
        };
        match reason {
            None => {
                self.stats.samples += samples;
                self.stats.last_success_ms = crate::collect::epoch_ms();
                self.logged_4xx = false;
                if self.failing {
                    log::info!("remote-write: {} accepts pushes again", self.url);
                    self.failing = false;
                }
                self.accepted(newest, live, full, now, true);
            }
            Some(why) => {
                self.stats.fail(why);
                if !self.failing {
                    log::warn!("remote-write: pushing to {} fails ({why}); retrying with backoff, the history ring keeps the seconds", self.url);
                    self.failing = true;
                }
                let after = match d {
                    Done::Status { retry_after, .. } => retry_after,
                    Done::Failed(_) => None,
                };
                self.attempts = self.attempts.saturating_add(1);
                self.retry_at = Some(now + self.backoff(after));
            }
        }
        self.backlog(src);
    }

    /// The batch is done with (accepted, or dropped by a 4xx).
    fn accepted(&mut self, newest: Option<u64>, live: bool, full: bool, now: Instant, ok: bool) {
        if newest.is_some() {
            self.acked_ms = newest;
        }
        if live {
            self.live_owed = false;
        }
        self.attempts = 0;
        // more missed seconds: the next batch now, families or not
        self.catch_up = full && ok;
        self.retry_at = self.catch_up.then_some(now);
    }

    fn backlog(&mut self, src: &mut dyn Source) {
        let h = src.history();
        let newest = h.and_then(|h| h.latest()).map(|s| s.at_ms());
        self.stats.backlog_s = match (newest, self.acked_ms) {
            (Some(n), Some(a)) => n.saturating_sub(a) / 1000,
            (Some(n), None) => h
                .and_then(|h| h.oldest_ms())
                .map_or(0, |o| (n - o.min(n)) / 1000),
            _ => 0,
        };
    }

    /// The delay before the next try: `BACKOFF_BASE` doubled per failure
    /// up to `BACKOFF_CAP` (or the interval), times a jitter in [0.5, 1), or `Retry-After`
    /// (up to `MAX_RETRY_AFTER`) when that is longer.
    fn backoff(&mut self, retry_after: Option<u64>) -> Duration {
        let exp = self.attempts.saturating_sub(1).min(16);
        let cap = BACKOFF_CAP.min(self.interval);
        let full = BACKOFF_BASE.saturating_mul(1 << exp).min(cap);
        // xorshift64: jitter needs no crypto
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let jitter = 0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        let d = full.mul_f64(jitter);
        let asked = Duration::from_secs(retry_after.unwrap_or(0)).min(MAX_RETRY_AFTER);
        d.max(asked)
    }
}

/// Samples one slot describes (what a lost second costs).
fn count_samples(s: &crate::answers::history::families::Slot) -> u64 {
    struct Count(u64);
    impl Sink for Count {
        fn family(&mut self, _: &str, _: &str, _: crate::families::Kind) {}
        fn sample(&mut self, _: &[(&str, &str)], _: crate::families::Value) {
            self.0 += 1;
        }
    }
    let mut c = Count(0);
    s.describe(&mut c);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::history::{families::tests::sample, History};
    use crate::families::{Kind, Value};
    use crate::remote::target::Target;

    struct Stub(History);

    impl Source for Stub {
        fn families(
            &mut self,
            _: Instant,
            out: &mut dyn Sink,
        ) -> crate::collect::error::Result<()> {
            out.family("x", "", Kind::Gauge);
            out.sample(&[], Value::U(1));
            Ok(())
        }
        fn history(&self) -> Option<&History> {
            Some(&self.0)
        }
    }

    fn pusher(poll: &mio::Poll, interval_ms: u64) -> Pusher {
        let settings = Settings {
            target: Target::parse("http://127.0.0.1:1/w").unwrap(),
            interval: Duration::from_millis(interval_ms),
            instance: None,
            auth: None,
            ca: None,
        };
        let s = setup(settings, "h").unwrap();
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        Pusher::new(s, waker, Instant::now()).unwrap()
    }

    /// A ring of `cap` seconds that took samples 0..=`last`.
    fn ring(cap: u32, last: u64) -> Stub {
        let t0 = Instant::now();
        let mut h = History::new(cap);
        for k in 0..=last {
            h.record(&sample(t0, k), None);
        }
        Stub(h)
    }

    #[test]
    fn missed_seconds_go_in_full_batches_oldest_first_and_lost_ones_count() {
        let poll = mio::Poll::new().unwrap();
        let mut p = pusher(&poll, 15_000);
        let mut src = ring(300, 90); // 90 seconds held
        let (newest, full) = p.ring_seconds(&mut src);
        assert_eq!((newest, full), (Some(1_060_000), true));
        p.acked_ms = newest;
        p.enc.clear();
        let (newest, full) = p.ring_seconds(&mut src);
        assert_eq!((newest, full), (Some(1_090_000), false));
        assert_eq!(p.stats.dropped, 0);

        // accepted up to second 2, then the ring (10 s) went round: 3..=10 lost
        let mut src = ring(10, 20);
        p.acked_ms = Some(1_002_000);
        p.enc.clear();
        let (newest, _) = p.ring_seconds(&mut src);
        assert_eq!(newest, Some(1_020_000));
        let per_second = count_samples(&src.0.latest().unwrap());
        assert!(per_second > 0);
        assert_eq!(p.stats.dropped, 8 * per_second);
        // counted once
        p.enc.clear();
        p.ring_seconds(&mut src);
        assert_eq!(p.stats.dropped, 8 * per_second);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() {
        let poll = mio::Poll::new().unwrap();
        let mut p = pusher(&poll, 60_000);
        let mut prev = Duration::ZERO;
        for attempt in 1..=10u32 {
            p.attempts = attempt;
            let d = p.backoff(None);
            let full = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1))
                .min(BACKOFF_CAP);
            assert!(d >= full / 2 && d < full, "try {attempt}: {d:?}");
            assert!(d >= prev / 2, "never much shorter than the last");
            prev = d;
        }
        p.attempts = 1;
        assert!(p.backoff(Some(7)) >= Duration::from_secs(7));
        assert_eq!(p.backoff(Some(86_400)), MAX_RETRY_AFTER);
        // a short interval caps the backoff (a Poll holds one Waker)
        let poll = mio::Poll::new().unwrap();
        let mut p = pusher(&poll, 200);
        p.attempts = 10;
        assert!(p.backoff(None) < Duration::from_millis(200));
    }

    #[test]
    fn setup_reads_the_auth_files_and_names_the_variable() {
        let dir = crate::scratch::Scratch::new("rw-setup");
        let basic = dir.write("basic", "user:pw\n");
        let mut settings = Settings {
            target: Target::parse("http://h/w").unwrap(),
            interval: Duration::from_secs(15),
            instance: Some("i".into()),
            auth: Some(Auth::Basic(basic.clone())),
            ca: None,
        };
        let s = setup(settings.clone(), "host").unwrap();
        assert_eq!(s.auth_line, "Authorization: Basic dXNlcjpwdw==\r\n");
        assert_eq!(s.instance, "i");
        std::fs::write(&basic, "no colon").unwrap();
        assert!(setup(settings.clone(), "h").is_err());
        settings.auth = Some(Auth::Bearer(dir.path().join("missing")));
        let e = setup(settings.clone(), "h").err().unwrap();
        assert!(e.starts_with("SOCKAGENT_REMOTE_WRITE_BEARER_FILE: "), "{e}");
        settings.auth = Some(Auth::Bearer(dir.write("two", "a\nb\n")));
        assert!(setup(settings, "h").is_err());
    }
}
