//! The walk: every cgroup directory listed breadth first through kept
//! directory fds, and each cgroup's files read (kept fds, `pread`) into
//! its values and rates.

use super::layout::{FileSlot, FileSpec, Hier, Layout, SLOTS};
use super::parse::{
    parse_blkio_service_bytes, parse_cpu_stat, parse_io_stat, parse_memory_limit_v1,
    parse_memory_max,
};
use super::{CgroupScanner, Version, MAX_CGROUPS, RETRY_ABSENT};
use crate::collect::error::{CollectError, ErrorKind, Result};
use crate::collect::fs::{list_subdirs, openat, pread_all};
use crate::collect::num::{lines, parse_u64_trimmed};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::Instant;

/// The paths a walk still has to list (reused between samples: `len` of
/// `paths` are live) and the `getdents64` buffer.
#[derive(Default)]
pub(super) struct Queue {
    paths: Vec<String>,
    len: usize,
    dents: Vec<u8>,
}

/// The counters a rate is measured from.
#[derive(Debug, Clone, Copy)]
struct Prev {
    at: Instant,
    jiffies: u64,
    cpu_ns: Option<u64>,
    io: Option<(u64, u64)>,
}

/// One cgroup path's state between samples.
#[derive(Default)]
pub(super) struct CgroupState {
    /// The generation (sample) whose walk listed it.
    pub(super) seen: u64,
    /// The generation in which a walked hierarchy found processes in it.
    pub(super) holds: u64,
    /// Kept listing fds, per walked hierarchy.
    dirs: [Option<File>; 2],
    files: [Option<File>; SLOTS],
    /// The generation in which each file was found missing (0: not).
    absent: [u64; SLOTS],
    prev: Option<Prev>,
}

impl CgroupState {
    pub(super) fn open_fds(&self) -> usize {
        self.dirs.iter().chain(&self.files).flatten().count()
    }

    /// Closes every kept fd (the cgroup was removed, perhaps made again).
    fn close_all(&mut self, kept: &mut usize) {
        *kept = kept.saturating_sub(self.open_fds());
        self.dirs = Default::default();
        self.files = Default::default();
    }
}

/// How one read of a cgroup file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Ok,
    /// The cgroup has no such file, or it (or the whole cgroup) just went.
    Absent,
    /// Unreadable (permission, I/O): the field is null this time.
    Failed,
}

/// What reading a cgroup's files needs besides its entry.
pub(super) struct Io<'a> {
    pub(super) version: Version,
    pub(super) hiers: &'a [Option<Hier>],
    pub(super) files: &'a [Option<FileSpec>; SLOTS],
    pub(super) gen: u64,
    pub(super) kept: &'a mut usize,
    pub(super) budget: usize,
    pub(super) path: &'a mut Vec<u8>,
    pub(super) buf: &'a mut Vec<u8>,
}

/// `pread` of the whole file, or of its first bytes (`peek`: is it empty?).
fn read_file(f: &File, buf: &mut Vec<u8>, peek: bool) -> io::Result<()> {
    if !peek {
        return pread_all(f, buf);
    }
    buf.clear();
    buf.resize(32, 0);
    loop {
        match f.read_at(buf, 0) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        }
    }
}

/// The fds a scanner keeps open, how many it may, and the buffers its
/// reads reuse.
#[derive(Debug)]
pub(super) struct Fds {
    pub(super) kept: usize,
    pub(super) budget: usize,
    pub(super) path: Vec<u8>,
    pub(super) buf: Vec<u8>,
}

impl<'a> Io<'a> {
    /// The reads of one sample over `layout`, with the scanner's `fds`.
    pub(super) fn new(layout: &'a Layout, gen: u64, fds: &'a mut Fds) -> Self {
        Io {
            version: layout.version,
            hiers: &layout.hiers,
            files: &layout.files,
            gen,
            kept: &mut fds.kept,
            budget: fds.budget,
            path: &mut fds.path,
            buf: &mut fds.buf,
        }
    }
}

/// A parser of one cgroup file.
type Parse<T> = fn(&[u8]) -> Option<T>;

impl Io<'_> {
    /// Reads `slot` of the cgroup `key` into `self.buf`. A kept fd that
    /// fails (ENODEV: its cgroup was removed, perhaps made again at the
    /// same path) closes every kept fd of the cgroup, and the file is
    /// opened again once.
    fn read(&mut self, key: &str, e: &mut CgroupState, slot: FileSlot, peek: bool) -> Read {
        let s = slot as usize;
        let Some(spec) = self.files.get(s).copied().flatten() else {
            return Read::Absent;
        };
        let Some(Some(hier)) = self.hiers.get(spec.hier) else {
            return Read::Absent;
        };
        if e.absent
            .get(s)
            .is_some_and(|&a| a != 0 && self.gen.saturating_sub(a) < RETRY_ABSENT)
        {
            return Read::Absent;
        }
        let mut reopened = false;
        loop {
            let kept_fd = e.files.get(s).is_some_and(Option::is_some);
            let res = match e.files.get_mut(s) {
                Some(Some(f)) => read_file(f, self.buf, peek),
                Some(slot) => {
                    match openat(
                        hier.dir.as_raw_fd(),
                        key.as_bytes(),
                        spec.name,
                        self.path,
                        0,
                    ) {
                        Ok(f) => {
                            let r = read_file(&f, self.buf, peek);
                            if r.is_ok() && *self.kept < self.budget {
                                *self.kept += 1;
                                *slot = Some(f);
                            }
                            r
                        }
                        Err(err) => Err(err),
                    }
                }
                None => return Read::Absent,
            };
            match res {
                Ok(()) => {
                    if let Some(a) = e.absent.get_mut(s) {
                        *a = 0;
                    }
                    return Read::Ok;
                }
                Err(_) if kept_fd && !reopened => {
                    reopened = true;
                    e.close_all(self.kept);
                }
                Err(err) => {
                    let ce = CollectError::io(spec.what, err);
                    return match ce.kind {
                        ErrorKind::Vanished => {
                            if let Some(a) = e.absent.get_mut(s) {
                                *a = self.gen;
                            }
                            Read::Absent
                        }
                        _ => {
                            log::debug!("cgroup /{key}: {ce}");
                            Read::Failed
                        }
                    };
                }
            }
        }
    }

    /// Reads and parses one file; `None` when absent, unreadable or malformed.
    fn value<T>(
        &mut self,
        key: &str,
        e: &mut CgroupState,
        slot: FileSlot,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Option<T> {
        (self.read(key, e, slot, false) == Read::Ok)
            .then(|| parse(self.buf))
            .flatten()
    }
}

/// What one cgroup's files hold.
#[derive(Debug, Default)]
pub(super) struct Values {
    pub(super) cpu_pct: Option<f32>,
    pub(super) cpu_ns: Option<u64>,
    pub(super) mem_bytes: Option<u64>,
    pub(super) mem_max_bytes: Option<u64>,
    pub(super) io_rate: Option<(f64, f64)>,
    pub(super) io: Option<(u64, u64)>,
    pub(super) pids: Option<u64>,
}

/// Reads one cgroup that holds processes; `None` when nothing could be
/// read (it vanished since the listing).
pub(super) fn read_cgroup(
    io: &mut Io,
    key: &str,
    e: &mut CgroupState,
    now: Instant,
    jiffies: u64,
    hz: u64,
) -> Option<Values> {
    // The same readings, in v2's files or in v1's.
    let (cpu, max, io_bytes): (Parse<u64>, Parse<u64>, Parse<(u64, u64)>) = match io.version {
        Version::V2 => (parse_cpu_stat, parse_memory_max, parse_io_stat),
        Version::V1 => (
            parse_u64_trimmed,
            parse_memory_limit_v1,
            parse_blkio_service_bytes,
        ),
    };
    let mut v = Values {
        cpu_ns: io.value(key, e, FileSlot::Cpu, cpu),
        mem_bytes: io.value(key, e, FileSlot::Mem, parse_u64_trimmed),
        mem_max_bytes: io.value(key, e, FileSlot::MemMax, max),
        io: io.value(key, e, FileSlot::Io, io_bytes),
        pids: io.value(key, e, FileSlot::Pids, parse_u64_trimmed),
        ..Values::default()
    };
    if v.pids.is_none() {
        let count = |b: &[u8]| Some(lines(b).count() as u64);
        v.pids = io
            .value(key, e, FileSlot::Procs0, count)
            .or_else(|| io.value(key, e, FileSlot::Procs1, count));
    }
    if v.cpu_ns.is_none() && v.mem_bytes.is_none() && v.pids.is_none() {
        return None;
    }
    if let Some(p) = e.prev {
        let jiffies_ns = jiffies.saturating_sub(p.jiffies) as f64 * 1e9 / hz.max(1) as f64;
        v.cpu_pct = match (v.cpu_ns, p.cpu_ns) {
            (Some(c), Some(pc)) if jiffies_ns > 0.0 => {
                Some((c.saturating_sub(pc) as f64 / jiffies_ns * 100.0).clamp(0.0, 100.0) as f32)
            }
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        let secs = now.duration_since(p.at).as_secs_f64();
        v.io_rate = match (v.io, p.io) {
            (Some((r, w)), Some((pr, pw))) if secs > 0.0 => Some((
                r.saturating_sub(pr) as f64 / secs,
                w.saturating_sub(pw) as f64 / secs,
            )),
            (Some(_), Some(_)) => Some((0.0, 0.0)),
            _ => None,
        };
    }
    e.prev = Some(Prev {
        at: now,
        jiffies,
        cpu_ns: v.cpu_ns,
        io: v.io,
    });
    Some(v)
}

impl CgroupScanner {
    /// Reads again only the memory used and the limit of the last
    /// sample's rows that have a limit (their kept fds, `pread`), for the
    /// alerts' `ServiceMemoryNearLimit` between samples: the CPU and I/O
    /// counters a rate is measured from are left alone. A cgroup whose
    /// files went keeps its last values (the next sample drops it).
    /// Allocates nothing once the fds are open.
    pub fn refresh_memory(&mut self) {
        let Some(layout) = self.layout.as_ref() else {
            return;
        };
        let max: Parse<u64> = match layout.version {
            Version::V2 => parse_memory_max,
            Version::V1 => parse_memory_limit_v1,
        };
        let mut io = Io::new(layout, self.generation, &mut self.fds);
        for row in self.rows.iter_mut().filter(|r| r.mem_max_bytes.is_some()) {
            let key = row.path.get(1..).unwrap_or("");
            let Some(e) = self.entries.get_mut(key) else {
                continue;
            };
            if let Some(m) = io.value(key, e, FileSlot::Mem, parse_u64_trimmed) {
                row.mem_bytes = Some(m);
            }
            if let Some(m) = io.value(key, e, FileSlot::MemMax, max) {
                row.mem_max_bytes = Some(m);
            }
        }
    }

    /// Lists walked hierarchy `h` breadth first, marking every cgroup in
    /// it seen, and holding processes where its `cgroup.procs` is not
    /// empty. `total` counts cgroups over all walked hierarchies.
    pub(super) fn walk(
        &mut self,
        layout: &Layout,
        h: usize,
        gen: u64,
        total: &mut usize,
    ) -> Result<()> {
        let Some(Some(hier)) = layout.hiers.get(h) else {
            return Ok(());
        };
        let procs = if h == 0 {
            FileSlot::Procs0
        } else {
            FileSlot::Procs1
        };
        let mut io = Io::new(layout, gen, &mut self.fds);
        let q = &mut self.queue;
        let entries = &mut self.entries;
        q.len = 0;
        let (paths, len) = (&mut q.paths, &mut q.len);
        list_subdirs(hier.dir.as_raw_fd(), &mut q.dents, |name| {
            push_path(paths, len, "", name)
        })
        .map_err(|e| CollectError::io(hier.what, e))?;
        let mut i = 0;
        while i < q.len && *total < MAX_CGROUPS {
            let Some(key) = q.paths.get_mut(i).map(std::mem::take) else {
                break;
            };
            if !entries.contains_key(key.as_str()) {
                entries.insert(key.clone(), CgroupState::default());
            }
            if let Some(e) = entries.get_mut(key.as_str()) {
                *total += 1;
                if list_cgroup(&mut io, hier, h, &key, e, q) {
                    e.seen = gen;
                    if e.holds != gen
                        && io.read(&key, e, procs, true) == Read::Ok
                        && !io.buf.is_empty()
                    {
                        e.holds = gen;
                    }
                }
            }
            if let Some(s) = q.paths.get_mut(i) {
                *s = key;
            }
            i += 1;
        }
        Ok(())
    }
}

/// Lists the cgroup `key` of walked hierarchy `h` (through its kept fd,
/// opened on first use), queueing its children; false when it vanished.
fn list_cgroup(
    io: &mut Io,
    hier: &Hier,
    h: usize,
    key: &str,
    e: &mut CgroupState,
    q: &mut Queue,
) -> bool {
    for attempt in 0..2 {
        let Some(dir) = e.dirs.get_mut(h) else {
            return false;
        };
        let was_kept = dir.is_some();
        let temp;
        let fd = match dir {
            Some(f) => f.as_raw_fd(),
            None => {
                let flags = libc::O_DIRECTORY;
                let Ok(f) = openat(hier.dir.as_raw_fd(), key.as_bytes(), b"", io.path, flags)
                else {
                    return false;
                };
                if *io.kept < io.budget {
                    *io.kept += 1;
                    dir.insert(f).as_raw_fd()
                } else {
                    temp = f;
                    temp.as_raw_fd()
                }
            }
        };
        let mark = q.len;
        let (paths, len) = (&mut q.paths, &mut q.len);
        let r = list_subdirs(fd, &mut q.dents, |name| {
            if *len < MAX_CGROUPS {
                push_path(paths, len, key, name)
            }
        });
        match r {
            Ok(()) => return true,
            Err(_) if was_kept && attempt == 0 => {
                q.len = mark;
                e.close_all(io.kept);
            }
            Err(_) => {
                q.len = mark;
                return false;
            }
        }
    }
    false
}

/// Appends `parent/name` (`name` at the root) to the reused queue; a
/// name that is not UTF-8 is left out.
fn push_path(queue: &mut Vec<String>, len: &mut usize, parent: &str, name: &[u8]) {
    let Ok(name) = std::str::from_utf8(name) else {
        return;
    };
    if queue.len() <= *len {
        queue.push(String::new());
    }
    if let Some(s) = queue.get_mut(*len) {
        s.clear();
        if !parent.is_empty() {
            s.push_str(parent);
            s.push('/');
        }
        s.push_str(name);
        *len += 1;
    }
}
