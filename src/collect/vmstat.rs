//! The OOM killer's count from `/proc/vmstat` (`oom_kill`, Linux 4.13+):
//! the one `vmstat` line an alert needs (`NodeOutOfMemoryKill`), under
//! node_exporter's name. Read for a scrape only (the `sensors` collector, `scrape_only.rs`),
//! through the `Root`, with the file kept open.

use super::fs::{KeptFile, Root};
use super::num::{fields, lines, parse_u64};
use crate::families::Sink;

crate::families::declare! {
    /// node_exporter's vmstat collector's name for the line (it exports it
    /// untyped; a counter's name would need `_total`, so it is a gauge here).
    pub OOM_KILL = gauge("node_vmstat_oom_kill", "/proc/vmstat information field oom_kill.");
}

/// The `oom_kill` line's value; `None` when the kernel has none.
pub fn parse_oom_kill(buf: &[u8]) -> Option<u64> {
    lines(buf).find_map(|l| {
        let mut f = fields(l);
        (f.next()? == b"oom_kill").then(|| f.next().and_then(parse_u64))?
    })
}

/// The kept file and its last reading.
#[derive(Debug, Default)]
pub struct VmStat {
    file: Option<KeptFile>,
    /// Processes the OOM killer has killed since boot; `None`: no file or
    /// no `oom_kill` line.
    pub oom_kill: Option<u64>,
}

impl VmStat {
    /// Re-reads `/proc/vmstat` under `root` into `buf`.
    pub fn refresh(&mut self, root: &Root, buf: &mut Vec<u8>) {
        let f = self
            .file
            .get_or_insert_with(|| KeptFile::new(root, "proc/vmstat"));
        self.oom_kill = match f.read(buf) {
            Ok(()) => parse_oom_kill(buf),
            Err(_) => None,
        };
    }

    /// `OOM_KILL`, where there is a reading.
    pub fn describe(&self, out: &mut dyn Sink) {
        if let Some(n) = self.oom_kill {
            OOM_KILL.single(out, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oom_kill_line() {
        assert_eq!(
            parse_oom_kill(b"nr_free_pages 5\noom_kill 3\nnr_foo 1\n"),
            Some(3)
        );
        // a prefix of another name is not the line; a kernel without it: None
        assert_eq!(parse_oom_kill(b"oom_kill_extra 9\n"), None);
        assert_eq!(parse_oom_kill(b"nr_free_pages 5\n"), None);
        assert_eq!(parse_oom_kill(b"oom_kill x\n"), None);
        assert_eq!(parse_oom_kill(b""), None);
    }

    #[test]
    fn fixture_rpi4() {
        let root = Root::fixture("rpi4");
        let mut v = VmStat::default();
        v.refresh(&root, &mut Vec::new());
        assert_eq!(v.oom_kill, Some(2));
        // a tree without the file: nothing, no family
        let root = Root::fixture("server");
        v.file = None;
        v.refresh(&root, &mut Vec::new());
        assert_eq!(v.oom_kill, None);
    }

    #[test]
    fn this_machine_has_the_line() {
        let mut v = VmStat::default();
        v.refresh(&Root::default(), &mut Vec::new());
        assert!(v.oom_kill.is_some(), "Linux 4.13+ has oom_kill");
    }
}
