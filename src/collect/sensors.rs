//! Temperatures. CPU: hwmon chips first (coretemp "Package id 0", k10temp
//! Tdie/Tctl, ARM `cpu_thermal`/`soc_thermal`), then `/sys/class/thermal`.
//! Disks: the hwmon sensor under the disk's device (NVMe `Composite`,
//! drivetemp). GPUs use `pick_temp_input` on their card's hwmon.
//!
//! Finding the CPU sensor walks directories, so it is done once and the
//! chosen file is kept; each sample then costs one small read. A read
//! failure (module unloaded) makes the next sample search again.

use super::fs::{KeptFile, Root};
use crate::families::{Family, Sink, Value};
use serde::Serialize;
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

/// node_exporter's `cleanMetricName`: lower case, every character outside
/// `[a-z0-9:_]` replaced by `_`, `_` trimmed at both ends.
pub fn clean_name(s: &str) -> String {
    let v: String = s
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    v.trim_matches('_').to_string()
}

/// The `chip` label node_exporter gives a hwmon directory: the device's
/// bus and name (`platform_coretemp_0`, `pci0000:00_0000:00:18_3`), else
/// the cleaned `name` file, else the directory's own name (`hwmon4`).
pub fn hwmon_chip(dir: &std::path::Path) -> String {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let name = dev
            .file_name()
            .map(|n| clean_name(&n.to_string_lossy()))
            .unwrap_or_default();
        let bus = dev
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| clean_name(&n.to_string_lossy()))
            .unwrap_or_default();
        match (bus.is_empty(), name.is_empty()) {
            (false, false) => return format!("{bus}_{name}"),
            (true, false) => return name,
            _ => {}
        }
    }
    if let Some(n) = read_trim(&dir.join("name")).map(|n| clean_name(&n)) {
        if !n.is_empty() {
            return n;
        }
    }
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    real.file_name()
        .map(|n| clean_name(&n.to_string_lossy()))
        .unwrap_or_default()
}

/// One hwmon temperature input, labelled as node_exporter labels it.
#[derive(Debug, Clone, PartialEq)]
pub struct HwmonTemp {
    pub chip: String,
    /// The chip's `name` file (`coretemp`), when it has one.
    pub chip_name: Option<String>,
    /// `temp1`, `temp2`, …
    pub sensor: String,
    /// `tempN_label` (`Package id 0`), when there is one.
    pub label: Option<String>,
    pub input: PathBuf,
    /// The last reading, °C.
    pub celsius: Option<f32>,
}

/// Every `tempN_input` of every hwmon chip, in chip then sensor order.
/// Sensors in the hwmon directory and in its `device/` (older drivers put
/// them there) are both listed; a chip label that two directories would
/// share gets the chip's name (or directory) appended, so no two series
/// collide.
pub fn find_hwmon_temps(root: &Root) -> Vec<HwmonTemp> {
    let mut out: Vec<HwmonTemp> = Vec::new();
    let mut chips: Vec<String> = Vec::new();
    for (dir_name, dir) in sorted_entries(root, "sys/class/hwmon") {
        let chip_name = read_trim(&dir.join("name")).filter(|n| !n.is_empty());
        let mut chip = hwmon_chip(&dir);
        if chip.is_empty() || chips.contains(&chip) {
            let suffix = chip_name
                .as_deref()
                .map(clean_name)
                .filter(|n| !n.is_empty() && !chip.ends_with(n.as_str()))
                .unwrap_or_else(|| clean_name(&dir_name));
            chip = if chip.is_empty() {
                suffix
            } else {
                format!("{chip}_{suffix}")
            };
            if chips.contains(&chip) {
                chip = format!("{chip}_{}", clean_name(&dir_name));
            }
        }
        let sensors = hwmon_inputs(&dir, "temp");
        if sensors.is_empty() {
            continue;
        }
        for (n, input, label) in sensors {
            out.push(HwmonTemp {
                chip: chip.clone(),
                chip_name: chip_name.clone(),
                sensor: format!("temp{n}"),
                label: read_trim(&label).filter(|l| !l.is_empty()),
                input,
                celsius: None,
            });
        }
        chips.push(chip);
    }
    out
}

/// Every hwmon temperature, found once and re-read on each `refresh`; an
/// input that vanished makes the next refresh search again (a driver went).
#[derive(Debug, Default)]
pub struct HwmonTemps {
    pub temps: Vec<HwmonTemp>,
    searched: bool,
}

impl HwmonTemps {
    pub fn refresh(&mut self, root: &Root) {
        if !self.searched {
            self.temps = find_hwmon_temps(root);
            self.searched = true;
        }
        let mut vanished = false;
        for t in &mut self.temps {
            // node_exporter reports what the driver says, bogus values
            // included; a sensor that cannot be read (EIO, ENODATA) is left
            // out of this scrape.
            t.celsius = match std::fs::read_to_string(&t.input) {
                Ok(s) => s.trim().parse::<i64>().ok().map(|v| v as f32 / 1000.0),
                Err(e) => {
                    vanished |= e.kind() == std::io::ErrorKind::NotFound;
                    None
                }
            };
        }
        if vanished {
            self.searched = false;
        }
    }
}

/// One fan: the `fans[]` row of the metrics answer (its serde keys).
#[derive(Debug, Serialize)]
pub struct Fan {
    /// `fanN_label`, else `<chip name> fanN`.
    pub name: String,
    pub rpm: Option<u64>,
    /// node_exporter's `chip` and `sensor` labels (`fan1`).
    #[serde(skip)]
    pub chip: String,
    #[serde(skip)]
    pub sensor: String,
    #[serde(skip)]
    file: KeptFile,
}

/// A hwmon chip's `{kind}N_input` files (in the chip's directory or its
/// `device/`, as older drivers put them), each with its `{kind}N_label`
/// path beside it, in N order: (N, input, label).
fn hwmon_inputs(dir: &Path, kind: &str) -> Vec<(u32, PathBuf, PathBuf)> {
    let mut found: Vec<(u32, PathBuf, PathBuf)> = Vec::new();
    for base in [dir.to_path_buf(), dir.join("device")] {
        let Ok(rd) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in rd.flatten() {
            let f = e.file_name();
            let Some(n) = f
                .to_str()
                .and_then(|s| s.strip_prefix(kind))
                .and_then(|s| s.strip_suffix("_input"))
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if !found.iter().any(|x| x.0 == n) {
                found.push((n, e.path(), base.join(format!("{kind}{n}_label"))));
            }
        }
    }
    found.sort_unstable_by_key(|f| f.0);
    found
}

/// Every hwmon `fanN_input`, in chip then fan order (Documentation/hwmon/sysfs-interface.rst).
pub fn find_fans(root: &Root) -> Vec<Fan> {
    let mut out = Vec::new();
    let mut chips: Vec<String> = Vec::new();
    for (dir_name, dir) in sorted_entries(root, "sys/class/hwmon") {
        let fans = hwmon_inputs(&dir, "fan");
        if fans.is_empty() {
            continue;
        }
        let chip_name = read_trim(&dir.join("name")).filter(|n| !n.is_empty());
        let mut chip = hwmon_chip(&dir);
        if chip.is_empty() || chips.contains(&chip) {
            chip = format!("{chip}_{}", clean_name(&dir_name));
        }
        for (n, input, label) in fans {
            let name = read_trim(&label)
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| format!("{} fan{n}", chip_name.as_deref().unwrap_or(&chip)));
            out.push(Fan {
                name,
                rpm: None,
                chip: chip.clone(),
                sensor: format!("fan{n}"),
                file: KeptFile::at(input),
            });
        }
        chips.push(chip);
    }
    out
}

/// The fans, found at first use and every `rediscover::REDISCOVER` or after a
/// read finds one gone; each read is one `pread` per fan.
#[derive(Debug, Default)]
pub struct Fans {
    pub fans: Vec<Fan>,
    found: Option<std::time::Instant>,
}

impl Fans {
    pub fn refresh(&mut self, root: &Root, now: std::time::Instant, buf: &mut Vec<u8>) {
        if super::rediscover::due(&mut self.found, now) {
            let found = find_fans(root);
            let same = found.len() == self.fans.len()
                && found
                    .iter()
                    .zip(&self.fans)
                    .all(|(a, b)| a.file.path() == b.file.path());
            if !same {
                self.fans = found;
            }
        }
        let mut gone = false;
        for f in &mut self.fans {
            f.rpm = match f.file.read(buf) {
                Ok(()) => super::num::parse_u64_trimmed(buf),
                Err(e) => {
                    gone |= super::error::CollectError::vanished(&e);
                    None
                }
            };
        }
        if gone {
            self.found = None;
        }
    }
}

pub const FAN_RPM: Family = Family::gauge(
    "node_hwmon_fan_rpm",
    "Hardware monitor for fan revolutions per minute (input)",
);
pub const CHIP_NAMES: Family = Family::gauge(
    "node_hwmon_chip_names",
    "Annotation metric for human-readable chip names",
);
pub const SENSOR_LABEL: Family =
    Family::gauge("node_hwmon_sensor_label", "Label for given chip and sensor");
pub const TEMP_CELSIUS: Family = Family::gauge(
    "node_hwmon_temp_celsius",
    "Hardware monitor for temperature (input)",
);

impl Fans {
    /// Every fan's speed (nothing where there is no fan).
    pub fn describe(&self, out: &mut dyn Sink) {
        if self.fans.is_empty() {
            return;
        }
        FAN_RPM.open(out);
        for f in &self.fans {
            if let Some(rpm) = f.rpm {
                out.sample(&[("chip", &f.chip), ("sensor", &f.sensor)], rpm.into());
            }
        }
    }
}

impl HwmonTemps {
    /// node_exporter's hwmon families: chip names, labels, temperatures.
    pub fn describe(&self, out: &mut dyn Sink) {
        let temps = &self.temps;
        if temps.is_empty() {
            return;
        }
        CHIP_NAMES.open(out);
        let mut last = None;
        for t in temps {
            if let Some(cn) = &t.chip_name {
                if last != Some(&t.chip) {
                    out.sample(&[("chip", &t.chip), ("chip_name", cn)], Value::U(1));
                }
            }
            last = Some(&t.chip);
        }
        SENSOR_LABEL.open(out);
        for t in temps {
            if let Some(l) = &t.label {
                let labels = [
                    ("chip", t.chip.as_str()),
                    ("label", l),
                    ("sensor", &t.sensor),
                ];
                out.sample(&labels, Value::U(1));
            }
        }
        TEMP_CELSIUS.open(out);
        for t in temps {
            if let Some(c) = t.celsius {
                out.sample(&[("chip", &t.chip), ("sensor", &t.sensor)], c.into());
            }
        }
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
    fn hwmon_chips_named_as_node_exporter_names_them() {
        let mut h = HwmonTemps::default();
        h.refresh(&Root::fixture("node-exporter"));
        let got: Vec<(&str, &str, Option<&str>, Option<f32>)> = h
            .temps
            .iter()
            .map(|t| {
                (
                    t.chip.as_str(),
                    t.sensor.as_str(),
                    t.label.as_deref(),
                    t.celsius,
                )
            })
            .collect();
        assert!(got.contains(&(
            "platform_coretemp_0",
            "temp1",
            Some("Physical id 0"),
            Some(55.0)
        )));
        assert!(got.contains(&("platform_coretemp_1", "temp2", Some("Core 0"), Some(54.0))));
        // no device link, no name: the directory's name
        assert!(got.iter().any(|g| g.0 == "hwmon4" && g.1 == "temp1"));
        // three radios behind one device: three distinct chips
        let mut radios: Vec<&str> = got
            .iter()
            .filter(|g| g.0.starts_with("ieee80211_phy0"))
            .map(|g| g.0)
            .collect();
        radios.dedup();
        assert_eq!(radios.len(), 3, "{radios:?}");
        let mut keys: Vec<(&str, &str)> = got.iter().map(|g| (g.0, g.1)).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "no two series share labels");
        assert_eq!(clean_name("Package id 0"), "package_id_0");
        assert_eq!(clean_name("0000:00:18.3"), "0000:00:18_3");
    }

    #[test]
    fn fans_of_the_laptop_tree() {
        let mut f = Fans::default();
        f.refresh(
            &Root::fixture("laptop"),
            std::time::Instant::now(),
            &mut Vec::new(),
        );
        let got: Vec<(&str, Option<u64>, &str, &str)> = f
            .fans
            .iter()
            .map(|x| (x.name.as_str(), x.rpm, x.chip.as_str(), x.sensor.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "thinkpad fan1",
                    Some(2874),
                    "platform_thinkpad_hwmon",
                    "fan1"
                ),
                ("thinkpad fan2", Some(0), "platform_thinkpad_hwmon", "fan2"),
            ]
        );
        assert_eq!(
            serde_json::to_value(&f.fans[0]).unwrap(),
            serde_json::json!({"name": "thinkpad fan1", "rpm": 2874})
        );
        let mut none = Fans::default();
        none.refresh(
            &Root::fixture("h200-vm"),
            std::time::Instant::now(),
            &mut Vec::new(),
        );
        assert!(none.fans.is_empty());
    }

    #[test]
    fn millidegrees() {
        assert_eq!(parse_millideg("45000\n"), Some(45.0));
        assert_eq!(parse_millideg("-1"), Some(-0.001));
        assert_eq!(parse_millideg("999999"), None);
        assert_eq!(parse_millideg("x"), None);
    }
}
