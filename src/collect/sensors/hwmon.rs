//! node_exporter's hwmon collector: every temperature and fan of every
//! hwmon chip, labelled as node_exporter labels them (`chip`, `sensor`),
//! with their families. Found once, re-read on each refresh.

use super::{read_trim, sorted_entries};
use crate::collect::fs::{KeptFile, Root};
use crate::families::{Sink, Value};
use serde::Serialize;
use std::path::{Path, PathBuf};

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

/// The fans, found at first use and each re-probe epoch or after a
/// read finds one gone; each read is one `pread` per fan.
#[derive(Debug, Default)]
pub struct Fans {
    pub fans: Vec<Fan>,
    found: Option<u64>,
}

impl Fans {
    pub fn refresh(&mut self, root: &Root, epoch: u64, buf: &mut Vec<u8>) {
        if crate::collect::rediscover::due(&mut self.found, epoch) {
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
        for f in &mut self.fans {
            f.rpm = crate::collect::rediscover::read(&mut f.file, buf, &mut self.found)
                .and_then(crate::collect::num::parse_u64_trimmed);
        }
    }
}

crate::families::declare! {
    pub FAN_RPM = gauge("node_hwmon_fan_rpm", "Hardware monitor for fan revolutions per minute (input)");
    pub CHIP_NAMES = gauge("node_hwmon_chip_names", "Annotation metric for human-readable chip names");
    pub SENSOR_LABEL = gauge("node_hwmon_sensor_label", "Label for given chip and sensor");
    pub TEMP_CELSIUS = gauge("node_hwmon_temp_celsius", "Hardware monitor for temperature (input)");
}

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
        f.refresh(&Root::fixture("laptop"), 1, &mut Vec::new());
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
        none.refresh(&Root::fixture("h200-vm"), 1, &mut Vec::new());
        assert!(none.fans.is_empty());
    }
}
