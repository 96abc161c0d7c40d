//! The ring's readings as metric families: named once here, described
//! slot by slot (`Slot::describe`) for both `/metrics` (the latest slot)
//! and remote-write (every second not yet sent, oldest first).
//!
//! The ring keeps machine totals for disk I/O, so the disk families have no
//! `device` label; cores are labelled by their position in `/proc/stat`
//! (`cpu="0"` …), interfaces and GPUs as the ring names them.

use super::{History, Ring, INTERVAL};
// The scrape's own family (the metrics answer's reading), pushed second by
// second from the ring; `/metrics` lists it once, the scrape's way
// (`describe_scrape` leaves it out here).
use crate::answers::prom::CPU_TEMPERATURE as CPU_TEMP;
use crate::families::{Family, Sink, Value};

crate::families::declare! {
    pub CPU_BUSY = gauge("sockagent_cpu_busy_percent", "CPU busy % over the last second, 0-100: the whole machine, and each core ({cpu}).");
    pub MEMORY_USED = gauge("sockagent_memory_used_bytes", "Memory in use (total less available).");
    pub SWAP_USED = gauge("sockagent_swap_used_bytes", "Swap in use.");
    pub NET_RX = gauge("sockagent_network_receive_bytes_per_second", "Bytes received over the last second, per interface.");
    pub NET_TX = gauge("sockagent_network_transmit_bytes_per_second", "Bytes transmitted over the last second, per interface.");
    pub DISK_READ = gauge("sockagent_disk_read_bytes_per_second", "Bytes read over the last second, all whole disks together.");
    pub DISK_WRITTEN = gauge("sockagent_disk_written_bytes_per_second", "Bytes written over the last second, all whole disks together.");
    pub CPU_FREQ = gauge("sockagent_cpu_frequency_average_hertz", "Average current frequency of the cores.");
    pub PRESSURE = gauge("sockagent_pressure_some_avg10_percent", "PSI: % of the last 10 s some task stalled on the resource ({resource}).");
    pub GPU_BUSY = gauge("sockagent_gpu_busy_percent", "GPU busy % over the last second, 0-100, per GPU ({gpu}).");
    pub GPU_MEMORY = gauge("sockagent_gpu_memory_in_use_bytes", "GPU memory in use over the last second, per GPU ({gpu}).");
}

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
    fn put(&mut self, f: &'static Family, labels: &[(&str, &str)], v: impl Into<Value>) {
        let v = v.into();
        if !v.as_f64().is_finite() {
            return; // not read this second
        }
        if self.open != Some(f.name) {
            f.open(self.out);
            self.open = Some(f.name);
        }
        self.out.sample(labels, v);
    }
}

/// `out`, less the samples of one family (listed elsewhere).
struct Except<'s> {
    out: &'s mut dyn Sink,
    name: &'static str,
    skipping: bool,
}

impl Sink for Except<'_> {
    fn family(&mut self, name: &str, help: &str, kind: crate::families::Kind) {
        self.skipping = name == self.name;
        if !self.skipping {
            self.out.family(name, help, kind);
        }
    }

    fn sample(&mut self, labels: &[(&str, &str)], v: Value) {
        if !self.skipping {
            self.out.sample(labels, v);
        }
    }
}

impl Slot<'_> {
    /// Its readings for `/metrics`: those the scrape does not list itself
    /// (the CPU temperature is the scrape's).
    pub fn describe_scrape(&self, out: &mut dyn Sink) {
        self.describe(&mut Except {
            out,
            name: CPU_TEMP.name,
            skipping: false,
        });
    }

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
        // percentages were f32 readings (kept widened): written as such
        o.put(&CPU_BUSY, &[], super::r2(f.cpu_total));
        for (i, v) in self.vars(0, d.cores).iter().enumerate() {
            o.put(&CPU_BUSY, &[("cpu", n.format(i))], *v as f32);
        }
        o.put(&MEMORY_USED, &[], f.mem_used);
        o.put(&SWAP_USED, &[], f.swap_used);
        let named = r.interfaces.len();
        for (fam, from) in [(&NET_RX, d.cores), (&NET_TX, d.cores + d.interfaces)] {
            for (name, v) in r.interfaces.iter().zip(self.vars(from, named)) {
                o.put(fam, &[("device", name)], *v);
            }
        }
        o.put(&DISK_READ, &[], f.disk_read.round());
        o.put(&DISK_WRITTEN, &[], f.disk_write.round());
        o.put(&CPU_TEMP, &[], f.cpu_temp_c);
        o.put(&CPU_FREQ, &[], (f64::from(f.freq_avg_mhz) * 1e6).round());
        for (res, v) in [
            ("cpu", f.psi_cpu),
            ("io", f.psi_io),
            ("memory", f.psi_memory),
        ] {
            o.put(&PRESSURE, &[("resource", res)], v);
        }
        let g0 = d.cores + 2 * d.interfaces;
        // busy % goes out as an f32 reading (its shortest form), memory as f64
        let busy: fn(f64) -> Value = |v| Value::F32(v as f32);
        for (fam, from, value) in [(&GPU_BUSY, g0, busy), (&GPU_MEMORY, g0 + d.gpus, Value::F)] {
            for (i, v) in self.vars(from, d.gpus).iter().enumerate() {
                let name = r.gpus.get(i).map_or("", String::as_str);
                o.put(fam, &[("gpu", n.format(i)), ("name", name)], value(*v));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::collect::{cpu::CpuTicks, net::NetDev, MetricsSample};
    use crate::families::Kind;
    use std::time::{Duration, Instant};

    /// What a sink is told, as text lines.
    #[derive(Default)]
    struct Lines(Vec<String>);

    impl Sink for Lines {
        fn family(&mut self, name: &str, _: &str, _: Kind) {
            self.0.push(name.to_string());
        }
        fn sample(&mut self, labels: &[(&str, &str)], v: Value) {
            self.0.push(format!("  {labels:?} {}", v.as_f64()));
        }
    }

    /// The k-th sample: every counter grows by k, half of it idle.
    pub(crate) fn sample(t0: Instant, k: u64) -> MetricsSample {
        let ticks = |n| CpuTicks {
            total: 100 * n,
            idle: 50 * n,
        };
        let mut m = MetricsSample {
            at: Some(t0 + Duration::from_secs(k)),
            sampled_at_ms: 1_000_000 + 1000 * k,
            ..MetricsSample::default()
        };
        m.stat.all = ticks(k);
        m.stat.cores = vec![(0, ticks(k)), (1, ticks(k))];
        m.mem.mem_used = 4096;
        m.cpu_temp_c = Some(55.5);
        m.nets = vec![NetDev {
            name: "eth0".into(),
            received: 1000 * k,
            ..NetDev::default()
        }];
        m
    }

    #[test]
    fn slots_oldest_first_and_described_by_family() {
        let t0 = Instant::now();
        let mut h = History::new(2);
        assert!(h.latest().is_none() && h.oldest_ms().is_none());
        for k in 0..=3 {
            h.record(&sample(t0, k), None);
        }
        // three slots taken, two kept: the ring is full
        assert!(h.is_full());
        let at: Vec<u64> = h.slots_after(0).map(|s| s.at_ms()).collect();
        assert_eq!(at, [1_002_000, 1_003_000]);
        assert_eq!(h.slots_after(1_002_000).count(), 1);
        assert_eq!(h.oldest_ms(), Some(1_002_000));
        let mut out = Lines::default();
        h.latest().unwrap().describe(&mut out);
        let text = out.0.join("\n");
        let want = "sockagent_cpu_busy_percent\n  [] 50\n  [(\"cpu\", \"0\")] 50\n  [(\"cpu\", \"1\")] 50\n\
                    sockagent_memory_used_bytes\n  [] 4096\nsockagent_swap_used_bytes\n  [] 0\n\
                    sockagent_network_receive_bytes_per_second\n  [(\"device\", \"eth0\")] 1000\n\
                    sockagent_network_transmit_bytes_per_second\n  [(\"device\", \"eth0\")] 0";
        assert!(text.starts_with(want), "{text}");
        // no reading, no family: no disks, clocks, PSI or GPUs here
        assert!(!text.contains("disk") && !text.contains("gpu"), "{text}");
        assert!(
            text.ends_with("sockagent_cpu_temperature_celsius\n  [] 55.5"),
            "{text}"
        );
        // the scrape lists the temperature itself
        let mut scrape = Lines::default();
        h.latest().unwrap().describe_scrape(&mut scrape);
        assert_eq!(scrape.0.len(), out.0.len() - 2);
        assert!(!scrape.0.join("\n").contains("temperature"));
        for f in ALL {
            assert!(crate::protocol::prom::valid_name(f.name));
        }
    }

    /// What a sink is told, values as they are typed.
    #[derive(Default)]
    struct Typed(Vec<(String, Value)>);

    impl Sink for Typed {
        fn family(&mut self, name: &str, _: &str, _: Kind) {
            self.0.push((name.to_string(), Value::U(0)));
        }
        fn sample(&mut self, _: &[(&str, &str)], v: Value) {
            let name = self.0.last().map(|(n, _)| n.clone()).unwrap_or_default();
            self.0.push((name, v));
        }
    }

    #[test]
    fn gpu_busy_goes_out_as_its_f32_reading_and_memory_as_f64() {
        let t0 = Instant::now();
        let gpu = crate::collect::gpu::Gpu {
            name: "gpu0".into(),
            vendor: "nvidia",
            usage: Some(49.925),
            memory_total: Some(1 << 30),
            memory_used: Some(123_456_789),
            temp_c: None,
        };
        let mut h = History::new(2);
        for k in 0..=2 {
            h.record(&sample(t0, k), Some(std::slice::from_ref(&gpu)));
        }
        let mut out = Typed::default();
        h.latest().unwrap().describe(&mut out);
        let value = |family: &str| {
            let mut v = out.0.iter().filter(|(n, _)| n == family);
            v.next(); // the family itself
            v.next().map(|(_, v)| *v)
        };
        assert_eq!(value(GPU_BUSY.name), Some(Value::F32(49.925)));
        assert_eq!(value(GPU_MEMORY.name), Some(Value::F(123_456_789.0)));
    }
}
