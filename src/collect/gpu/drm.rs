//! AMD (amdgpu) and Intel (i915, xe) GPUs through DRM sysfs, no libdrm.
//!
//! `/sys/class/drm/cardN/device` is the GPU's PCI device. amdgpu exposes
//! `gpu_busy_percent`, `mem_info_vram_total`/`_used` there and a hwmon
//! with `edge`/`junction`/`mem` temperatures; i915 and xe expose no busy %
//! and no VRAM figures in sysfs (those are null), and a hwmon temperature
//! only on discrete cards with recent kernels (xe: `temp2` package).
//! Other DRM drivers (nvidia-drm: NVML covers it; virtio, vc4, simpledrm
//! and the like: display only) are not listed.

use super::Gpu;
use crate::collect::fs::Root;
use crate::collect::sensors::{hwmon_dirs, pick_temp_input, read_temp, read_trim};
use std::path::{Path, PathBuf};

/// Most cards a host is searched for (`card0`...): bounds the probe's work
/// on a host with many virtual DRM devices.
const MAX_CARDS: usize = 64;

/// Where distributions keep the PCI ID database (`hwdata`, `pciutils`).
const PCI_IDS: &[&str] = &[
    "usr/share/hwdata/pci.ids",
    "usr/share/misc/pci.ids",
    "usr/share/pci.ids",
];

/// The PCI ID database is a few MiB; past this it is not read.
const MAX_PCI_IDS: u64 = 8 << 20;

/// Which DRM drivers are GPUs this module reads.
fn vendor_of(driver: &str) -> Option<&'static str> {
    match driver {
        "amdgpu" => Some("amd"),
        "i915" | "xe" => Some("intel"),
        _ => None,
    }
}

/// One card found by the probe, with the files a sample reads.
#[derive(Debug, Clone)]
pub struct Card {
    /// `sys/class/drm/cardN` under the root.
    pub dir: PathBuf,
    pub driver: String,
    pub name: String,
    pub vendor: &'static str,
    busy: Option<PathBuf>,
    vram_total: Option<PathBuf>,
    vram_used: Option<PathBuf>,
    temp: Option<PathBuf>,
    runtime_status: PathBuf,
}

/// `N` of a `cardN` entry (connectors are `cardN-DP-1`, render nodes `renderD128`).
fn card_number(name: &str) -> Option<u32> {
    let n = name.strip_prefix("card")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// `PCI_ID=1002:687F` of a device's `uevent`.
pub fn parse_pci_id(uevent: &str) -> Option<(u16, u16)> {
    let v = uevent.lines().find_map(|l| l.strip_prefix("PCI_ID="))?;
    let (a, b) = v.trim().split_once(':')?;
    Some((
        u16::from_str_radix(a, 16).ok()?,
        u16::from_str_radix(b, 16).ok()?,
    ))
}

/// A `0x1002` sysfs id file's value.
fn parse_hex_id(s: &str) -> Option<u16> {
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// The device's name in the PCI ID database (`pci.ids` format: a vendor
/// line `1002  Advanced Micro...` at column 0, its devices below it as
/// `\t687f  Vega 10 XL/XT [Radeon RX Vega 56/64]`).
pub fn pci_ids_name(buf: &[u8], vendor: u16, device: u16) -> Option<String> {
    let text = String::from_utf8_lossy(buf);
    let (v, d) = (format!("{vendor:04x}"), format!("{device:04x}"));
    let mut in_vendor = false;
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            if in_vendor && !rest.starts_with('\t') {
                if let Some(name) = rest.strip_prefix(d.as_str()) {
                    if name.starts_with(' ') {
                        return Some(name.trim().to_string()).filter(|n| !n.is_empty());
                    }
                }
            }
        } else {
            if in_vendor {
                return None; // the next vendor: the device is not listed
            }
            in_vendor = line.get(..4) == Some(v.as_str())
                && line.get(4..).is_some_and(|r| r.starts_with(' '));
        }
    }
    None
}

fn vendor_word(vendor: &str) -> &'static str {
    match vendor {
        "amd" => "AMD",
        "intel" => "Intel",
        _ => "GPU",
    }
}

/// The card's name: amdgpu's `product_name` where the board has one, else
/// the PCI ID database's name, else "AMD GPU 1002:687f".
fn card_name(root: &Root, dev: &Path, vendor: &'static str) -> String {
    if let Some(p) = read_trim(&dev.join("product_name")).filter(|s| !s.is_empty()) {
        return p;
    }
    let ids = match (
        read_trim(&dev.join("vendor")).and_then(|s| parse_hex_id(&s)),
        read_trim(&dev.join("device")).and_then(|s| parse_hex_id(&s)),
    ) {
        (Some(v), Some(d)) => Some((v, d)),
        _ => read_trim(&dev.join("uevent")).and_then(|u| parse_pci_id(&u)),
    };
    let Some((v, d)) = ids else {
        return format!("{} GPU", vendor_word(vendor));
    };
    for rel in PCI_IDS {
        let mut buf = Vec::new();
        let path = root.path(rel);
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        use std::io::Read;
        if f.take(MAX_PCI_IDS).read_to_end(&mut buf).is_ok() {
            if let Some(n) = pci_ids_name(&buf, v, d) {
                return n;
            }
        }
    }
    format!("{} GPU {v:04x}:{d:04x}", vendor_word(vendor))
}

/// The card's temperature input: amdgpu `edge` (what most tools show as
/// "the GPU temperature"), then `junction`; xe `pkg`; else the first one.
fn card_temp(dev: &Path) -> Option<PathBuf> {
    hwmon_dirs(dev)
        .iter()
        .find_map(|h| pick_temp_input(h, &["edge", "junction", "pkg"]))
}

fn existing(p: PathBuf) -> Option<PathBuf> {
    p.exists().then_some(p)
}

/// Lists the amdgpu, i915 and xe cards under `root`, in card order. A card
/// in `known` (the last probe's) keeps its name: naming one may read the
/// PCI ID database, a few MiB, which is done once per card, not per probe.
pub fn probe(root: &Root, known: &[Card]) -> Vec<Card> {
    let Ok(rd) = std::fs::read_dir(root.path("sys/class/drm")) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = rd
        .flatten()
        .filter_map(|e| Some((card_number(e.file_name().to_str()?)?, e.path())))
        .collect();
    found.sort_unstable();
    found.truncate(MAX_CARDS);
    let mut out = Vec::new();
    for (_, dir) in found {
        let dev = dir.join("device");
        let Some(driver) = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
        else {
            continue;
        };
        let Some(vendor) = vendor_of(&driver) else {
            continue;
        };
        let name = match known.iter().find(|c| c.dir == dir && c.driver == driver) {
            Some(c) => c.name.clone(),
            None => card_name(root, &dev, vendor),
        };
        out.push(Card {
            name,
            vendor,
            busy: existing(dev.join("gpu_busy_percent")),
            vram_total: existing(dev.join("mem_info_vram_total")),
            vram_used: existing(dev.join("mem_info_vram_used")),
            temp: card_temp(&dev),
            runtime_status: dev.join("power/runtime_status"),
            driver,
            dir,
        });
    }
    out
}

/// A `0..=100` percentage file.
pub fn parse_percent(s: &str) -> Option<f32> {
    let v: u32 = s.trim().parse().ok()?;
    (v <= 100).then_some(v as f32)
}

fn read_u64(p: &Option<PathBuf>) -> Option<u64> {
    p.as_ref()
        .and_then(|p| read_trim(p))
        .and_then(|s| s.parse().ok())
}

impl Card {
    /// Reads the card. A runtime-suspended card (a laptop's idle dGPU) is
    /// not woken up: reading `gpu_busy_percent` or the hwmon would power it
    /// on, so it reports 0 % busy and no temperature.
    pub fn read(&self, temps: bool) -> Gpu {
        let asleep = read_trim(&self.runtime_status).is_some_and(|s| s == "suspended");
        let usage = if asleep {
            self.busy.as_ref().map(|_| 0.0)
        } else {
            self.busy
                .as_ref()
                .and_then(|p| read_trim(p))
                .and_then(|s| parse_percent(&s))
        };
        let temp_c = if temps && !asleep {
            self.temp.as_ref().and_then(|p| read_temp(p))
        } else {
            None
        };
        Gpu {
            name: self.name.clone(),
            vendor: self.vendor,
            usage,
            memory_total: read_u64(&self.vram_total),
            memory_used: read_u64(&self.vram_used),
            temp_c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Intel card as i915 and xe show it: its name, no busy %, no VRAM.
    fn unread(name: &str) -> Gpu {
        Gpu {
            name: name.into(),
            vendor: "intel",
            usage: None,
            memory_total: None,
            memory_used: None,
            temp_c: None,
        }
    }

    fn read_all(root: &Root) -> Vec<Gpu> {
        probe(root, &[]).iter().map(|c| c.read(true)).collect()
    }

    #[test]
    fn prometheus_procfs_amdgpu_and_i915() {
        let gpus = read_all(&Root::fixture("prometheus-procfs"));
        // card0: amdgpu (empty product_name, no pci.ids in the tree, no hwmon);
        // card1: i915 with nothing but its driver link and uevent.
        assert_eq!(
            gpus,
            vec![
                Gpu {
                    name: "AMD GPU 1002:687f".into(),
                    vendor: "amd",
                    usage: Some(4.0),
                    memory_total: Some(8573157376),
                    memory_used: Some(1490378752),
                    temp_c: None,
                },
                unread("Intel GPU 8086:5917"),
            ]
        );
    }

    #[test]
    fn amd_host_discrete_card_with_hwmon() {
        let gpus = read_all(&Root::fixture("amd-host"));
        assert_eq!(
            gpus,
            vec![Gpu {
                name: "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]".into(),
                vendor: "amd",
                usage: Some(37.0),
                memory_total: Some(25753026560),
                memory_used: Some(1073741824),
                temp_c: Some(45.0), // edge, not junction (52) or mem (60)
            }]
        );
        let root = Root::fixture("amd-host");
        let first = probe(&root, &[]);
        let off: Vec<Gpu> = first.iter().map(|c| c.read(false)).collect();
        assert_eq!(off[0].temp_c, None);
        // a later probe finds the same card and keeps its name
        let again = probe(&root, &first);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].name, first[0].name);
    }

    #[test]
    fn intel_laptop_igpu() {
        // i915 exposes no busy %, no VRAM, and an integrated GPU has no hwmon
        assert_eq!(
            read_all(&Root::fixture("intel-laptop")),
            vec![unread("Alder Lake-P GT2 [Iris Xe Graphics]")]
        );
    }

    #[test]
    fn intel_arc_on_xe_with_hwmon() {
        assert_eq!(
            read_all(&Root::fixture("intel-arc")),
            vec![Gpu {
                temp_c: Some(41.0), // temp2 "pkg", not temp3 "vram"
                ..unread("Battlemage G21 [Arc B580]")
            }]
        );
    }

    #[test]
    fn suspended_amdgpu_is_not_woken() {
        let gpus = read_all(&Root::fixture("amd-laptop-suspended"));
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].usage, Some(0.0));
        assert_eq!(gpus[0].temp_c, None);
        assert_eq!(gpus[0].memory_total, Some(4294967296));
    }

    #[test]
    fn boards_and_vms_have_no_drm_gpu() {
        // a Raspberry Pi 5's vc4 card and a VM with no DRM at all
        assert!(probe(&Root::fixture("rpi5"), &[]).is_empty());
        assert!(probe(&Root::fixture("h200-vm"), &[]).is_empty());
    }

    #[test]
    fn parsers() {
        assert_eq!(
            parse_pci_id("DRIVER=amdgpu\nPCI_ID=1002:687F\n"),
            Some((0x1002, 0x687f))
        );
        assert_eq!(parse_pci_id("DRIVER=x\n"), None);
        assert_eq!(parse_percent("37\n"), Some(37.0));
        assert_eq!(parse_percent("101"), None);
        assert_eq!(parse_percent("-1"), None);
        assert_eq!(card_number("card12"), Some(12));
        assert_eq!(card_number("card1-DP-1"), None);
        assert_eq!(card_number("renderD128"), None);
        let ids = b"# comment\n1002  Advanced Micro Devices, Inc. [AMD/ATI]\n\t687f  Vega 10 XL/XT [Radeon RX Vega 56/64]\n\t\t1043 04c4  subsystem\n10de  NVIDIA Corporation\n\t687f  not this one\n";
        assert_eq!(
            pci_ids_name(ids, 0x1002, 0x687f).as_deref(),
            Some("Vega 10 XL/XT [Radeon RX Vega 56/64]")
        );
        assert_eq!(pci_ids_name(ids, 0x1002, 0x1234), None);
        assert_eq!(pci_ids_name(ids, 0x8086, 0x687f), None);
        assert_eq!(pci_ids_name(b"\xff\n\t", 1, 2), None);
    }
}
