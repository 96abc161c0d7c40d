//! NVIDIA Jetson boards (Tegra SoCs): no NVML, no DRM GPU. The GPU's
//! platform device has a `load` file, busy per mille (0..1000): at
//! `/sys/devices/gpu.0/load` on older L4T releases (TX1/TX2/Nano), under
//! the GPU's devfreq device on newer ones (Xavier `17000000.gv11b`, Orin
//! `17000000.gpu`). Memory is the system's (shared), so it is null here;
//! the temperature is the `GPU-therm`/`gpu-thermal` thermal zone.

use super::Gpu;
use crate::collect::fs::Root;
use crate::collect::sensors::{read_temp, read_trim};
use std::path::PathBuf;

/// Fixed places of the load file, tried before the devfreq search.
const LOAD_FILES: &[&str] = &["sys/devices/gpu.0/load", "sys/devices/platform/gpu.0/load"];

/// devfreq device names of Tegra GPUs (`17000000.gv11b`, `57000000.gpu`...).
fn is_tegra_gpu(devfreq_name: &str) -> bool {
    let suffix = devfreq_name.rsplit('.').next().unwrap_or("");
    matches!(
        suffix,
        "gpu" | "gv11b" | "ga10b" | "gp10b" | "gm20b" | "gk20a"
    )
}

/// Thermal zone types of the GPU sensor on Jetson boards.
fn is_gpu_zone(kind: &str) -> bool {
    let k = kind.to_ascii_lowercase();
    k == "gpu-therm" || k == "gpu-thermal" || k == "gpu_thermal"
}

/// The board's GPU, found by `probe`.
#[derive(Debug, Clone)]
pub struct Jetson {
    pub name: String,
    pub load: PathBuf,
    temp: Option<PathBuf>,
}

/// Per mille load → %, rejecting what is out of range.
pub fn parse_load(s: &str) -> Option<f32> {
    let v: u32 = s.trim().parse().ok()?;
    (v <= 1000).then_some(v as f32 / 10.0)
}

/// The device tree's `model` ("NVIDIA Jetson Orin Nano Developer Kit"),
/// NUL-terminated in the file.
fn board_model(root: &Root) -> Option<String> {
    [
        "sys/firmware/devicetree/base/model",
        "proc/device-tree/model",
    ]
    .iter()
    .find_map(|rel| {
        let mut buf = Vec::new();
        root.read_into(rel, &mut buf).ok()?;
        let s = String::from_utf8_lossy(&buf);
        let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!s.is_empty()).then(|| s.to_string())
    })
}

fn find_load(root: &Root) -> Option<PathBuf> {
    for rel in LOAD_FILES {
        let p = root.path(rel);
        if p.exists() {
            return Some(p);
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(root.path("sys/class/devfreq"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| is_tegra_gpu(n))
        .collect();
    names.sort_unstable();
    names.into_iter().find_map(|n| {
        let p = root.path(&format!("sys/class/devfreq/{n}/device/load"));
        p.exists().then_some(p)
    })
}

fn find_zone(root: &Root) -> Option<PathBuf> {
    let mut zones: Vec<(String, PathBuf)> = std::fs::read_dir(root.path("sys/class/thermal"))
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .filter(|(n, _)| n.starts_with("thermal_zone"))
        .collect();
    zones.sort_unstable();
    zones.into_iter().find_map(|(_, dir)| {
        read_trim(&dir.join("type"))
            .filter(|t| is_gpu_zone(t))
            .map(|_| dir.join("temp"))
    })
}

/// Finds a Jetson GPU's load file under `root`, if this is such a board.
pub fn probe(root: &Root) -> Option<Jetson> {
    let load = find_load(root)?;
    let name = match board_model(root) {
        Some(m) => format!("{m} GPU"),
        None => "NVIDIA Tegra GPU".to_string(),
    };
    Some(Jetson {
        name,
        load,
        temp: find_zone(root),
    })
}

impl Jetson {
    /// `None` when the load file cannot be read (the GPU driver is gone).
    pub fn read(&self, temps: bool) -> Option<Gpu> {
        let usage = parse_load(&read_trim(&self.load)?)?;
        let temp_c = if temps {
            self.temp.as_ref().and_then(|p| read_temp(p))
        } else {
            None
        };
        Some(Gpu {
            name: self.name.clone(),
            vendor: "nvidia",
            usage: Some(usage),
            memory_total: None,
            memory_used: None,
            temp_c,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_gpu0_load_and_gpu_therm() {
        let j = probe(&Root::fixture("jetson-nano")).unwrap();
        assert_eq!(
            j.read(true),
            Some(Gpu {
                name: "NVIDIA Jetson Nano Developer Kit GPU".into(),
                vendor: "nvidia",
                usage: Some(25.0),
                memory_total: None,
                memory_used: None,
                temp_c: Some(37.5),
            })
        );
    }

    #[test]
    fn orin_devfreq_load_and_gpu_thermal() {
        let j = probe(&Root::fixture("jetson-orin")).unwrap();
        let g = j.read(true).unwrap();
        assert_eq!(g.name, "NVIDIA Jetson AGX Orin Developer Kit GPU");
        assert_eq!(g.usage, Some(51.2));
        assert_eq!(g.temp_c, Some(42.5));
        assert_eq!(j.read(false).unwrap().temp_c, None);
    }

    #[test]
    fn not_a_jetson() {
        assert!(probe(&Root::fixture("rpi5")).is_none());
        assert!(probe(&Root::fixture("amd-host")).is_none());
    }

    #[test]
    fn load_parser() {
        assert_eq!(parse_load("0\n"), Some(0.0));
        assert_eq!(parse_load("1000"), Some(100.0));
        assert_eq!(parse_load("1001"), None);
        assert_eq!(parse_load("x"), None);
    }
}
