//! Pressure stall information (Documentation/accounting/psi.rst):
//! `/proc/pressure/{cpu,memory,io}`, each a `some` line and (memory, io,
//! and cpu since 5.13) a `full` line:
//! `some avg10=0.12 avg60=0.05 avg300=0.01 total=12345` (total in µs).

use super::num::{fields, lines, parse_decimal, parse_u64};
use crate::families::{Family, Sink};

/// One line of a pressure file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiLine {
    /// Share of the last 10 s with a stall, %.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Stalled time since boot, µs.
    pub total_us: u64,
}

/// One resource's pressure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Psi {
    pub some: Option<PsiLine>,
    pub full: Option<PsiLine>,
}

/// `/proc/pressure/cpu`, `memory`, `io`; a resource whose file could not
/// be read is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub cpu: Option<Psi>,
    pub memory: Option<Psi>,
    pub io: Option<Psi>,
}

fn parse_line(rest: &[u8]) -> Option<PsiLine> {
    let mut l = PsiLine::default();
    let mut seen = 0u8;
    for f in fields(rest) {
        let Some(eq) = f.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (k, v) = (f.get(..eq)?, f.get(eq + 1..)?);
        match k {
            b"avg10" => (l.avg10, seen) = (parse_decimal(v)?, seen | 1),
            b"avg60" => (l.avg60, seen) = (parse_decimal(v)?, seen | 2),
            b"avg300" => (l.avg300, seen) = (parse_decimal(v)?, seen | 4),
            b"total" => (l.total_us, seen) = (parse_u64(v)?, seen | 8),
            _ => {}
        }
    }
    (seen == 15).then_some(l)
}

/// One pressure file; `None` when it has neither a `some` nor a `full` line.
pub fn parse_pressure(buf: &[u8]) -> Option<Psi> {
    let mut p = Psi::default();
    for line in lines(buf) {
        if let Some(rest) = line.strip_prefix(b"some ") {
            p.some = parse_line(rest);
        } else if let Some(rest) = line.strip_prefix(b"full ") {
            p.full = parse_line(rest);
        }
    }
    (p.some.is_some() || p.full.is_some()).then_some(p)
}

type Line = fn(&Pressure) -> Option<PsiLine>;

crate::families::declare! {
    CPU_WAITING = counter("node_pressure_cpu_waiting_seconds_total", "Total time in seconds that processes have waited for CPU time");
    IO_STALLED = counter("node_pressure_io_stalled_seconds_total", "Total time in seconds no process could make progress due to IO congestion");
    IO_WAITING = counter("node_pressure_io_waiting_seconds_total", "Total time in seconds that processes have waited due to IO congestion");
    MEMORY_STALLED = counter("node_pressure_memory_stalled_seconds_total", "Total time in seconds no process could make progress due to memory congestion");
    MEMORY_WAITING = counter("node_pressure_memory_waiting_seconds_total", "Total time in seconds that processes have waited for memory");
}

/// node_exporter's pressure families, each a total stall time, and the
/// line it is read from.
const FAMILIES: [(Family, Line); 5] = [
    (CPU_WAITING, |p| p.cpu.and_then(|x| x.some)),
    (IO_STALLED, |p| p.io.and_then(|x| x.full)),
    (IO_WAITING, |p| p.io.and_then(|x| x.some)),
    (MEMORY_STALLED, |p| p.memory.and_then(|x| x.full)),
    (MEMORY_WAITING, |p| p.memory.and_then(|x| x.some)),
];

impl Pressure {
    /// The stall totals this kernel has (a line it lacks, no family).
    pub fn describe(&self, out: &mut dyn Sink) {
        for (family, line) in FAMILIES {
            if let Some(l) = line(self) {
                family.single(out, l.total_us as f64 / 1e6);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_and_full() {
        let p = parse_pressure(
            b"some avg10=89.28 avg60=87.29 avg300=69.64 total=681366561\n\
              full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        let s = p.some.unwrap();
        assert_eq!((s.avg10, s.avg60, s.avg300), (89.28, 87.29, 69.64));
        assert_eq!(s.total_us, 681366561);
        assert_eq!(p.full.unwrap().total_us, 0);
    }

    #[test]
    fn cpu_without_full_before_5_13() {
        let p = parse_pressure(b"some avg10=0.10 avg60=2.00 avg300=3.85 total=15\n").unwrap();
        assert_eq!(p.some.unwrap().avg10, 0.1);
        assert_eq!(p.full, None);
    }

    #[test]
    fn odd_input() {
        assert_eq!(parse_pressure(b""), None);
        assert_eq!(
            parse_pressure(b"some avg10=x avg60=0 avg300=0 total=1\n"),
            None
        );
        assert_eq!(parse_pressure(b"some avg10=1.0 total=1\n"), None);
        // a 64-bit total (µs: 584 000 years) parses
        let p =
            parse_pressure(b"full avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551615")
                .unwrap();
        assert_eq!(p.full.unwrap().total_us, u64::MAX);
    }

    #[test]
    fn prometheus_procfs_fixture() {
        let root = crate::collect::fs::Root::fixture("prometheus-procfs");
        let io = std::fs::read(root.path("proc/pressure/io")).unwrap();
        let io = parse_pressure(&io).unwrap();
        assert_eq!(io.some.unwrap().total_us, 15);
        assert_eq!(io.full.unwrap().avg10, 0.2);
        assert_eq!(io.full.unwrap().total_us, 25);
    }
}
