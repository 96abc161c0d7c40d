//! Batteries and the CPU package's power.
//!
//! Batteries (Documentation/ABI/testing/sysfs-class-power): every
//! `/sys/class/power_supply/*` whose `type` is `Battery`: `capacity` (%),
//! `status` (`Charging`, `Discharging`, `Full`, `Not charging`,
//! `Unknown`), and the power drawn or taken: `power_now` (µW), else
//! `current_now` (µA) × `voltage_now` (µV). Drivers disagree on the sign
//! of `current_now` and `power_now` while discharging, so the magnitude is
//! given; `status` says which way it flows.
//!
//! RAPL (Documentation/power/powercap/powercap.rst): the package domains
//! `/sys/class/powercap/intel-rapl:N` whose `name` is `package-N` (not
//! the `intel-rapl:N:M` subdomains, nor `psys`), `energy_uj` summed as a
//! rate over the time since the previous read, unwrapped at
//! `max_energy_range_uj`. `energy_uj` is root-only on kernels since 5.10
//! (CVE-2020-8694): unreadable, the rate is null.
//!
//! The sets are found at first use and each re-probe epoch (kept as they
//! are when nothing changed, so the RAPL bases survive), or after a read
//! finds a file gone.

use super::fs::{KeptFile, Root};
use super::num::{parse_i64, parse_u64, parse_u64_trimmed};
use super::rate::{wrapping_per_sec, Step, Window};
use super::rediscover;
use crate::families::{Sink, Value};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One battery: the `power.batteries[]` row (its serde keys).
#[derive(Debug, Serialize)]
pub struct Battery {
    /// The supply's directory name (`BAT0`).
    pub name: String,
    pub capacity_pct: Option<u64>,
    #[serde(serialize_with = "empty_is_null")]
    pub status: String,
    pub power_w: Option<f64>,
    #[serde(skip)]
    files: BatteryFiles,
}

#[derive(Debug)]
struct BatteryFiles {
    dir: PathBuf,
    capacity: Option<KeptFile>,
    status: Option<KeptFile>,
    power_now: Option<KeptFile>,
    current_now: Option<KeptFile>,
    voltage_now: Option<KeptFile>,
}

fn empty_is_null<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(v)
    }
}

/// A sysfs integer (`1234\n`, possibly negative).
pub fn parse_int(buf: &[u8]) -> Option<i64> {
    parse_i64(buf.trim_ascii())
}

/// Watts from `power_now` (µW), else `current_now` (µA) × `voltage_now` (µV).
pub fn power_w(
    power_uw: Option<i64>,
    current_ua: Option<i64>,
    voltage_uv: Option<i64>,
) -> Option<f64> {
    if let Some(p) = power_uw {
        return Some(p.unsigned_abs() as f64 / 1e6);
    }
    let (i, v) = (current_ua?, voltage_uv?);
    Some(i.unsigned_abs() as f64 * v.unsigned_abs() as f64 / 1e12)
}

/// One RAPL package domain.
#[derive(Debug)]
pub struct RaplZone {
    /// N of `package-N` (node_exporter's `index` label).
    pub index: u32,
    /// `/sys/class/powercap/intel-rapl:N` (node_exporter's `path` label).
    pub path: String,
    energy: KeptFile,
    max_range: Option<u64>,
    /// The last reading, µJ; `None` when unreadable.
    pub energy_uj: Option<u64>,
    base: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Power {
    pub batteries: Vec<Battery>,
    pub rapl: Vec<RaplZone>,
    /// The package domains' power over the last window, W.
    pub cpu_package_w: Option<f64>,
    window: Window,
    found: Option<u64>,
}

fn kept_if_exists(dir: &Path, f: &str) -> Option<KeptFile> {
    let p = dir.join(f);
    p.exists().then(|| KeptFile::at(p))
}

fn sorted_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// `intel-rapl:N` (a top-level domain) → N.
fn rapl_top(name: &str) -> Option<u32> {
    name.strip_prefix("intel-rapl:")
        .and_then(|n| parse_u64(n.as_bytes()))
        .and_then(|n| u32::try_from(n).ok())
}

/// Reads a kept file, if there is one, as an integer (`rediscover::read`).
fn read_int(f: &mut Option<KeptFile>, buf: &mut Vec<u8>, found: &mut Option<u64>) -> Option<i64> {
    rediscover::read(f.as_mut()?, buf, found).and_then(parse_int)
}

impl Power {
    fn discover(&mut self, root: &Root) {
        let mut bats = Vec::new();
        for (name, dir) in sorted_dirs(&root.path("sys/class/power_supply")) {
            let kind = std::fs::read(dir.join("type")).unwrap_or_default();
            if kind.trim_ascii() != b"Battery" {
                continue;
            }
            bats.push((name, dir));
        }
        if !bats
            .iter()
            .map(|b| b.1.as_path())
            .eq(self.batteries.iter().map(|b| b.files.dir.as_path()))
        {
            self.batteries = bats
                .into_iter()
                .map(|(name, dir)| Battery {
                    name,
                    capacity_pct: None,
                    status: String::new(),
                    power_w: None,
                    files: BatteryFiles {
                        capacity: kept_if_exists(&dir, "capacity"),
                        status: kept_if_exists(&dir, "status"),
                        power_now: kept_if_exists(&dir, "power_now"),
                        current_now: kept_if_exists(&dir, "current_now"),
                        voltage_now: kept_if_exists(&dir, "voltage_now"),
                        dir,
                    },
                })
                .collect();
        }
        let mut zones = Vec::new();
        for (name, dir) in sorted_dirs(&root.path("sys/class/powercap")) {
            let Some(n) = rapl_top(&name) else { continue };
            let zone = std::fs::read(dir.join("name")).unwrap_or_default();
            let Some(rest) = zone.trim_ascii().strip_prefix(b"package") else {
                continue;
            };
            let index = rest
                .strip_prefix(b"-")
                .and_then(parse_u64)
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or(n);
            zones.push((index, format!("/sys/class/powercap/{name}"), dir));
        }
        if !zones
            .iter()
            .map(|z| z.1.as_str())
            .eq(self.rapl.iter().map(|z| z.path.as_str()))
        {
            self.rapl = zones
                .into_iter()
                .map(|(index, path, dir)| RaplZone {
                    index,
                    path,
                    max_range: std::fs::read(dir.join("max_energy_range_uj"))
                        .ok()
                        .and_then(|b| parse_u64_trimmed(&b)),
                    energy: KeptFile::at(dir.join("energy_uj")),
                    energy_uj: None,
                    base: None,
                })
                .collect();
            self.window.reset();
        }
    }

    /// True when the machine has a battery or a RAPL package domain.
    pub fn present(&self) -> bool {
        !self.batteries.is_empty() || !self.rapl.is_empty()
    }

    /// Reads every battery and RAPL domain (re-discovering when `epoch` is new).
    pub fn refresh(&mut self, root: &Root, now: Instant, epoch: u64, buf: &mut Vec<u8>) {
        if rediscover::due(&mut self.found, epoch) {
            self.discover(root);
        }
        let found = &mut self.found;
        for b in &mut self.batteries {
            let f = &mut b.files;
            b.capacity_pct =
                read_int(&mut f.capacity, buf, found).and_then(|v| u64::try_from(v).ok());
            b.status.clear();
            if let Some(s) = f
                .status
                .as_mut()
                .and_then(|s| rediscover::read(s, buf, found))
            {
                b.status.push_str(&String::from_utf8_lossy(s.trim_ascii()));
            }
            let mut int = |f: &mut Option<KeptFile>| read_int(f, buf, found);
            let p = int(&mut f.power_now);
            let (i, v) = if p.is_none() {
                (int(&mut f.current_now), int(&mut f.voltage_now))
            } else {
                (None, None)
            };
            b.power_w = power_w(p, i, v);
        }
        if !self.rapl.is_empty() {
            for z in &mut self.rapl {
                // EACCES: root-only energy_uj; the rate is null
                z.energy_uj =
                    rediscover::read(&mut z.energy, buf, found).and_then(parse_u64_trimmed);
            }
            let step = self.window.step(now);
            if let Step::Due(secs) = step {
                let mut sum = Some(0.0);
                for z in &self.rapl {
                    let r = match (z.energy_uj, z.base) {
                        (Some(e), Some(b)) => wrapping_per_sec(e, b, z.max_range, secs),
                        _ => None,
                    };
                    sum = sum.zip(r).map(|(s, r)| s + r / 1e6);
                }
                self.cpu_package_w = sum;
            }
            if step == Step::Start {
                self.cpu_package_w = None;
            }
            if step != Step::Hold {
                for z in &mut self.rapl {
                    z.base = z.energy_uj;
                }
            }
        }
    }
}

crate::families::declare! {
    pub SUPPLY_CAPACITY = gauge("node_power_supply_capacity", "capacity value of /sys/class/power_supply/<power_supply>.");
    pub RAPL_JOULES = counter("node_rapl_package_joules_total", "Current Raw energy value in joules");
}

impl Power {
    /// Batteries' charge and RAPL energy, under node_exporter's names.
    pub fn describe(&self, out: &mut dyn Sink) {
        let bats = &self.batteries;
        if bats.iter().any(|b| b.capacity_pct.is_some()) {
            SUPPLY_CAPACITY.open(out);
            for bat in bats {
                if let Some(c) = bat.capacity_pct {
                    out.sample(&[("power_supply", &bat.name)], c.into());
                }
            }
        }
        if self.rapl.iter().any(|z| z.energy_uj.is_some()) {
            RAPL_JOULES.open(out);
            let mut n = itoa::Buffer::new();
            for z in &self.rapl {
                if let Some(uj) = z.energy_uj {
                    let index = n.format(z.index);
                    out.sample(
                        &[("index", index), ("path", &z.path)],
                        Value::F(uj as f64 / 1e6),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fs::refreshed;
    use std::time::Duration;

    #[test]
    fn watts() {
        assert_eq!(power_w(Some(12_500_000), None, None), Some(12.5));
        assert_eq!(power_w(Some(-4_000_000), Some(1), Some(1)), Some(4.0));
        // 1.5 A at 12 V
        assert_eq!(power_w(None, Some(1_500_000), Some(12_000_000)), Some(18.0));
        assert_eq!(
            power_w(None, Some(-1_500_000), Some(12_000_000)),
            Some(18.0)
        );
        assert_eq!(power_w(None, Some(1), None), None);
        assert_eq!(parse_int(b"-42\n"), Some(-42));
        assert_eq!(rapl_top("intel-rapl:0"), Some(0));
        assert_eq!(rapl_top("intel-rapl:0:1"), None);
        assert_eq!(rapl_top("intel-rapl"), None);
    }

    fn laptop() -> Root {
        Root::fixture("laptop")
    }

    #[test]
    fn laptop_tree() {
        let mut p = Power::default();
        let t0 = Instant::now();
        let mut buf = Vec::new();
        p.refresh(&laptop(), t0, 1, &mut buf);
        assert_eq!(p.batteries.len(), 1, "BAT0, not AC");
        let b = &p.batteries[0];
        assert_eq!(b.name, "BAT0");
        assert_eq!(b.capacity_pct, Some(81));
        assert_eq!(b.status, "Discharging");
        assert_eq!(b.power_w, Some(8.123456));
        // the package domain only, not its core subdomain nor psys
        assert_eq!(p.rapl.len(), 1);
        assert_eq!(p.rapl[0].index, 0);
        assert_eq!(p.rapl[0].path, "/sys/class/powercap/intel-rapl:0");
        assert_eq!(p.rapl[0].energy_uj, Some(240_422_366_267));
        assert_eq!(p.cpu_package_w, None, "one reading: no rate yet");
        p.refresh(&laptop(), t0 + Duration::from_secs(1), 1, &mut buf);
        assert_eq!(p.cpu_package_w, Some(0.0), "a static tree draws nothing");
        let j = serde_json::to_value(&p.batteries[0]).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"name": "BAT0", "capacity_pct": 81, "status": "Discharging", "power_w": 8.123456})
        );
    }

    #[test]
    fn rapl_rate_wraps() {
        let dir = crate::scratch::Scratch::new("rapl");
        let z = |file: &str| format!("sys/class/powercap/intel-rapl:0/{file}");
        dir.write(&z("name"), "package-0\n");
        dir.write(&z("max_energy_range_uj"), "262143328850\n");
        dir.write(&z("energy_uj"), "262133328850\n");
        let root = Root::new(dir.path());
        let mut p = Power::default();
        let t0 = Instant::now();
        let mut buf = Vec::new();
        p.refresh(&root, t0, 1, &mut buf);
        // 10 J to the wrap, then 5 J more, in 2 s: 7.5 W
        dir.write(&z("energy_uj"), "5000000\n");
        p.refresh(&root, t0 + Duration::from_secs(2), 1, &mut buf);
        assert_eq!(p.cpu_package_w, Some(7.5));
    }

    #[test]
    fn nothing_on_a_vm() {
        assert!(!refreshed("h200-vm", Power::refresh).present());
    }
}
