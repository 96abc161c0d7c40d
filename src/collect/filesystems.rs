//! The mounted filesystems (the `disks` answer and `/metrics`' filesystem
//! families): the mount table and each device's facts, looked up again
//! only when the kernel flags a mount change, and a `statvfs` per mount,
//! made off the loop's thread (`mounts`: a mount that does not answer in
//! time is left out, so a hung mount stops nothing) unless the mount is a
//! local filesystem the worker has answered in time before.

use super::collector::{Collector, Cx};
use super::error::{CollectError, Result};
use super::{disks, fs, mounts, sensors};
use std::time::Instant;

/// The mounted filesystems, as the last disks collection found them.
#[derive(Debug, Default)]
pub struct DisksSample {
    pub at: Option<Instant>,
    /// The `disks` answer's rows.
    pub rows: Vec<disks::DiskRow>,
    /// Every mount with its space (not only the first of a device).
    pub filesystems: Vec<disks::FsRow>,
}

/// What the disks answer needs that only changes with the mount table.
struct DiskTopology {
    mounts: Vec<disks::Mount>,
    /// Each mount's path under the root, for the prober's rounds.
    paths: std::sync::Arc<[std::path::PathBuf]>,
    /// Which of them may be answered on the loop (`Mount::direct`).
    direct: std::sync::Arc<[bool]>,
    info: std::collections::HashMap<(u32, u32), disks::DevInfo>,
    /// Whole-disk kernel name → its temperature file, if it has one.
    temp_files: std::collections::HashMap<String, Option<std::path::PathBuf>>,
}

/// True when the kernel flagged the kept mountinfo file (a mount or
/// unmount since it was last read). A regular file (a fixture tree) never is.
fn mount_table_changed(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0 && (n < 0 || p.revents & (libc::POLLPRI | libc::POLLERR) != 0)
}

/// The disks collector: the kept mount table, the `statvfs` prober and
/// what it found.
pub struct Disks {
    pub sample: DisksSample,
    mountinfo: Option<std::fs::File>,
    topology: Option<std::rc::Rc<DiskTopology>>,
    /// `statvfs` off the loop, and the topology its round is over.
    pub prober: mounts::Prober,
    round: Option<std::rc::Rc<DiskTopology>>,
}

impl Default for Disks {
    fn default() -> Self {
        Self::new()
    }
}

impl Disks {
    pub fn new() -> Self {
        Disks {
            sample: DisksSample::default(),
            mountinfo: None,
            topology: None,
            prober: mounts::Prober::new(disks::space),
            round: None,
        }
    }

    /// Whether a round is out (the sample is the last round's meanwhile).
    pub fn pending(&self) -> bool {
        self.prober.deadline().is_some()
    }

    /// The mounted block devices, their sysfs facts and temperature files.
    /// Reading mountinfo costs ~25 µs of kernel time even when nothing
    /// changed, so the kept file is polled instead: the kernel flags it
    /// (POLLPRI) when the mount table changes, and only then is it re-read.
    fn topology(&mut self, cx: &mut Cx) -> Result<std::rc::Rc<DiskTopology>> {
        let changed = match (&self.mountinfo, &self.topology) {
            (Some(f), Some(_)) => mount_table_changed(f),
            _ => true,
        };
        if let (false, Some(t)) = (changed, &self.topology) {
            return Ok(t.clone());
        }
        let root = cx.s.root.clone();
        const MOUNTINFO: &str = "/proc/self/mountinfo";
        let file = match self.mountinfo.take() {
            Some(f) => f,
            None => std::fs::File::open(root.path(MOUNTINFO))
                .map_err(CollectError::reading(MOUNTINFO))?,
        };
        fs::pread_all(&file, &mut cx.buf).map_err(CollectError::reading(MOUNTINFO))?;
        self.mountinfo = Some(file);
        let mounts = disks::parse_mountinfo(&cx.buf);
        let mut info = std::collections::HashMap::new();
        let mut temp_files = std::collections::HashMap::new();
        for m in &mounts {
            let d = disks::dev_info(&root, m);
            let whole = d.parent.clone().unwrap_or_else(|| d.kernel_name.clone());
            temp_files
                .entry(whole.clone())
                .or_insert_with(|| sensors::disk_temp_file(&root, &whole));
            temp_files
                .entry(d.kernel_name.clone())
                .or_insert_with(|| sensors::disk_temp_file(&root, &d.kernel_name));
            info.insert((m.major, m.minor), d);
        }
        let paths = mounts.iter().map(|m| root.path(&m.mount_point)).collect();
        // Under another root the path walked is the root's plus the mount
        // point, through mounts the table does not describe: the worker's.
        let direct = mounts.iter().map(|m| m.direct && root.is_host()).collect();
        let t = std::rc::Rc::new(DiskTopology {
            mounts,
            paths,
            direct,
            info,
            temp_files,
        });
        self.topology = Some(t.clone());
        Ok(t)
    }
}

impl Disks {
    /// The disks sample from a round's spaces (`None`: left out), and a
    /// temperature read per disk.
    fn sample_from(&mut self, cx: &Cx, topo: &DiskTopology, spaces: &[Option<disks::Space>]) {
        let root = &cx.s.root;
        let temps = cx.s.temp_enabled;
        // Every mount's space (/metrics lists each mount; the answer, each device).
        disks::keep_filesystems(&topo.mounts, spaces, &mut self.sample.filesystems);
        self.sample.rows = disks::build_rows(
            &topo.mounts,
            |m| {
                topo.info
                    .get(&(m.major, m.minor))
                    .cloned()
                    .unwrap_or_else(|| disks::dev_info(root, m))
            },
            |m| {
                let i = topo.mounts.iter().position(|x| std::ptr::eq(x, m))?;
                spaces.get(i).copied().flatten().map(|s| (s.total, s.avail))
            },
            |disk| {
                if !temps {
                    return None;
                }
                topo.temp_files
                    .get(disk)
                    .cloned()
                    .unwrap_or_else(|| sensors::disk_temp_file(root, disk))
                    .and_then(|p| sensors::read_temp(&p))
            },
        );
    }
}

impl Collector for Disks {
    const NAME: &'static str = "disks";
    /// The mount table is read again when it changes, not on a clock.
    const REPROBE: Option<std::time::Duration> = None;

    /// Starts a `statvfs` round when none is out (the topology only on a
    /// mount change) and takes its result once it has ended; while it
    /// runs the sample stays the last one (`pending`). Without a callback
    /// set (`mounts::Prober::set_notify`) this waits for the round.
    fn collect(&mut self, cx: &mut Cx, now: Instant) -> Result<()> {
        if self.prober.deadline().is_none() {
            let topo = self.topology(cx)?;
            self.prober
                .start(topo.paths.clone(), topo.direct.clone(), now);
            self.round = Some(topo);
            if !self.prober.is_async() {
                self.prober.wait();
            }
        }
        let Some(spaces) = self.prober.settle(now) else {
            return Ok(());
        };
        let Some(topo) = self.round.take() else {
            return Ok(());
        };
        self.sample_from(cx, &topo, &spaces);
        self.sample.at = Some(now);
        Ok(())
    }

    fn taken(&self) -> Option<Instant> {
        self.sample.at
    }
}
