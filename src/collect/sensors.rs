//! CPU temperature: hwmon chips first (coretemp "Package id 0", k10temp
//! Tdie/Tctl, ARM `cpu_thermal`/`soc_thermal`), then `/sys/class/thermal`.
//!
//! Finding the sensor walks directories, so it is done once and the chosen
//! file is kept; each sample then costs one small read. A read failure
//! (module unloaded) makes the next sample search again.

use super::fs::Root;
use std::path::PathBuf;

/// How a hwmon chip's `name` ranks as the CPU sensor (lower is better).
fn hwmon_rank(name: &str) -> Option<u8> {
    match name {
        "coretemp" => Some(0),
        "k10temp" | "zenpower" => Some(0),
        "cpu_thermal" | "cpu-thermal" => Some(1),
        "soc_thermal" | "soc-thermal" => Some(2),
        _ => None,
    }
}

/// Which `tempN_label` of a ranked chip is the package temperature.
fn label_rank(chip: &str, label: &str) -> Option<u8> {
    match chip {
        "coretemp" => match label {
            "Package id 0" => Some(0),
            l if l.starts_with("Package id") => Some(1),
            l if l.starts_with("Physical id") => Some(1),
            _ => None,
        },
        "k10temp" | "zenpower" => match label {
            "Tdie" => Some(0),
            "Tctl" => Some(1),
            _ => None,
        },
        _ => Some(0),
    }
}

fn thermal_rank(kind: &str) -> u8 {
    match kind {
        "x86_pkg_temp" => 0,
        "cpu_thermal" | "cpu-thermal" | "cpu" | "bcm2835_thermal" => 1,
        "soc_thermal" | "soc-thermal" => 2,
        k if k.contains("cpu") => 3,
        _ => 9,
    }
}

/// Millidegrees in a sysfs file → °C; implausible values are rejected.
pub fn parse_millideg(s: &str) -> Option<f32> {
    let v: i64 = s.trim().parse().ok()?;
    let c = v as f32 / 1000.0;
    (-60.0..=200.0).contains(&c).then_some(c)
}

fn sorted_entries(root: &Root, rel: &str) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = match std::fs::read_dir(root.path(rel)) {
        Ok(rd) => rd
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect(),
        Err(_) => return Vec::new(),
    };
    // hwmon10 after hwmon9
    v.sort_by(|a, b| {
        let na =
            a.0.trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
                .ok();
        let nb =
            b.0.trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
                .ok();
        (na, &a.0).cmp(&(nb, &b.0))
    });
    v
}

fn read_trim(p: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Finds the file holding the CPU temperature under `root`, if any.
pub fn find_cpu_temp_file(root: &Root) -> Option<PathBuf> {
    let mut best: Option<((u8, u8), PathBuf)> = None;
    for (_, dir) in sorted_entries(root, "sys/class/hwmon") {
        let Some(chip) = read_trim(&dir.join("name")) else {
            continue;
        };
        let Some(rank) = hwmon_rank(&chip) else {
            continue;
        };
        for i in 1..=64 {
            let input = dir.join(format!("temp{i}_input"));
            if !input.exists() {
                continue;
            }
            let label = read_trim(&dir.join(format!("temp{i}_label"))).unwrap_or_default();
            let Some(lr) = label_rank(&chip, &label) else {
                continue;
            };
            let key = (rank, lr);
            if best.as_ref().is_none_or(|(k, _)| key < *k)
                && read_trim(&input).and_then(|s| parse_millideg(&s)).is_some()
            {
                best = Some((key, input));
            }
        }
    }
    if let Some((_, p)) = best {
        return Some(p);
    }
    let mut best: Option<(u8, PathBuf)> = None;
    for (name, dir) in sorted_entries(root, "sys/class/thermal") {
        if !name.starts_with("thermal_zone") {
            continue;
        }
        let kind = read_trim(&dir.join("type")).unwrap_or_default();
        let rank = thermal_rank(&kind);
        let temp = dir.join("temp");
        if best.as_ref().is_none_or(|(r, _)| rank < *r)
            && read_trim(&temp).and_then(|s| parse_millideg(&s)).is_some()
        {
            best = Some((rank, temp));
        }
    }
    best.map(|(_, p)| p)
}

/// The CPU temperature sensor, found once and then re-read.
#[derive(Debug, Default)]
pub struct CpuTemp {
    file: Option<PathBuf>,
    searched: bool,
}

impl CpuTemp {
    pub fn read(&mut self, root: &Root) -> Option<f32> {
        if !self.searched {
            self.file = find_cpu_temp_file(root);
            self.searched = true;
            if let Some(f) = &self.file {
                log::debug!("CPU temperature from {}", f.display());
            } else {
                log::debug!("no CPU temperature sensor found");
            }
        }
        let v = self
            .file
            .as_ref()
            .and_then(|f| read_trim(f))
            .and_then(|s| parse_millideg(&s));
        if v.is_none() && self.file.is_some() {
            // Sensor vanished (driver unloaded): look again next time.
            self.searched = false;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Root {
        Root::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name)
    }

    #[test]
    fn coretemp_package_from_node_exporter_tree() {
        let root = fixture("node-exporter");
        let f = find_cpu_temp_file(&root).unwrap();
        // hwmon0 is coretemp.0; temp1 is "Package id 0" at 55 °C.
        assert!(f.ends_with("hwmon0/temp1_input"), "{}", f.display());
        let mut t = CpuTemp::default();
        assert_eq!(t.read(&root), Some(55.0));
    }

    #[test]
    fn thermal_zone_fallback() {
        let root = fixture("prometheus-procfs");
        let f = find_cpu_temp_file(&root).unwrap();
        // a Raspberry Pi's bcm2835_thermal zone, not the bogus acpitz one
        assert!(f.ends_with("thermal_zone0/temp"), "{}", f.display());
        assert_eq!(CpuTemp::default().read(&root), Some(49.925));
    }

    #[test]
    fn none_on_gpu_vm() {
        assert!(find_cpu_temp_file(&fixture("h200-vm")).is_none());
    }

    #[test]
    fn millidegrees() {
        assert_eq!(parse_millideg("45000\n"), Some(45.0));
        assert_eq!(parse_millideg("-1"), Some(-0.001));
        assert_eq!(parse_millideg("999999"), None);
        assert_eq!(parse_millideg("x"), None);
    }
}
