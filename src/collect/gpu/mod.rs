//! GPUs: NVIDIA through NVML (loaded at run time, feature `gpu`), AMD and
//! Intel through DRM sysfs (no libdrm), NVIDIA Jetson boards through their
//! GPU's `load` file.
//!
//! Probing (loading NVML, listing DRM cards) is done at start-up and again
//! in each new re-probe epoch of the metrics collector (the one clock
//! `collector::Kept` keeps), so a driver loaded after start is found; a sample reads
//! only what the probe found, and is cached for `TTL`. Nothing here runs
//! when `SOCKTOP_AGENT_GPU=0`.

pub mod drm;
pub mod jetson;
#[cfg(feature = "gpu")]
pub mod nvml;

use super::collector::Settings;
use super::fs::Root;
use crate::families::{Family, Sink, Value};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::time::{Duration, Instant};

/// GPU readings are reused this long (the reference agent's window): NVML
/// calls are the costliest part of a metrics answer.
pub const TTL: Duration = Duration::from_millis(1500);

/// A sample slower than this is logged (at debug), since it holds the loop.
pub const SLOW_SAMPLE: Duration = Duration::from_millis(50);

/// The NVML library opened when no path is configured: the soname every
/// driver package installs (the unversioned `.so` lives in -dev packages).
pub const DEFAULT_NVML_LIB: &str = "libnvidia-ml.so.1";

/// One GPU's reading. What the driver does not expose is `None` (null on
/// the wire), never 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    pub name: String,
    /// "nvidia", "amd", "intel".
    pub vendor: &'static str,
    /// Busy %, 0..100.
    pub usage: Option<f32>,
    pub memory_total: Option<u64>,
    pub memory_used: Option<u64>,
    pub temp_c: Option<f32>,
}

/// The guide's keys and the ones the real TUI reads (`utilization`,
/// `mem_total`, `mem_used`), once each: the connector maps its other
/// aliases (`temp`, `mem_used_bytes`...) onto the same fields and fails on
/// a duplicate, so no other alias is written.
impl Serialize for Gpu {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Gpu", 9)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("vendor", self.vendor)?;
        st.serialize_field("usage", &self.usage)?;
        st.serialize_field("memory_total", &self.memory_total)?;
        st.serialize_field("memory_used", &self.memory_used)?;
        st.serialize_field("temp_c", &self.temp_c)?;
        st.serialize_field("utilization", &self.usage)?;
        st.serialize_field("mem_total", &self.memory_total)?;
        st.serialize_field("mem_used", &self.memory_used)?;
        st.end()
    }
}

/// The GPU collector: the probe's findings and the cached list.
pub struct Gpus {
    /// `SOCKTOP_AGENT_GPU` (off: no probing at all, `gpus` is null).
    enabled: bool,
    /// `SOCKTOP_AGENT_TEMP` (off: `temp_c` is null).
    temps: bool,
    root: Root,
    #[cfg(feature = "gpu")]
    nvidia: nvml::Nvidia,
    cards: Vec<drm::Card>,
    jetson: Option<jetson::Jetson>,
    /// The re-probe epoch of the last probe.
    probed: Option<u64>,
    list: Vec<Gpu>,
    sampled_at: Option<Instant>,
}

impl Gpus {
    /// Probes at once (when enabled), so the first answer does not pay for
    /// loading NVML and the log says what was found at start; `epoch`: the
    /// re-probe epoch it counts as done in. `s.nvml_lib`: the NVML library
    /// to open instead of `DEFAULT_NVML_LIB` (ignored in a build without
    /// the `gpu` feature).
    pub fn new(s: &Settings, epoch: u64) -> Self {
        #[cfg(not(feature = "gpu"))]
        if s.nvml_lib.is_some() {
            log::info!("SOCKAGENT_NVML_LIB is ignored: this build has no NVML (feature `gpu`)");
        }
        let mut g = Gpus {
            #[cfg(feature = "gpu")]
            nvidia: nvml::Nvidia::new(s.nvml_lib.clone()),
            enabled: s.gpu_enabled,
            temps: s.temp_enabled,
            root: s.root.clone(),
            cards: Vec::new(),
            jetson: None,
            probed: None,
            list: Vec::new(),
            sampled_at: None,
        };
        if g.enabled {
            g.probe(epoch);
        } else {
            log::debug!("GPU collection off (SOCKTOP_AGENT_GPU=0)");
        }
        g
    }

    /// Looks for GPUs: loads NVML if it is not loaded (and refreshes its
    /// device count if it is), lists DRM cards, looks for a Jetson GPU.
    fn probe(&mut self, epoch: u64) {
        self.probed = Some(epoch);
        #[cfg(feature = "gpu")]
        self.nvidia.probe();
        let cards = drm::probe(&self.root, &self.cards);
        if cards.len() != self.cards.len() {
            for c in &cards {
                log::info!("GPU {} ({}) from {}", c.name, c.driver, c.dir.display());
            }
        }
        self.cards = cards;
        let jetson = jetson::probe(&self.root);
        if jetson.is_some() != self.jetson.is_some() {
            if let Some(j) = &jetson {
                log::info!("GPU {} from {}", j.name, j.load.display());
            }
        }
        self.jetson = jetson;
    }

    /// Reads every GPU the last probe found, skipping the cache (the
    /// benchmark's entry point; `read` is the cached one).
    pub fn sample(&mut self, now: Instant) -> &[Gpu] {
        let t0 = Instant::now();
        self.list.clear();
        #[cfg(feature = "gpu")]
        self.nvidia.sample(self.temps, &mut self.list);
        for c in &self.cards {
            self.list.push(c.read(self.temps));
        }
        if let Some(j) = &self.jetson {
            if let Some(g) = j.read(self.temps) {
                self.list.push(g);
            }
        }
        self.sampled_at = Some(now);
        let took = t0.elapsed();
        if took > SLOW_SAMPLE {
            log::debug!("GPU sample took {} ms", took.as_millis());
        }
        &self.list
    }

    /// The `gpus` of a metrics answer: `None` when GPUs are off or none was
    /// found; readings younger than `TTL` are reused. Probes again first
    /// when `epoch` is new.
    pub fn read(&mut self, now: Instant, epoch: u64) -> Option<&[Gpu]> {
        if !self.enabled {
            return None;
        }
        if super::rediscover::due(&mut self.probed, epoch) {
            self.probe(epoch);
        }
        let fresh = self
            .sampled_at
            .is_some_and(|t| now.saturating_duration_since(t) < TTL);
        if !fresh {
            self.sample(now);
        }
        (!self.list.is_empty()).then_some(self.list.as_slice())
    }
}

type Pick = fn(&Gpu) -> Option<f64>;

/// One series per GPU and reading.
pub const FAMILIES: [(Family, Pick); 4] = [
    (
        Family::gauge("sockagent_gpu_utilization_percent", "GPU busy %, 0-100."),
        |g| g.usage.map(f64::from),
    ),
    (
        Family::gauge("sockagent_gpu_memory_total_bytes", "GPU memory in total."),
        |g| g.memory_total.map(|v| v as f64),
    ),
    (
        Family::gauge(
            "sockagent_gpu_memory_used_bytes",
            "GPU memory in use (NVIDIA: without driver-reserved memory).",
        ),
        |g| g.memory_used.map(|v| v as f64),
    ),
    (
        Family::gauge("sockagent_gpu_temperature_celsius", "GPU temperature."),
        |g| g.temp_c.map(f64::from),
    ),
];

/// Every GPU's readings, labelled `gpu` (its index), `name` and `vendor`;
/// a reading the driver does not give is left out.
pub fn describe(gpus: &[Gpu], out: &mut dyn Sink) {
    let mut n = itoa::Buffer::new();
    for (family, pick) in FAMILIES {
        if !gpus.iter().any(|g| pick(g).is_some()) {
            continue;
        }
        family.open(out);
        for (i, g) in gpus.iter().enumerate() {
            if let Some(v) = pick(g) {
                let labels = [
                    ("gpu", n.format(i)),
                    ("name", &g.name),
                    ("vendor", g.vendor),
                ];
                out.sample(&labels, Value::F(v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_keys_deserialize_with_the_connector_types() {
        let g = Gpu {
            name: "NVIDIA H200".into(),
            vendor: "nvidia",
            usage: Some(12.0),
            memory_total: Some(150754820096),
            memory_used: Some(0),
            temp_c: None,
        };
        let v = serde_json::to_value(&g).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "mem_total",
                "mem_used",
                "memory_total",
                "memory_used",
                "name",
                "temp_c",
                "usage",
                "utilization",
                "vendor"
            ]
        );
        assert_eq!(v["utilization"], v["usage"]);
        assert!(v["temp_c"].is_null());
        let c: socktop_connector::GpuInfo = serde_json::from_value(v).unwrap();
        assert_eq!(c.name.as_deref(), Some("NVIDIA H200"));
        assert_eq!(c.utilization, Some(12.0));
        assert_eq!(c.mem_total, Some(150754820096));
        assert_eq!(c.mem_used, Some(0));
        assert_eq!(c.temp, None);
    }

    #[test]
    fn off_means_null_and_no_probe() {
        let s = Settings {
            root: Root::new("/nonexistent"),
            gpu_enabled: false,
            ..Settings::default()
        };
        let mut g = Gpus::new(&s, 1);
        assert!(g.read(Instant::now(), 2).is_none());
        assert!(g.probed.is_none());
    }
}
