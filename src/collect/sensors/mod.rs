//! Temperatures. CPU: hwmon chips first (coretemp "Package id 0", k10temp
//! Tdie/Tctl, ARM `cpu_thermal`/`soc_thermal`), then `/sys/class/thermal`.
//! Disks: the hwmon sensor under the disk's device (NVMe `Composite`,
//! drivetemp). GPUs use `pick_temp_input` on their card's hwmon.
//!
//! Finding the CPU sensor walks directories, so it is done once and the
//! chosen file is kept; each sample then costs one small read. A read
//! failure (module unloaded) makes the next sample search again.
//! node_exporter's view of every hwmon temperature and fan is `hwmon.rs`.

mod hwmon;

pub use hwmon::{Fan, Fans, HwmonTemp, HwmonTemps};

use super::fs::{KeptFile, Root};
use std::path::{Path, PathBuf};

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
    // Jetson boards name their zones "CPU-therm", "GPU-therm"
    let kind = kind.to_ascii_lowercase();
    match kind.as_str() {
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
    v.sort_unstable_by(|a, b| {
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

/// Highest `tempN_input` index looked at in one hwmon directory (hwmon
/// channels are few: coretemp has one per core, 64 covers the largest).
const MAX_TEMP_INPUTS: u32 = 64;

pub(crate) fn read_trim(p: &Path) -> Option<String> {
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
        for i in 1..=MAX_TEMP_INPUTS {
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

/// The hwmon directories of a device directory: `dev/hwmon/hwmonN` (a
/// device with no class, e.g. a SCSI disk or a PCI GPU) and `dev/hwmonN`
/// (a class device such as `nvme0`), in number order.
pub fn hwmon_dirs(dev: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in [dev.join("hwmon"), dev.to_path_buf()] {
        let Ok(rd) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut v: Vec<(u64, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let n = name.to_str()?.strip_prefix("hwmon")?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        v.sort_unstable();
        out.extend(v.into_iter().map(|(_, p)| p));
    }
    out
}

/// The `tempN_input` of one hwmon directory whose `tempN_label` comes first
/// in `labels` (compared without case); without such a label, the
/// lowest-numbered input that reads a plausible value.
pub fn pick_temp_input(hwmon: &Path, labels: &[&str]) -> Option<PathBuf> {
    let rd = std::fs::read_dir(hwmon).ok()?;
    let mut inputs: Vec<u32> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name
                .to_str()?
                .strip_prefix("temp")?
                .strip_suffix("_input")?;
            n.parse().ok().filter(|n| *n <= MAX_TEMP_INPUTS)
        })
        .collect();
    inputs.sort_unstable();
    let mut best: Option<(usize, PathBuf)> = None;
    for i in inputs {
        let input = hwmon.join(format!("temp{i}_input"));
        let label = read_trim(&hwmon.join(format!("temp{i}_label"))).unwrap_or_default();
        let rank = labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(&label))
            .unwrap_or(labels.len());
        if best.as_ref().is_none_or(|(r, _)| rank < *r) && read_temp(&input).is_some() {
            best = Some((rank, input));
        }
    }
    best.map(|(_, p)| p)
}

/// Reads a `tempN_input` file as °C.
pub fn read_temp(input: &Path) -> Option<f32> {
    read_trim(input).and_then(|s| parse_millideg(&s))
}

/// The NVMe controller name of a namespace: `nvme0n1` → `nvme0`.
fn nvme_controller(disk: &str) -> Option<&str> {
    let rest = disk.strip_prefix("nvme")?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after = rest.get(digits..)?;
    (digits > 0 && after.starts_with('n'))
        .then(|| disk.get(..4 + digits))
        .flatten()
}

/// The temperature of a whole disk (kernel name: `nvme0n1`, `sda`) from
/// the hwmon sensor of its device: NVMe `Composite` (the controller's
/// hwmon; with native multipath the namespace's device is the subsystem,
/// whose controllers are looked at too), drivetemp's `temp1` for SATA/SAS.
/// Searched on every call: a few directory reads per disk, and a disk that
/// appears or a module loaded later is found at once.
pub fn disk_temp(root: &Root, disk: &str) -> Option<f32> {
    disk_temp_file(root, disk).and_then(|p| read_temp(&p))
}

/// The file holding a whole disk's temperature (found by walking its
/// device's hwmon directories; callers keep it and re-read it).
pub fn disk_temp_file(root: &Root, disk: &str) -> Option<PathBuf> {
    if disk.is_empty() || disk.contains('/') || disk.starts_with('.') {
        return None;
    }
    let dev = root.path(&format!("sys/block/{disk}/device"));
    let mut devs = vec![dev.clone()];
    if let Some(ctrl) = nvme_controller(disk) {
        devs.push(root.path(&format!("sys/class/nvme/{ctrl}")));
        // native multipath: device -> nvme-subsys0, holding nvme0, nvme1...
        if let Ok(rd) = std::fs::read_dir(&dev) {
            let mut ctrls: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("nvme"))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(|e| e.path())
                .collect();
            ctrls.sort_unstable();
            devs.extend(ctrls);
        }
    }
    devs.iter()
        .flat_map(|d| hwmon_dirs(d))
        .find_map(|h| pick_temp_input(&h, &["Composite"]).filter(|p| read_temp(p).is_some()))
}

/// The CPU temperature sensor, found once, then kept open and re-read
/// with `pread` into a kept buffer (no allocation per sample).
#[derive(Debug, Default)]
pub struct CpuTemp {
    file: Option<KeptFile>,
    buf: Vec<u8>,
    searched: bool,
}

impl CpuTemp {
    pub fn read(&mut self, root: &Root) -> Option<f32> {
        if !self.searched {
            self.file = find_cpu_temp_file(root).map(KeptFile::at);
            self.searched = true;
            if let Some(f) = &self.file {
                log::debug!("CPU temperature from {}", f.path().display());
            } else {
                log::debug!("no CPU temperature sensor found");
            }
        }
        let buf = &mut self.buf;
        let v = self
            .file
            .as_mut()
            .and_then(|f| f.read(buf).ok())
            .and_then(|()| std::str::from_utf8(buf).ok())
            .and_then(parse_millideg);
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

    #[test]
    fn coretemp_package_from_node_exporter_tree() {
        let root = Root::fixture("node-exporter");
        let f = find_cpu_temp_file(&root).unwrap();
        // hwmon0 is coretemp.0; temp1 is "Package id 0" at 55 °C.
        assert!(f.ends_with("hwmon0/temp1_input"), "{}", f.display());
        let mut t = CpuTemp::default();
        assert_eq!(t.read(&root), Some(55.0));
    }

    #[test]
    fn thermal_zone_fallback() {
        let root = Root::fixture("prometheus-procfs");
        let f = find_cpu_temp_file(&root).unwrap();
        // a Raspberry Pi's bcm2835_thermal zone, not the bogus acpitz one
        assert!(f.ends_with("thermal_zone0/temp"), "{}", f.display());
        assert_eq!(CpuTemp::default().read(&root), Some(49.925));
    }

    #[test]
    fn none_on_gpu_vm() {
        assert!(find_cpu_temp_file(&Root::fixture("h200-vm")).is_none());
    }

    #[test]
    fn cpu_temperature_of_each_hand_made_tree() {
        for (t, want) in [
            ("rpi4-sensors", 47.238), // hwmon cpu_thermal
            ("rpi5", 51.3),           // cpu_thermal, not the rp1_adc listed first
            ("amd-host", 52.25),      // k10temp Tctl (no Tdie on Zen 4)
            ("intel-laptop", 61.0),   // coretemp Package id 0, not acpitz
            ("nvme-server", 55.0),    // Package id 0 of two sockets
            ("jetson-nano", 36.0),    // the CPU-therm zone, not AO-therm before it
            ("jetson-orin", 44.0),    // cpu-thermal zone
        ] {
            assert_eq!(
                CpuTemp::default().read(&Root::fixture(t)),
                Some(want),
                "{t}"
            );
        }
        assert_eq!(CpuTemp::default().read(&Root::fixture("intel-arc")), None);
    }

    #[test]
    fn disk_temperatures_of_each_hand_made_tree() {
        for (t, disk, want) in [
            ("rpi5", "nvme0n1", Some(38.85)), // NVMe HAT: Composite
            ("rpi5", "mmcblk0", None),        // an SD card has no sensor
            ("rpi4-sensors", "mmcblk0", None),
            ("amd-host", "nvme0n1", Some(36.85)), // Composite, not Sensor 2
            ("amd-host", "sda", Some(31.0)),      // drivetemp
            ("amd-host", "sdb", None),            // USB disk, no drivetemp
            ("intel-laptop", "nvme0n1", Some(44.85)),
            ("nvme-server", "nvme0n1", Some(39.85)),
            ("nvme-server", "nvme2n1", Some(42.85)), // multipath: through nvme-subsys2/nvme3
            ("nvme-server", "sda", Some(29.0)),
            ("nvme-server", "sdb", None), // SAS disk without drivetemp
            ("nvme-server", "nvme9n1", None), // no such disk
            ("nvme-server", "../../etc", None),
            ("nvme-server", "", None),
        ] {
            assert_eq!(disk_temp(&Root::fixture(t), disk), want, "{t} {disk}");
        }
    }

    #[test]
    fn nvme_controller_names() {
        assert_eq!(nvme_controller("nvme0n1"), Some("nvme0"));
        assert_eq!(nvme_controller("nvme12n3"), Some("nvme12"));
        assert_eq!(nvme_controller("nvme0"), None);
        assert_eq!(nvme_controller("nvmen1"), None);
        assert_eq!(nvme_controller("sda"), None);
    }

    #[test]
    fn millidegrees() {
        assert_eq!(parse_millideg("45000\n"), Some(45.0));
        assert_eq!(parse_millideg("-1"), Some(-0.001));
        assert_eq!(parse_millideg("999999"), None);
        assert_eq!(parse_millideg("x"), None);
    }
}
