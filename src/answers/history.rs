//! The history ring: one sample of the fast metrics a second, for the
//! last `--history` seconds (15 minutes by default), sized when the first
//! sample is taken and never grown (`tests/history.rs`; its bytes are
//! logged and shown on `/metrics` as `sockagent_history_bytes`).
//!
//! The whole ring is written when it is sized (every slot empty), so its
//! memory is resident from the start: the agent's RSS does not climb for
//! the first `--history` seconds and then stop, and a board that cannot
//! afford it finds out at start.
//!
//! A slot holds the fixed readings (`Fixed`) and `stride` more numbers
//! in one flat `f64` array: each core's busy %, each interface's receive
//! and transmit rate, each GPU's usage and memory. The set of cores,
//! interface slots and GPUs is fixed by the first sample: interfaces get
//! a few spare slots for ones that appear later (a container's veth),
//! past them a new interface is left out. A missing reading is NaN,
//! written as `null`.
//!
//! CPU and network figures are over the time since the ring's previous
//! sample, from the counters themselves (the metrics answer's own may
//! be over a shorter window, between two requests), so each sample
//! describes its whole second.

pub mod families;

use crate::collect::{cpu, gpu, MetricsSample};
use crate::protocol::{gzip::Gzip, Answer};
use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::time::{Duration, Instant};
use tungstenite::Utf8Bytes;

/// One sample a second.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Interface slots kept beyond those the first sample saw.
const SPARE_INTERFACES: usize = 4;
/// Most interface slots (a host with hundreds of veths keeps the first).
const MAX_INTERFACES: usize = 64;

/// A slot's fixed readings (NaN: none).
#[derive(Debug, Clone, Copy)]
struct Fixed {
    at_ms: u64,
    cpu_total: f32,
    mem_used: u64,
    swap_used: u64,
    disk_read: f32,
    disk_write: f32,
    cpu_temp_c: f32,
    freq_avg_mhz: f32,
    psi_cpu: f32,
    psi_memory: f32,
    psi_io: f32,
}

impl Fixed {
    /// A slot not yet written.
    const EMPTY: Fixed = Fixed {
        at_ms: 0,
        cpu_total: f32::NAN,
        mem_used: 0,
        swap_used: 0,
        disk_read: f32::NAN,
        disk_write: f32::NAN,
        cpu_temp_c: f32::NAN,
        freq_avg_mhz: f32::NAN,
        psi_cpu: f32::NAN,
        psi_memory: f32::NAN,
        psi_io: f32::NAN,
    };
}

/// The counters the next sample's rates are taken against.
struct Base {
    at: Instant,
    stat: cpu::StatSample,
    /// Per interface slot: (received, transmitted); `None` where the
    /// interface was absent.
    nets: Vec<Option<(u64, u64)>>,
}

/// How many of each variable reading a slot holds.
#[derive(Debug, Clone, Copy)]
struct Dims {
    cores: usize,
    interfaces: usize,
    gpus: usize,
}

impl Dims {
    fn stride(&self) -> usize {
        self.cores + 2 * self.interfaces + 2 * self.gpus
    }
}

struct Ring {
    /// Slots (the `--history` seconds).
    cap: usize,
    dims: Dims,
    fixed: Vec<Fixed>,
    vars: Vec<f64>,
    /// The slot the next sample goes to, and how many are filled.
    head: usize,
    len: usize,
    interfaces: Vec<String>,
    gpus: Vec<String>,
    mem_total: u64,
    swap_total: u64,
    base: Base,
    /// Scratch for each core's busy % (kept: no allocation per sample).
    per_core: Vec<f32>,
}

pub struct History {
    capacity: usize,
    /// Sized at the first sample (see the module's header).
    ring: Option<Ring>,
    /// Samples taken so far: what the ring holds changes only with it.
    ticks: u64,
}

fn nan_of(v: Option<f32>) -> f32 {
    v.unwrap_or(f32::NAN)
}

/// `v` rounded to 2 decimals (the JSON stays short).
fn r2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

impl History {
    /// A ring of `seconds` samples; nothing is allocated until the first.
    pub fn new(seconds: u32) -> Self {
        History {
            capacity: seconds as usize,
            ring: None,
            ticks: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples held now.
    pub fn len(&self) -> usize {
        self.ring.as_ref().map_or(0, |r| r.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's memory, bytes (0 before the first sample).
    pub fn bytes(&self) -> usize {
        self.ring.as_ref().map_or(0, Ring::bytes)
    }

    /// When the last sample the ring took (or based on) was collected.
    pub fn last_at(&self) -> Option<Instant> {
        self.ring.as_ref().map(|r| r.base.at)
    }

    /// Takes one metrics sample: the first sizes the ring and becomes the
    /// base of the next; each later one is recorded.
    pub fn record(&mut self, m: &MetricsSample, gpus: Option<&[gpu::Gpu]>) {
        let Some(at) = m.at else { return };
        self.ticks += 1;
        let ring = match &mut self.ring {
            Some(r) => r,
            None => {
                let r = Ring::new(self.capacity, m, gpus, at);
                log::info!(
                    "history: {} samples of {} s, {} KiB ({} cores, {} interface slots, {} GPUs)",
                    self.capacity,
                    INTERVAL.as_secs(),
                    r.bytes().div_ceil(1024),
                    r.dims.cores,
                    r.dims.interfaces,
                    r.dims.gpus
                );
                self.ring = Some(r);
                return;
            }
        };
        ring.push(m, gpus, at);
    }

    /// Samples taken so far (an answer encoded at one count is the answer
    /// until the next).
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// How many samples are newer than `since_ms`: two requests with the
    /// same count get the same answer.
    pub fn newer_than(&self, since_ms: Option<u64>) -> usize {
        let since = since_ms.unwrap_or(0);
        self.ring.as_ref().map_or(0, |r| {
            r.order()
                .filter(|&i| r.fixed.get(i).is_some_and(|f| f.at_ms > since))
                .count()
        })
    }

    /// The `history` answer's JSON shape, samples newer than `since_ms`.
    pub fn view(&self, since_ms: Option<u64>) -> View<'_> {
        View {
            history: self,
            since_ms: since_ms.unwrap_or(0),
        }
    }
}

impl Ring {
    fn new(capacity: usize, m: &MetricsSample, gpus: Option<&[gpu::Gpu]>, at: Instant) -> Ring {
        let gpus = gpus.unwrap_or_default();
        let dims = Dims {
            cores: m.stat.cores.len(),
            interfaces: (m.nets.len() + SPARE_INTERFACES).min(MAX_INTERFACES),
            gpus: gpus.len(),
        };
        let capacity = capacity.max(1);
        let mut r = Ring {
            cap: capacity,
            dims,
            // written whole now (NaN is not zero bytes, so no page is left
            // for later): see the module's header
            fixed: vec![Fixed::EMPTY; capacity],
            vars: vec![f64::NAN; capacity * dims.stride()],
            head: 0,
            len: 0,
            interfaces: Vec::with_capacity(dims.interfaces),
            gpus: gpus.iter().map(|g| g.name.clone()).collect(),
            mem_total: m.mem.mem_total,
            swap_total: m.mem.swap_total,
            base: Base {
                at,
                stat: m.stat.clone(),
                nets: vec![None; dims.interfaces],
            },
            per_core: Vec::with_capacity(dims.cores),
        };
        for n in &m.nets {
            if let Some(i) = r.slot_of(&n.name) {
                if let Some(b) = r.base.nets.get_mut(i) {
                    *b = Some((n.received, n.transmitted));
                }
            }
        }
        r
    }

    /// Its memory, bytes (allocated and written at its first sample).
    fn bytes(&self) -> usize {
        self.fixed.capacity() * std::mem::size_of::<Fixed>()
            + self.vars.capacity() * std::mem::size_of::<f64>()
    }

    /// The slot of interface `name`, a free one taken if it is new.
    fn slot_of(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.interfaces.iter().position(|n| n == name) {
            return Some(i);
        }
        if self.interfaces.len() < self.dims.interfaces {
            self.interfaces.push(name.to_string());
            return Some(self.interfaces.len() - 1);
        }
        None
    }

    fn push(&mut self, m: &MetricsSample, gpus: Option<&[gpu::Gpu]>, at: Instant) {
        let secs = at.saturating_duration_since(self.base.at).as_secs_f64();
        if secs <= 0.0 {
            return; // the same sample again
        }
        let fixed = self.fixed_of(m);
        if let Some(f) = self.fixed.get_mut(self.head) {
            *f = fixed;
        }
        let start = self.head * self.dims.stride();
        self.push_cores(m, start);
        self.push_nets(m, start, secs);
        self.push_gpus(gpus, start);
        self.base.stat.clone_from(&m.stat);
        self.base.at = at;
        self.mem_total = m.mem.mem_total;
        self.swap_total = m.mem.swap_total;
        self.head = (self.head + 1) % self.cap;
        self.len = (self.len + 1).min(self.cap);
    }

    /// The fixed-width columns of sample `m`.
    fn fixed_of(&self, m: &MetricsSample) -> Fixed {
        let b = &m.board;
        let freqs = b.cpufreq.cores.iter().filter_map(|c| c.khz);
        let (n, sum) = freqs.fold((0u32, 0u64), |(n, s), k| (n + 1, s + k));
        let avg10 = |psi: Option<crate::collect::pressure::Psi>| {
            nan_of(psi.and_then(|p| p.some).map(|l| l.avg10 as f32))
        };
        let disk = |f: fn(&crate::collect::diskstats::DiskIo) -> Option<f64>| {
            if !m.disk_io.ok {
                return f32::NAN;
            }
            m.disk_io
                .rows
                .iter()
                .map(f)
                .try_fold(0.0, |acc, r| r.map(|r| acc + r))
                .map_or(f32::NAN, |v| v as f32)
        };
        Fixed {
            at_ms: m.sampled_at_ms,
            cpu_total: m.stat.all.busy_pct_since(&self.base.stat.all),
            mem_used: m.mem.mem_used,
            swap_used: m.mem.swap_used,
            disk_read: disk(|d| d.read_bytes_per_s.per_s),
            disk_write: disk(|d| d.write_bytes_per_s.per_s),
            cpu_temp_c: nan_of(m.cpu_temp_c),
            freq_avg_mhz: if n > 0 {
                (sum as f64 / f64::from(n) / 1000.0) as f32
            } else {
                f32::NAN
            },
            psi_cpu: b.pressure.as_ref().map_or(f32::NAN, |p| avg10(p.cpu)),
            psi_memory: b.pressure.as_ref().map_or(f32::NAN, |p| avg10(p.memory)),
            psi_io: b.pressure.as_ref().map_or(f32::NAN, |p| avg10(p.io)),
        }
    }

    /// Clears the variable columns of the slot at `start` and writes the
    /// per-core busy percentages into it.
    fn push_cores(&mut self, m: &MetricsSample, start: usize) {
        cpu::per_core_pct(&m.stat, &self.base.stat, &mut self.per_core);
        let stride = self.dims.stride();
        if let Some(slot) = self.vars.get_mut(start..start + stride) {
            slot.fill(f64::NAN);
            for (v, p) in slot
                .iter_mut()
                .zip(self.per_core.iter().take(self.dims.cores))
            {
                *v = f64::from(r2(*p));
            }
        }
    }

    /// Writes each interface's receive and transmit rates since its base.
    fn push_nets(&mut self, m: &MetricsSample, start: usize, secs: f64) {
        let Dims {
            cores, interfaces, ..
        } = self.dims;
        // Interfaces absent from this sample lose their base.
        let mut seen = [false; MAX_INTERFACES];
        for nd in &m.nets {
            let Some(i) = self.slot_of(&nd.name) else {
                continue;
            };
            if let Some(s) = seen.get_mut(i) {
                *s = true;
            }
            let now = (nd.received, nd.transmitted);
            let Some(base) = self.base.nets.get_mut(i) else {
                continue;
            };
            if let Some((rx0, tx0)) = base.replace(now) {
                let rate = |a: u64, b: u64| {
                    a.checked_sub(b)
                        .map_or(f64::NAN, |d| (d as f64 / secs * 10.0).round() / 10.0)
                };
                let rx = start + cores + i;
                if let Some(v) = self.vars.get_mut(rx) {
                    *v = rate(now.0, rx0);
                }
                if let Some(v) = self.vars.get_mut(rx + interfaces) {
                    *v = rate(now.1, tx0);
                }
            }
        }
        for (b, s) in self.base.nets.iter_mut().zip(seen) {
            if !s {
                *b = None;
            }
        }
    }

    /// Writes each GPU's usage and memory in use.
    fn push_gpus(&mut self, gpus: Option<&[gpu::Gpu]>, start: usize) {
        let g0 = start + self.dims.cores + 2 * self.dims.interfaces;
        for (i, g) in gpus
            .unwrap_or_default()
            .iter()
            .take(self.dims.gpus)
            .enumerate()
        {
            if let Some(v) = self.vars.get_mut(g0 + i) {
                *v = g.usage.map_or(f64::NAN, f64::from);
            }
            if let Some(v) = self.vars.get_mut(g0 + self.dims.gpus + i) {
                *v = g.memory_used.map_or(f64::NAN, |b| b as f64);
            }
        }
    }

    /// Slot indexes, oldest first.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let cap = self.cap;
        let first = (self.head + cap - self.len) % cap;
        (0..self.len).map(move |i| (first + i) % cap)
    }
}

/// History answers encoded since the ring's last tick, by (ticks, samples
/// included, gzip): every request in one tick that would get the same
/// answer shares one buffer (`Answers::history_answer`).
#[derive(Default)]
pub struct Encoded(Vec<((u64, usize, bool), Answer)>);

/// Encodings kept: a tick's usual requests are the whole ring, plain or
/// gzipped, and clients' since-last-time asks; more distinct ones in one
/// tick replace the oldest, and none outlives its tick.
const ENCODED: usize = 4;

impl Encoded {
    /// The `history` answer: JSON text, or gzipped into a binary frame.
    /// Encoded at most once per tick for each set of samples and gzip
    /// flag; a burst of requests costs one encoding and one buffer.
    pub fn answer(
        &mut self,
        h: &History,
        since_ms: Option<u64>,
        gzip: bool,
        z: &mut Gzip,
    ) -> Answer {
        let key = (h.ticks(), h.newer_than(since_ms), gzip);
        self.0.retain(|(k, _)| k.0 == key.0);
        if let Some((_, a)) = self.0.iter().find(|(k, _)| *k == key) {
            return a.clone();
        }
        let mut json = Vec::with_capacity(256 + h.len() * 320);
        if let Err(e) = serde_json::to_writer(&mut json, &h.view(since_ms)) {
            log::error!("JSON encoding: {e}");
        }
        let a = if gzip {
            let mut out = Vec::with_capacity(json.len() / 6 + 64);
            z.compress(&json, &mut out);
            Answer::Binary(Bytes::from(out))
        } else {
            Answer::Text(Utf8Bytes::try_from(Bytes::from(json)).unwrap_or_default())
        };
        if self.0.len() >= ENCODED {
            self.0.remove(0);
        }
        self.0.push((key, a.clone()));
        a
    }
}

/// The `history` answer (see the README's "history").
pub struct View<'a> {
    history: &'a History,
    since_ms: u64,
}

/// A run of a slot's numbers, written as a JSON array (NaN as null).
struct Nums<'a>(&'a [f64]);

impl Serialize for Nums<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|v| v.is_finite().then_some(*v)))
    }
}

/// Percentages, written as f32 (the metrics answer's precision).
struct Pcts<'a>(&'a [f64]);

impl Serialize for Pcts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|v| v.is_finite().then_some(*v as f32)))
    }
}

fn opt(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}

struct SampleOut<'a> {
    f: &'a Fixed,
    vars: &'a [f64],
    dims: Dims,
    /// Interface slots with a name (the rest are spare).
    named: usize,
}

impl Serialize for SampleOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Dims {
            cores,
            interfaces: n,
            gpus: g,
        } = self.dims;
        let part = |from: usize, len: usize| Nums(self.vars.get(from..from + len).unwrap_or(&[]));
        let f = self.f;
        let mut m = s.serialize_map(Some(16))?;
        m.serialize_entry("sampled_at_ms", &f.at_ms)?;
        m.serialize_entry("cpu_total", &r2(f.cpu_total))?;
        m.serialize_entry("cpu_per_core", &Pcts(self.vars.get(..cores).unwrap_or(&[])))?;
        m.serialize_entry("mem_used", &f.mem_used)?;
        m.serialize_entry("swap_used", &f.swap_used)?;
        m.serialize_entry("net_rx_bytes_per_s", &part(cores, self.named))?;
        m.serialize_entry("net_tx_bytes_per_s", &part(cores + n, self.named))?;
        m.serialize_entry("disk_read_bytes_per_s", &opt(f.disk_read))?;
        m.serialize_entry("disk_write_bytes_per_s", &opt(f.disk_write))?;
        m.serialize_entry("cpu_temp_c", &opt(f.cpu_temp_c))?;
        m.serialize_entry(
            "gpu_usage",
            &Pcts(
                self.vars
                    .get(cores + 2 * n..cores + 2 * n + g)
                    .unwrap_or(&[]),
            ),
        )?;
        m.serialize_entry("gpu_memory_used", &part(cores + 2 * n + g, g))?;
        m.serialize_entry("cpu_freq_avg_mhz", &opt(f.freq_avg_mhz.round()))?;
        m.serialize_entry("psi_cpu_some_avg10", &opt(f.psi_cpu))?;
        m.serialize_entry("psi_memory_some_avg10", &opt(f.psi_memory))?;
        m.serialize_entry("psi_io_some_avg10", &opt(f.psi_io))?;
        m.end()
    }
}

struct Samples<'a>(&'a Ring, u64);

impl Serialize for Samples<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, since) = (self.0, self.1);
        let stride = r.dims.stride();
        let mut seq = s.serialize_seq(None)?;
        for i in r.order() {
            let Some(f) = r.fixed.get(i) else { continue };
            if f.at_ms <= since {
                continue;
            }
            let vars = r.vars.get(i * stride..(i + 1) * stride).unwrap_or(&[]);
            seq.serialize_element(&SampleOut {
                f,
                vars,
                dims: r.dims,
                named: r.interfaces.len(),
            })?;
        }
        seq.end()
    }
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.history;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("interval_ms", &(INTERVAL.as_millis() as u64))?;
        m.serialize_entry("capacity", &h.capacity)?;
        match &h.ring {
            Some(r) => {
                m.serialize_entry("mem_total", &r.mem_total)?;
                m.serialize_entry("swap_total", &r.swap_total)?;
                m.serialize_entry("interfaces", &r.interfaces)?;
                m.serialize_entry("gpus", &r.gpus)?;
                m.serialize_entry("samples", &Samples(r, self.since_ms))?;
            }
            None => {
                m.serialize_entry("mem_total", &None::<u64>)?;
                m.serialize_entry("swap_total", &None::<u64>)?;
                m.serialize_entry("interfaces", &[0u8; 0])?;
                m.serialize_entry("gpus", &[0u8; 0])?;
                m.serialize_entry("samples", &[0u8; 0])?;
            }
        }
        m.end()
    }
}
