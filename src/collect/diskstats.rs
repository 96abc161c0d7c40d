//! Whole-disk I/O from `/proc/diskstats` (Documentation/admin-guide/iostats.rst):
//! bytes read and written and the busy time, as counters (`/metrics`) and
//! as rates since the previous sample (the metrics answer's `disk_io`).
//!
//! A whole disk is a name with a directory in `/sys/block` (partitions are
//! not there), minus `loop*`, `ram*` and `zram*` devices that have done no
//! I/O at all. The `/sys/block` listing is taken at first use and again
//! each re-probe epoch (a disk plugged in meanwhile shows from then on);
//! the kept `/proc/diskstats` is read on every sample.

use super::fs::{KeptDir, KeptFile, Root};
use super::num::{fields, lines, parse_u64};
use super::rate::{per_sec, Rate, Step, Window};
use crate::families::{Family, Sink, Value};
use serde::Serialize;
use std::time::Instant;

/// The unit of diskstats' sector counts, whatever the disk's sector size.
const SECTOR: u64 = 512;

/// One whole disk: the `disk_io[]` row of the metrics answer (the serde
/// keys) and the counters behind it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskIo {
    /// The kernel's name (`nvme0n1`, `sda`), as the disks answer names it.
    pub name: String,
    #[serde(serialize_with = "super::net::per_s")]
    pub read_bytes_per_s: Rate,
    #[serde(serialize_with = "super::net::per_s")]
    pub write_bytes_per_s: Rate,
    /// Share of the window the disk had I/O in flight, 0-100.
    pub busy_pct: Option<f64>,
    #[serde(skip)]
    pub read_bytes: u64,
    #[serde(skip)]
    pub written_bytes: u64,
    /// io_ticks: milliseconds with I/O in flight.
    #[serde(skip)]
    pub io_ms: u64,
    #[serde(skip)]
    io_base: u64,
}

/// Devices that are whole disks only when they have done any I/O.
fn virtual_ram_or_loop(name: &[u8]) -> bool {
    name.starts_with(b"loop") || name.starts_with(b"ram") || name.starts_with(b"zram")
}

/// Parses `/proc/diskstats` into `out` (rows reused in place), keeping the
/// lines whose name `whole` accepts; rates by `step` (see `rate`).
pub fn parse_diskstats(
    buf: &[u8],
    whole: impl Fn(&[u8]) -> bool,
    out: &mut Vec<DiskIo>,
    step: Step,
) {
    let mut n = 0;
    for line in lines(buf) {
        // major minor name, then (iostats.rst's fields 4-…) reads, merged,
        // sectors read, ms reading, writes, merged, sectors written, ms
        // writing, in flight, io_ticks, weighted ms, [discards, flushes…]
        let mut f = fields(line);
        let Some(name) = f.nth(2) else { continue };
        let mut v = [0u64; 11];
        let mut got = 0;
        for (slot, x) in v.iter_mut().zip(f) {
            let Some(x) = parse_u64(x) else { break };
            *slot = x;
            got += 1;
        }
        if got < 11 || !whole(name) {
            continue;
        }
        if virtual_ram_or_loop(name) && v.iter().all(|&x| x == 0) {
            continue;
        }
        let [_, _, sectors_read, _, _, _, sectors_written, _, _, io_ticks, _] = v;
        if out.len() <= n {
            out.push(DiskIo::default());
        }
        let Some(row) = out.get_mut(n) else { continue };
        let same = row.name.as_bytes() == name;
        if !same {
            row.name.clear();
            row.name.push_str(&String::from_utf8_lossy(name));
        }
        row.read_bytes = sectors_read.saturating_mul(SECTOR);
        row.written_bytes = sectors_written.saturating_mul(SECTOR);
        row.io_ms = io_ticks;
        row.read_bytes_per_s.apply(step, row.read_bytes, !same);
        row.write_bytes_per_s.apply(step, row.written_bytes, !same);
        match (step, same) {
            (Step::Hold, true) => {}
            (Step::Due(secs), true) => {
                row.busy_pct = per_sec(io_ticks, row.io_base, secs)
                    .map(|ms_per_s| (ms_per_s / 10.0).clamp(0.0, 100.0));
                row.io_base = io_ticks;
            }
            _ => {
                row.busy_pct = None;
                row.io_base = io_ticks;
            }
        }
        n += 1;
    }
    out.truncate(n);
}

/// The kept `/proc/diskstats`, the whole-disk names and the rows.
#[derive(Debug, Default)]
pub struct DiskStats {
    file: Option<KeptFile>,
    block: Option<KeptDir>,
    /// The names in `/sys/block`, sorted; the epoch they were listed in.
    whole: Vec<Vec<u8>>,
    listed: Option<u64>,
    window: Window,
    pub rows: Vec<DiskIo>,
    /// False when `/proc/diskstats` could not be read (no such source).
    pub ok: bool,
    /// The file is not there: tried again only with the next listing
    /// (other errors are retried on the next sample).
    absent: bool,
}

impl DiskStats {
    /// Reads the counters into the rows (listing `/sys/block` again when
    /// `epoch` is new); `buf` is the collectors' scratch.
    pub fn sample(
        &mut self,
        root: &Root,
        now: Instant,
        epoch: u64,
        buf: &mut Vec<u8>,
    ) -> super::error::Result<()> {
        let relisted = super::rediscover::due(&mut self.listed, epoch);
        if relisted {
            let mut names = Vec::new();
            let block = self
                .block
                .get_or_insert_with(|| KeptDir::new(root, "sys/block"));
            // No /sys/block (a container): no whole disks to show.
            let _ = block.for_each(|n| names.push(n.to_vec()));
            names.sort_unstable();
            if names != self.whole {
                self.whole = names;
            }
        }
        let file = self
            .file
            .get_or_insert_with(|| KeptFile::new(root, "proc/diskstats"));
        if self.absent && !relisted {
            // No /proc/diskstats (a fixture tree, a container): looked for
            // again with the /sys/block listing, not an open per sample.
            return Ok(());
        }
        if let Err(e) = file.read(buf) {
            self.absent = super::error::CollectError::vanished(&e);
            self.ok = false;
            self.rows.clear();
            self.window.reset();
            return Err(super::error::CollectError::io("/proc/diskstats", e));
        }
        self.ok = true;
        self.absent = false;
        let step = self.window.step(now);
        let whole = &self.whole;
        parse_diskstats(
            buf,
            |n| whole.binary_search_by(|w| w.as_slice().cmp(n)).is_ok(),
            &mut self.rows,
            step,
        );
        Ok(())
    }
}

type Pick = fn(&DiskIo) -> f64;

/// node_exporter's diskstats families, per whole disk.
pub const FAMILIES: [(Family, Pick); 3] = [
    (
        Family::counter(
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
        ),
        |d| d.io_ms as f64 / 1000.0,
    ),
    (
        Family::counter(
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
        ),
        |d| d.read_bytes as f64,
    ),
    (
        Family::counter(
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
        ),
        |d| d.written_bytes as f64,
    ),
];

impl DiskStats {
    /// Every whole disk's counters; nothing when the file could not be read.
    pub fn describe(&self, out: &mut dyn Sink) {
        if !self.ok || self.rows.is_empty() {
            return;
        }
        for (family, pick) in FAMILIES {
            family.open(out);
            for d in &self.rows {
                out.sample(&[("device", &d.name)], Value::F(pick(d)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/diskstats` with this nvme0n1 line, the other devices alike
    /// in every sample (only the whole disk moves).
    fn sample(nvme0n1: &str) -> Vec<u8> {
        let rest = "\
 259       1 nvme0n1p1 900 0 2000 9 400 0 4000 19 0 90 28\n\
   8       0 sda 10 0 8 1 0 0 0 0 0 5 1\n\
   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
   7       1 loop1 80 0 1368 17 12 0 8 32 0 48 80 0 0 0 0 12 30\n";
        format!(" 259       0 nvme0n1 {nvme0n1}\n{rest}").into_bytes()
    }

    fn a() -> Vec<u8> {
        sample("1000 0 2048 10 500 0 4096 20 0 100 30 0 0 0 0")
    }

    fn b() -> Vec<u8> {
        sample("2000 0 4096 10 900 0 413696 20 0 600 30 0 0 0 0")
    }

    fn whole(n: &[u8]) -> bool {
        [&b"nvme0n1"[..], b"sda", b"loop0", b"loop1"].contains(&n)
    }

    #[test]
    fn whole_disks_only_and_bytes_from_sectors() {
        let mut v = Vec::new();
        parse_diskstats(&a(), whole, &mut v, Step::Start);
        let names: Vec<&str> = v.iter().map(|d| d.name.as_str()).collect();
        // the partition is not a whole disk; an idle loop device is not shown
        assert_eq!(names, ["nvme0n1", "sda", "loop1"]);
        assert_eq!(v[0].read_bytes, 2048 * 512);
        assert_eq!(v[0].written_bytes, 4096 * 512);
        assert_eq!(v[0].io_ms, 100);
        assert_eq!(v[0].read_bytes_per_s.per_s, None);
        assert_eq!(v[0].busy_pct, None);
    }

    #[test]
    fn rates_over_two_buffers() {
        let mut v = Vec::new();
        parse_diskstats(&a(), whole, &mut v, Step::Start);
        parse_diskstats(&b(), whole, &mut v, Step::Due(2.0));
        let d = &v[0];
        assert_eq!(d.read_bytes_per_s.per_s, Some(2048.0 * 512.0 / 2.0));
        assert_eq!(
            d.write_bytes_per_s.per_s,
            Some((413696.0 - 4096.0) * 512.0 / 2.0)
        );
        // 500 ms busy in 2 s
        assert_eq!(d.busy_pct, Some(25.0));
        assert_eq!(v[1].read_bytes_per_s.per_s, Some(0.0));
        assert_eq!(v[1].busy_pct, Some(0.0));
        let j = serde_json::to_value(d).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"name": "nvme0n1", "read_bytes_per_s": 524288.0,
                "write_bytes_per_s": 104857600.0, "busy_pct": 25.0})
        );
        // a hold keeps the last window's rates
        parse_diskstats(&b(), whole, &mut v, Step::Hold);
        assert_eq!(v[0].busy_pct, Some(25.0));
        // counters went back (the device was reset): null, not huge
        parse_diskstats(&a(), whole, &mut v, Step::Due(1.0));
        assert_eq!(v[0].read_bytes_per_s.per_s, None);
        assert_eq!(v[0].busy_pct, None);
    }

    #[test]
    fn busy_is_at_most_100() {
        let mut v = Vec::new();
        parse_diskstats(
            b"8 0 sda 0 0 0 0 0 0 0 0 0 0 0\n",
            whole,
            &mut v,
            Step::Start,
        );
        parse_diskstats(
            b"8 0 sda 0 0 0 0 0 0 0 0 0 1500 0\n",
            whole,
            &mut v,
            Step::Due(1.0),
        );
        assert_eq!(v[0].busy_pct, Some(100.0));
    }

    #[test]
    fn short_or_odd_lines_are_skipped() {
        let mut v = Vec::new();
        parse_diskstats(
            b"8 0 sda 1 2 3\n\nx\n8 0 sda 1 2 x 4 5 6 7 8 9 10 11\n",
            whole,
            &mut v,
            Step::Start,
        );
        assert!(v.is_empty());
    }

    #[test]
    fn server_fixture() {
        let root = Root::fixture("server");
        let mut d = DiskStats::default();
        let mut buf = Vec::new();
        d.sample(&root, Instant::now(), 1, &mut buf).unwrap();
        let names: Vec<&str> = d.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["sda", "nvme0n1"]);
    }

    /// A disk plugged in shows once the re-probe epoch moves on.
    #[test]
    fn a_new_disk_shows_from_the_next_epoch() {
        let dir = std::env::temp_dir().join(format!("sockagent-ds-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sys/block/sda")).unwrap();
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        let line = |n: &str| format!("8 0 {n} 1 0 8 0 1 0 8 0 0 10 0\n");
        std::fs::write(dir.join("proc/diskstats"), line("sda") + &line("sdb")).unwrap();
        let root = Root::new(&dir);
        let (mut d, mut buf, t0) = (DiskStats::default(), Vec::new(), Instant::now());
        let names = |d: &DiskStats| d.rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        d.sample(&root, t0, 1, &mut buf).unwrap();
        assert_eq!(names(&d), ["sda"]);
        std::fs::create_dir_all(dir.join("sys/block/sdb")).unwrap();
        d.sample(&root, t0, 1, &mut buf).unwrap();
        assert_eq!(names(&d), ["sda"], "not listed again in the same epoch");
        d.sample(&root, t0, 2, &mut buf).unwrap();
        assert_eq!(names(&d), ["sda", "sdb"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
