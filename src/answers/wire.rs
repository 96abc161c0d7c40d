//! The wire shapes of the JSON answers (README, "Requests"): borrowed
//! views over the typed samples, serialized without copying them.

use crate::collect::{
    cgroups::CgroupRow, cpufreq::CoreFreq, diskstats::DiskIo, gpu, net, power::Battery,
    pressure::Pressure, process_detail::Detail, sensors::Fan, throttle::Throttling, MetricsSample,
};
use serde::Serialize;
use std::time::Instant;

/// The wire shape of the `metrics` answer (README, "metrics").
#[derive(Serialize)]
pub struct MetricsOut<'a> {
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
pub struct DetailOut<'a> {
    pub process: &'a Detail,
    pub cached_at: u64,
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
pub struct CgroupsOut<'a>(pub &'a [CgroupRow]);

impl Serialize for CgroupsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(CgroupOut::from))
    }
}

impl<'a> MetricsOut<'a> {
    /// The answer's view of sample `m` (taken `now` or before) and the GPUs.
    pub fn of(m: &'a MetricsSample, gpus: Option<&'a [gpu::Gpu]>, now: Instant) -> Self {
        let b = &m.board;
        MetricsOut {
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
        }
    }
}
