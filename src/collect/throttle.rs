//! Throttling: why the board or CPU runs slower than it could, now and
//! since boot. Sources, each used where the kernel exposes it:
//!
//! - Raspberry Pi firmware, `/sys/devices/platform/soc/soc:firmware/get_throttled`
//!   (the firmware's `get_throttled` mailbox value in hex, as `vcgencmd
//!   get_throttled` prints it): bits 0-3 now (under-voltage, ARM frequency
//!   capped, throttled, soft temperature limit), bits 16-19 the same since boot;
//! - the `rpi_volt` hwmon's `in0_lcrit_alarm` (1: under-voltage now);
//! - x86 `/sys/devices/system/cpu/cpuN/thermal_throttle/{core,package}_throttle_count`:
//!   a count that rose since the previous read is `thermal-throttle` now,
//!   any count above 0 is `thermal-throttle` since boot. One core count
//!   per physical core and one package count per package are read
//!   (SMT siblings and the cores of a package share theirs).
//!
//! Reasons are bits of a `u8` (`REASONS` names them), so a sample
//! allocates nothing.

use super::fs::{KeptFile, Root};
use super::num::{parse_u64, parse_u64_trimmed};
use super::rate::{Step, Window};
use super::rediscover;
use crate::families::{Sink, Value};
use std::path::PathBuf;
use std::time::Instant;

/// The reasons' wire names, by bit.
pub const REASONS: [&str; 5] = [
    "under-voltage",
    "frequency-capped",
    "throttled",
    "soft-temperature-limit",
    "thermal-throttle",
];
pub const UNDER_VOLTAGE: u8 = 1;
pub const FIRMWARE: u8 = 0b1111;
pub const THERMAL_THROTTLE: u8 = 1 << 4;

/// The firmware's `get_throttled` value (hex, `0x` optional).
pub fn parse_throttled(buf: &[u8]) -> Option<u32> {
    let s = buf.trim_ascii();
    let s = s
        .strip_prefix(b"0x")
        .or_else(|| s.strip_prefix(b"0X"))
        .unwrap_or(s);
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        let d = char::from(b).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

/// `get_throttled` → (now, since boot) reason bits.
pub fn firmware_bits(v: u32) -> (u8, u8) {
    let now = (v & 0xf) as u8;
    let since = ((v >> 16) & 0xf) as u8;
    (now, since | now)
}

/// What one sample found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    /// The reasons this machine has a source for.
    pub known: u8,
    pub now: u8,
    pub since_boot: u8,
}

impl Throttling {
    /// The names of the reasons in `bits`, in `REASONS` order.
    pub fn names(bits: u8) -> impl Iterator<Item = &'static str> {
        REASONS
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

#[derive(Debug)]
struct Count {
    file: KeptFile,
    last: u64,
}

#[derive(Debug, Default)]
pub struct Throttle {
    firmware: Option<KeptFile>,
    volt_alarm: Option<KeptFile>,
    counts: Vec<Count>,
    window: Window,
    found: Option<u64>,
    /// The last sample; `None` when the machine has no source.
    pub sample: Option<Throttling>,
}

/// The `in0_lcrit_alarm` of the hwmon named `rpi_volt`.
fn find_volt_alarm(root: &Root) -> Option<PathBuf> {
    let rd = std::fs::read_dir(root.path("sys/class/hwmon")).ok()?;
    rd.flatten().map(|e| e.path()).find_map(|d| {
        let name = std::fs::read(d.join("name")).ok()?;
        let f = d.join("in0_lcrit_alarm");
        (name.trim_ascii() == b"rpi_volt" && f.exists()).then_some(f)
    })
}

/// One `core_throttle_count` per (package, core) and one
/// `package_throttle_count` per package.
fn find_counts(root: &Root) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(root.path("sys/devices/system/cpu")) else {
        return Vec::new();
    };
    let mut cpus: Vec<(u64, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name();
            let n = parse_u64(n.as_encoded_bytes().strip_prefix(b"cpu")?)?;
            Some((n, e.path()))
        })
        .collect();
    cpus.sort_unstable();
    let id = |p: &PathBuf, f: &str| {
        std::fs::read(p.join("topology").join(f))
            .ok()
            .and_then(|b| parse_u64_trimmed(&b))
    };
    let (mut cores, mut packages) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for (_, dir) in cpus {
        let tt = dir.join("thermal_throttle");
        let (pkg, core) = (id(&dir, "physical_package_id"), id(&dir, "core_id"));
        let c = tt.join("core_throttle_count");
        if c.exists() && (core.is_none() || !cores.contains(&(pkg, core))) {
            cores.push((pkg, core));
            out.push(c);
        }
        let p = tt.join("package_throttle_count");
        if p.exists() && (pkg.is_none() || !packages.contains(&pkg)) {
            packages.push(pkg);
            out.push(p);
        }
    }
    out
}

impl Throttle {
    fn discover(&mut self, root: &Root) {
        let fw = root.path("sys/devices/platform/soc/soc:firmware/get_throttled");
        self.firmware = fw.exists().then(|| KeptFile::at(fw));
        self.volt_alarm = find_volt_alarm(root).map(KeptFile::at);
        let paths = find_counts(root);
        // The same set (the usual case): keep the counts read before.
        if !paths
            .iter()
            .map(PathBuf::as_path)
            .eq(self.counts.iter().map(|c| c.file.path()))
        {
            self.counts = paths
                .into_iter()
                .map(|p| Count {
                    file: KeptFile::at(p),
                    last: 0,
                })
                .collect();
            self.window.reset();
        }
    }

    /// Reads every source (re-discovering them when `epoch` is new).
    pub fn refresh(&mut self, root: &Root, now: Instant, epoch: u64, buf: &mut Vec<u8>) {
        if rediscover::due(&mut self.found, epoch) {
            self.discover(root);
        }
        let mut t = Throttling::default();
        let found = &mut self.found;
        let firmware = self
            .firmware
            .as_mut()
            .and_then(|f| rediscover::read(f, buf, found));
        if let Some(v) = firmware.and_then(parse_throttled) {
            let (n, s) = firmware_bits(v);
            t.known |= FIRMWARE;
            t.now |= n;
            t.since_boot |= s;
        }
        let alarm = self
            .volt_alarm
            .as_mut()
            .and_then(|f| rediscover::read(f, buf, found));
        if let Some(v) = alarm.and_then(parse_u64_trimmed) {
            t.known |= UNDER_VOLTAGE;
            if v != 0 {
                t.now |= UNDER_VOLTAGE;
                t.since_boot |= UNDER_VOLTAGE;
            }
        }
        if !self.counts.is_empty() {
            let step = self.window.step(now);
            let prev_now = self.sample.map_or(0, |s| s.now & THERMAL_THROTTLE);
            let (mut rose, mut any, mut read) = (false, false, false);
            for c in &mut self.counts {
                let Some(v) = rediscover::read(&mut c.file, buf, found).and_then(parse_u64_trimmed)
                else {
                    continue;
                };
                read = true;
                any |= v > 0;
                match step {
                    Step::Start => c.last = v,
                    Step::Hold => {}
                    Step::Due(_) => {
                        rose |= v > c.last;
                        c.last = v;
                    }
                }
            }
            if read {
                t.known |= THERMAL_THROTTLE;
                let now_bit = match step {
                    Step::Start => 0,
                    Step::Hold => prev_now,
                    Step::Due(_) => u8::from(rose) << 4,
                };
                t.now |= now_bit;
                if any || now_bit != 0 {
                    t.since_boot |= THERMAL_THROTTLE;
                }
            }
        }
        self.sample = (t.known != 0).then_some(t);
    }
}

crate::families::declare! {
    pub THROTTLING = gauge("sockagent_throttling", "1 while the board or CPU is throttled for this reason (when=now), or if it was since boot (when=since_boot); only reasons this machine has a source for.");
}

impl Throttling {
    /// `sockagent_throttling{reason,when}` for every reason known here.
    pub fn describe(&self, out: &mut dyn Sink) {
        THROTTLING.open(out);
        for (i, reason) in REASONS.iter().enumerate() {
            let bit = 1u8 << i;
            if self.known & bit == 0 {
                continue;
            }
            for (when, bits) in [("now", self.now), ("since_boot", self.since_boot)] {
                let v = u64::from(bits & bit != 0);
                out.sample(&[("reason", reason), ("when", when)], Value::U(v));
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
    fn get_throttled_bits() {
        assert_eq!(parse_throttled(b"50005\n"), Some(0x50005));
        assert_eq!(parse_throttled(b"0x50000"), Some(0x50000));
        assert_eq!(parse_throttled(b"0\n"), Some(0));
        assert_eq!(parse_throttled(b"zz"), None);
        assert_eq!(parse_throttled(b""), None);
        assert_eq!(parse_throttled(b"123456789"), None);
        // 0x50005: under-voltage and throttled now, and since boot
        let (now, since) = firmware_bits(0x50005);
        assert_eq!(
            Throttling::names(now).collect::<Vec<_>>(),
            ["under-voltage", "throttled"]
        );
        assert_eq!(
            Throttling::names(since).collect::<Vec<_>>(),
            ["under-voltage", "throttled"]
        );
        // 0x80000: a soft temperature limit happened, none now
        let (now, since) = firmware_bits(0x80000);
        assert_eq!(now, 0);
        assert_eq!(
            Throttling::names(since).collect::<Vec<_>>(),
            ["soft-temperature-limit"]
        );
    }

    #[test]
    fn rpi4_tree() {
        let s = refreshed("rpi4", Throttle::refresh).sample.unwrap();
        assert_eq!(s.known, FIRMWARE);
        assert_eq!(s.now, 0b0101);
        assert_eq!(s.since_boot, 0b0101);
    }

    #[test]
    fn thermal_throttle_counts_rising() {
        let dir = crate::scratch::Scratch::new("tt");
        let tt = |cpu: u32, file: &str| {
            format!("sys/devices/system/cpu/cpu{cpu}/thermal_throttle/{file}")
        };
        for cpu in 0..2 {
            dir.write(&tt(cpu, "core_throttle_count"), "0\n");
            dir.write(&tt(cpu, "package_throttle_count"), "0\n");
        }
        let root = Root::new(dir.path());
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let mut buf = Vec::new();
        t.refresh(&root, t0, 1, &mut buf);
        assert_eq!(
            t.sample.unwrap(),
            Throttling {
                known: THERMAL_THROTTLE,
                now: 0,
                since_boot: 0
            }
        );
        dir.write(&tt(1, "core_throttle_count"), "3\n");
        t.refresh(&root, t0 + Duration::from_secs(1), 1, &mut buf);
        let s = t.sample.unwrap();
        assert_eq!((s.now, s.since_boot), (THERMAL_THROTTLE, THERMAL_THROTTLE));
        t.refresh(&root, t0 + Duration::from_secs(2), 1, &mut buf);
        let s = t.sample.unwrap();
        assert_eq!(
            (s.now, s.since_boot),
            (0, THERMAL_THROTTLE),
            "no rise: not now"
        );
    }

    #[test]
    fn no_source_no_sample() {
        assert_eq!(refreshed("h200-vm", Throttle::refresh).sample, None);
    }
}
