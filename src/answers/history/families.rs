//! The ring's readings as metric families: named once here, described
//! slot by slot (`Slot::describe`) for both `/metrics` (the latest slot)
//! and remote-write (every second not yet sent, oldest first).
//!
//! The ring keeps machine totals for disk I/O, so the disk families have no
//! `device` label; cores are labelled by their position in `/proc/stat`
//! (`cpu="0"` …), interfaces and GPUs as the ring names them.

use super::{History, Ring, INTERVAL};
use crate::families::{Family, Sink, Value};

pub static CPU_BUSY: Family = Family::gauge(
    "sockagent_cpu_busy_percent",
    "CPU busy % over the last second, 0-100: the whole machine, and each core ({cpu}).",
);
pub static MEMORY_USED: Family = Family::gauge(
    "sockagent_memory_used_bytes",
    "Memory in use (total less available).",
);
pub static SWAP_USED: Family = Family::gauge("sockagent_swap_used_bytes", "Swap in use.");
pub static NET_RX: Family = Family::gauge(
    "sockagent_network_receive_bytes_per_second",
    "Bytes received over the last second, per interface.",
);
pub static NET_TX: Family = Family::gauge(
    "sockagent_network_transmit_bytes_per_second",
    "Bytes transmitted over the last second, per interface.",
);
pub static DISK_READ: Family = Family::gauge(
    "sockagent_disk_read_bytes_per_second",
    "Bytes read over the last second, all whole disks together.",
);
pub static DISK_WRITTEN: Family = Family::gauge(
    "sockagent_disk_written_bytes_per_second",
    "Bytes written over the last second, all whole disks together.",
);
pub static CPU_TEMP: Family = Family::gauge(
    "sockagent_cpu_temperature_celsius",
    "CPU temperature (package, or the hottest CPU sensor).",
);
pub static CPU_FREQ: Family = Family::gauge(
    "sockagent_cpu_frequency_average_hertz",
    "Average current frequency of the cores.",
);
pub static PRESSURE: Family = Family::gauge(
    "sockagent_pressure_some_avg10_percent",
    "PSI: % of the last 10 s some task stalled on the resource ({resource}).",
);
pub static GPU_BUSY: Family = Family::gauge(
    "sockagent_gpu_busy_percent",
    "GPU busy % over the last second, 0-100, per GPU ({gpu}).",
);
pub static GPU_MEMORY: Family = Family::gauge(
    "sockagent_gpu_memory_in_use_bytes",
    "GPU memory in use over the last second, per GPU ({gpu}).",
);

/// Every family the ring describes (remote-write pushes these from the
/// ring, second by second, and leaves them out of the scrape's families).
pub static ALL: [&Family; 12] = [
    &CPU_BUSY,
    &MEMORY_USED,
    &SWAP_USED,
    &NET_RX,
    &NET_TX,
    &DISK_READ,
    &DISK_WRITTEN,
    &CPU_TEMP,
    &CPU_FREQ,
    &PRESSURE,
    &GPU_BUSY,
    &GPU_MEMORY,
];

/// One slot of the ring, read-only.
#[derive(Clone, Copy)]
pub struct Slot<'a> {
    ring: &'a Ring,
    i: usize,
}

impl History {
    /// The slots taken after `after_ms` (ms since the epoch), oldest first.
    pub fn slots_after(&self, after_ms: u64) -> impl Iterator<Item = Slot<'_>> + '_ {
        self.ring.iter().flat_map(move |r| {
            r.order()
                .filter(move |&i| r.fixed.get(i).is_some_and(|f| f.at_ms > after_ms))
                .map(move |i| Slot { ring: r, i })
        })
    }

    /// The newest slot.
    pub fn latest(&self) -> Option<Slot<'_>> {
        let r = self.ring.as_ref()?;
        (r.len > 0).then(|| Slot {
            ring: r,
            i: (r.head + r.cap - 1) % r.cap,
        })
    }

    /// The oldest slot's time, ms since the epoch.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.slots_after(0).next().map(|s| s.at_ms())
    }

    /// Whether the ring holds as many seconds as it can (the next sample
    /// overwrites the oldest).
    pub fn is_full(&self) -> bool {
        self.ring.as_ref().is_some_and(|r| r.len == r.cap)
    }

    /// Its period between slots, ms.
    pub fn interval_ms(&self) -> u64 {
        INTERVAL.as_millis() as u64
    }
}

/// Opens `f` the first time a sample of it is written.
struct Lazy<'s> {
    out: &'s mut dyn Sink,
    open: Option<&'static str>,
}

impl Lazy<'_> {
    fn put(&mut self, f: &'static Family, labels: &[(&str, &str)], v: f64) {
        if !v.is_finite() {
            return; // not read this second
        }
        if self.open != Some(f.name) {
            f.open(self.out);
            self.open = Some(f.name);
        }
        self.out.sample(labels, Value::F(v));
    }
}

impl Slot<'_> {
    /// When it was taken, ms since the epoch.
    pub fn at_ms(&self) -> u64 {
        self.ring.fixed.get(self.i).map_or(0, |f| f.at_ms)
    }

    fn vars(&self, from: usize, len: usize) -> &[f64] {
        let start = self.i * self.ring.dims.stride() + from;
        self.ring.vars.get(start..start + len).unwrap_or(&[])
    }

    /// Its readings, family by family; a family with no reading this
    /// second is not opened.
    pub fn describe(&self, out: &mut dyn Sink) {
        let r = self.ring;
        let Some(f) = r.fixed.get(self.i) else { return };
        let d = r.dims;
        let mut o = Lazy { out, open: None };
        let mut n = itoa::Buffer::new();
        o.put(&CPU_BUSY, &[], f64::from(f.cpu_total));
        for (i, v) in self.vars(0, d.cores).iter().enumerate() {
            o.put(&CPU_BUSY, &[("cpu", n.format(i))], *v);
        }
        o.put(&MEMORY_USED, &[], f.mem_used as f64);
        o.put(&SWAP_USED, &[], f.swap_used as f64);
        let named = r.interfaces.len();
        for (fam, from) in [(&NET_RX, d.cores), (&NET_TX, d.cores + d.interfaces)] {
            for (name, v) in r.interfaces.iter().zip(self.vars(from, named)) {
                o.put(fam, &[("device", name)], *v);
            }
        }
        o.put(&DISK_READ, &[], f64::from(f.disk_read));
        o.put(&DISK_WRITTEN, &[], f64::from(f.disk_write));
        o.put(&CPU_TEMP, &[], f64::from(f.cpu_temp_c));
        o.put(&CPU_FREQ, &[], f64::from(f.freq_avg_mhz) * 1e6);
        for (res, v) in [
            ("cpu", f.psi_cpu),
            ("io", f.psi_io),
            ("memory", f.psi_memory),
        ] {
            o.put(&PRESSURE, &[("resource", res)], f64::from(v));
        }
        let g0 = d.cores + 2 * d.interfaces;
        for (fam, from) in [(&GPU_BUSY, g0), (&GPU_MEMORY, g0 + d.gpus)] {
            for (i, v) in self.vars(from, d.gpus).iter().enumerate() {
                let name = r.gpus.get(i).map_or("", String::as_str);
                o.put(fam, &[("gpu", n.format(i)), ("name", name)], *v);
            }
        }
    }
}
