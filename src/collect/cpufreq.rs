//! Each core's current clock (Documentation/admin-guide/pm/cpufreq.rst):
//! `/sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq` in kHz, else
//! `cpuinfo_cur_freq` (the hardware's reading, often root-only). The set of
//! cores and their files is found at first use and each re-probe epoch, or
//! after a read finds a file gone (a core taken offline); each read is
//! then one `pread` per core.

use super::fs::{KeptFile, Root};
use super::num::{parse_u64, parse_u64_trimmed};
use crate::families::{Sink, Value};

/// A kHz value as the kernel writes it (`1500000\n`); `None` for
/// anything else (`<unknown>`).
pub fn parse_khz(buf: &[u8]) -> Option<u64> {
    parse_u64_trimmed(buf).filter(|&k| k > 0)
}

/// One core's clock.
#[derive(Debug)]
pub struct CoreFreq {
    pub cpu: u32,
    file: Option<KeptFile>,
    /// The last reading, kHz.
    pub khz: Option<u64>,
}

/// `cpuN` → N.
fn cpu_number(name: &[u8]) -> Option<u32> {
    name.strip_prefix(b"cpu")
        .and_then(parse_u64)
        .and_then(|n| u32::try_from(n).ok())
}

#[derive(Debug, Default)]
pub struct CpuFreqs {
    pub cores: Vec<CoreFreq>,
    found: Option<u64>,
}

impl CpuFreqs {
    fn discover(&mut self, root: &Root) {
        self.cores.clear();
        let dir = root.path("sys/devices/system/cpu");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let Some(cpu) = cpu_number(e.file_name().as_encoded_bytes()) else {
                continue;
            };
            let file = ["scaling_cur_freq", "cpuinfo_cur_freq"]
                .iter()
                .map(|f| e.path().join("cpufreq").join(f))
                .find(|p| std::fs::File::open(p).is_ok())
                .map(KeptFile::at);
            self.cores.push(CoreFreq {
                cpu,
                file,
                khz: None,
            });
        }
        self.cores.sort_unstable_by_key(|c| c.cpu);
        if self.cores.iter().all(|c| c.file.is_none()) {
            self.cores.clear();
        }
    }

    /// Reads every core's clock (re-discovering the cores when `epoch` is new).
    pub fn refresh(&mut self, root: &Root, epoch: u64, buf: &mut Vec<u8>) {
        if super::rediscover::due(&mut self.found, epoch) {
            self.discover(root);
        }
        for c in &mut self.cores {
            c.khz = c
                .file
                .as_mut()
                .and_then(|f| super::rediscover::read(f, buf, &mut self.found))
                .and_then(parse_khz);
        }
    }

    /// True when some core has a reading.
    pub fn any(&self) -> bool {
        self.cores.iter().any(|c| c.khz.is_some())
    }
}

crate::families::declare! {
    pub SCALING_FREQUENCY = gauge("node_cpu_scaling_frequency_hertz", "Current scaled CPU thread frequency in hertz.");
}

impl CpuFreqs {
    /// Each core's clock (cores without a reading left out; nothing
    /// where no core has one).
    pub fn describe(&self, out: &mut dyn Sink) {
        if !self.any() {
            return;
        }
        SCALING_FREQUENCY.open(out);
        let mut n = itoa::Buffer::new();
        for c in &self.cores {
            if let Some(khz) = c.khz {
                out.sample(
                    &[("cpu", n.format(c.cpu))],
                    Value::U(khz.saturating_mul(1000)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khz() {
        assert_eq!(parse_khz(b"1500000\n"), Some(1_500_000));
        assert_eq!(parse_khz(b"<unknown>\n"), None);
        assert_eq!(parse_khz(b"0\n"), None);
        assert_eq!(parse_khz(b""), None);
        assert_eq!(cpu_number(b"cpu12"), Some(12));
        assert_eq!(cpu_number(b"cpufreq"), None);
        assert_eq!(cpu_number(b"cpuidle"), None);
    }

    fn clocks(tree: &str) -> Vec<(u32, Option<u64>)> {
        let root = Root::fixture(tree);
        let mut f = CpuFreqs::default();
        f.refresh(&root, 1, &mut Vec::new());
        f.cores.iter().map(|c| (c.cpu, c.khz)).collect()
    }

    #[test]
    fn each_core_in_number_order() {
        // the Pi 4's four cores share one policy
        assert_eq!(clocks("rpi4"), [0, 1, 2, 3].map(|c| (c, Some(1_500_000))));
        // intel_pstate: a policy per CPU
        assert_eq!(
            clocks("laptop"),
            [
                (0, Some(2_100_000)),
                (1, Some(3_400_000)),
                (2, Some(800_000)),
                (3, Some(4_200_000))
            ]
        );
        assert!(clocks("server").is_empty());
    }

    #[test]
    fn none_where_there_is_no_cpufreq() {
        let root = Root::fixture("h200-vm");
        let mut f = CpuFreqs::default();
        f.refresh(&root, 1, &mut Vec::new());
        assert!(!f.any());
    }
}
