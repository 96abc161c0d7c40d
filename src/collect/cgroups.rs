//! Services and containers: every cgroup that holds processes, with what
//! it uses (CPU share since the previous sample, memory and its limit, I/O
//! rates, task count).
//!
//! Two layouts, found once (and looked for again every `REPROBE` while
//! there is none):
//!
//! - **v2**: the unified hierarchy at `sys/fs/cgroup`, or
//!   `sys/fs/cgroup/unified` on a hybrid host, when its root's
//!   `cgroup.controllers` names any of `cpu`, `memory`, `io`, `pids` (a
//!   hybrid host may give v2 `hugetlb` alone): `cpu.stat` (usage_usec),
//!   `memory.current`, `memory.max`, `io.stat`, `pids.current`.
//! - **v1**, where v2 has none of those (or there is no v2): the cgroup set
//!   is the union of the paths in the `cpuacct` and `memory` hierarchies;
//!   `cpuacct.usage` (ns), `memory.usage_in_bytes`,
//!   `memory.limit_in_bytes`, `blkio/…/blkio.throttle.io_service_bytes`,
//!   `pids/…/pids.current` are read at the same path.
//!
//! A cgroup is listed when its `cgroup.procs` (in any walked hierarchy) is
//! not empty; the root cgroup, which is the whole machine, is not. The
//! directories are listed again on every sample (`getdents64` on kept
//! directory fds, with `d_type`), so new and removed cgroups show at once;
//! each cgroup's files stay open between samples and are re-read with
//! `pread`, up to a budget of kept fds (`MAX_KEPT_FILES`, and no more than
//! the share `Collectors` gives), past which they are opened, read and
//! closed. A file a cgroup does not have (a controller not enabled there)
//! is its field's null, and is looked for again every `RETRY_ABSENT`
//! samples. A cgroup that vanishes between the listing and the reading is
//! skipped.
//!
//! Rates (`cpu_pct`, I/O per second) are over the time since the previous
//! sample that saw the cgroup: null on the first; counters that went
//! backwards (a reset) give 0, never a wrap. `cpu_pct` is the share of the
//! whole machine (100 = every CPU busy), measured against `/proc/stat`'s
//! total like the process scan.

use super::error::{CollectError, ErrorKind, Result};
use super::fs::{pread_all, Root};
use super::num::{fields, lines, parse_u64};
use crate::families::{Family, Sink};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Most fds the cgroup collector keeps open (directories and files
/// together): 1 024 covers ~150 busy cgroups on v2 (~7 each); a host with
/// more pays an open/close per file past it.
pub const MAX_KEPT_FILES: usize = 1024;
/// Most cgroups walked per sample: past it the rest of the tree is not
/// looked at (logged once), so a runaway tree cannot eat the agent's memory.
pub const MAX_CGROUPS: usize = 20_000;
/// A file a cgroup lacked is looked for again after this many samples
/// (systemd enables a controller on a unit when a limit is set).
pub const RETRY_ABSENT: u64 = 16;
/// With no cgroup filesystem found, how long until it is looked for again.
pub const REPROBE: Duration = Duration::from_secs(30);

/// What a cgroup is, from its directory name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    Service,
    Container,
    Slice,
    Scope,
    #[default]
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Container => "container",
            Kind::Slice => "slice",
            Kind::Scope => "scope",
            Kind::Other => "other",
        }
    }
}

/// Container runtimes' scope names: `<prefix><64 hex>.scope`.
const CONTAINER_PREFIXES: [&str; 4] = ["docker-", "libpod-", "cri-containerd-", "crio-"];

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The kind and display name of the cgroup at `path` ("system.slice/x",
/// with or without a leading `/`): a container's short id (the first 12
/// hex of a 64-hex directory name, bare as Docker's cgroupfs driver makes
/// it, or as `docker-`/`libpod-`/`cri-containerd-`/`crio-<64hex>.scope`),
/// else the last path element (the unit name for systemd's cgroups).
pub fn classify(path: &str) -> (Kind, &str) {
    let last = path.rsplit('/').next().unwrap_or(path);
    let id = last.strip_suffix(".scope").and_then(|s| {
        CONTAINER_PREFIXES
            .iter()
            .find_map(|p| s.strip_prefix(p))
            .filter(|id| is_hex64(id))
    });
    if let Some(id) = id.or(Some(last).filter(|l| is_hex64(l))) {
        return (Kind::Container, id.get(..12).unwrap_or(id));
    }
    let kind = if last.ends_with(".service") {
        Kind::Service
    } else if last.ends_with(".slice") {
        Kind::Slice
    } else if last.ends_with(".scope") {
        Kind::Scope
    } else {
        Kind::Other
    };
    (kind, last)
}

/// `cpu.stat` (v2): `usage_usec`, in nanoseconds.
pub fn parse_cpu_stat(buf: &[u8]) -> Option<u64> {
    lines(buf).find_map(|l| {
        let mut f = fields(l);
        (f.next()? == b"usage_usec")
            .then(|| f.next().and_then(parse_u64))?
            .map(|us| us.saturating_mul(1000))
    })
}

/// A file holding one number (`memory.current`, `cpuacct.usage`,
/// `pids.current`, `memory.usage_in_bytes`).
pub fn parse_single(buf: &[u8]) -> Option<u64> {
    parse_u64(buf.trim_ascii())
}

/// `memory.max` (v2): `max` is no limit (`None`).
pub fn parse_memory_max(buf: &[u8]) -> Option<u64> {
    match buf.trim_ascii() {
        b"max" => None,
        v => parse_u64(v),
    }
}

/// v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages,
/// 9223372036854771712 with 4 KiB pages): anything from 2^62 up.
pub fn parse_memory_limit_v1(buf: &[u8]) -> Option<u64> {
    parse_single(buf).filter(|&v| v < 1 << 62)
}

/// `io.stat` (v2): `MAJ:MIN rbytes=N wbytes=N rios=…` per device → the
/// bytes read and written, summed over devices. `None` only for text
/// that is not io.stat at all; an empty file (no I/O yet) is `(0, 0)`.
pub fn parse_io_stat(buf: &[u8]) -> Option<(u64, u64)> {
    let (mut r, mut w) = (0u64, 0u64);
    for line in lines(buf) {
        let mut f = fields(line);
        if !f.next()?.contains(&b':') {
            return None;
        }
        for kv in f {
            if let Some(v) = kv.strip_prefix(b"rbytes=") {
                r = r.saturating_add(parse_u64(v)?);
            } else if let Some(v) = kv.strip_prefix(b"wbytes=") {
                w = w.saturating_add(parse_u64(v)?);
            }
        }
    }
    Some((r, w))
}

/// `blkio.throttle.io_service_bytes` (v1): `MAJ:MIN Read N`, `… Write N`
/// per device (its `Total` lines are not summed again) → bytes read and
/// written.
pub fn parse_blkio_service_bytes(buf: &[u8]) -> Option<(u64, u64)> {
    let (mut r, mut w) = (0u64, 0u64);
    for line in lines(buf) {
        let mut f = fields(line);
        let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue; // "Total N", the sum over devices
        };
        if !dev.contains(&b':') {
            return None;
        }
        match op {
            b"Read" => r = r.saturating_add(parse_u64(v)?),
            b"Write" => w = w.saturating_add(parse_u64(v)?),
            _ => {}
        }
    }
    Some((r, w))
}

/// One listed cgroup, as the last sample found it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupRow {
    /// From the hierarchy's root: `/system.slice/nginx.service`.
    pub path: String,
    pub kind: Kind,
    pub name: String,
    /// Share of the whole machine since the previous sample, 0–100.
    pub cpu_pct: Option<f32>,
    /// CPU time used, all time (nanoseconds).
    pub cpu_ns: Option<u64>,
    pub mem_bytes: Option<u64>,
    /// `None`: no limit, or none readable.
    pub mem_max_bytes: Option<u64>,
    pub io_read_bytes_per_s: Option<f64>,
    pub io_write_bytes_per_s: Option<f64>,
    /// Bytes read and written, all time.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    pub pids: Option<u64>,
}

/// The limit `ServiceMemoryNearLimit` divides `sockagent_cgroup_memory_bytes` by.
pub const MEMORY_MAX: Family = Family::gauge(
    "sockagent_cgroup_memory_max_bytes",
    "Memory limit of the same cgroups (v2 memory.max, v1 memory.limit_in_bytes); only those that have one.",
);

/// `MEMORY_MAX` for the listed `rows` that have a limit, labelled as the
/// other `sockagent_cgroup_*` families (`cgroup`, `kind`, `name`).
pub fn describe_memory_max(rows: &[&CgroupRow], out: &mut dyn Sink) {
    MEMORY_MAX.open(out);
    for r in rows {
        if let Some(max) = r.mem_max_bytes {
            let labels = [
                ("cgroup", r.path.as_str()),
                ("kind", r.kind.as_str()),
                ("name", r.name.as_str()),
            ];
            out.sample(&labels, max.into());
        }
    }
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Every file the collector reads, one kept-file slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Procs0 = 0, // cgroup.procs in walked hierarchy 0 (v2: unified; v1: cpuacct)
    Procs1,     // cgroup.procs in walked hierarchy 1 (v1: memory)
    Cpu,
    Mem,
    MemMax,
    Io,
    Pids,
}
const SLOTS: usize = 7;

/// A file: which hierarchy it is in, its name (NUL-terminated), what
/// errors call it.
#[derive(Debug, Clone, Copy)]
struct FileSpec {
    hier: usize,
    name: &'static [u8],
    what: &'static str,
}

struct Hier {
    /// The hierarchy's root directory, open.
    dir: File,
    what: &'static str,
}

struct Layout {
    version: Version,
    /// Walked hierarchies first (v2: 1, v1: cpuacct and memory, either
    /// possibly absent), then v1's blkio and pids.
    hiers: Vec<Option<Hier>>,
    walked: usize,
    files: [Option<FileSpec>; SLOTS],
}

fn spec(hier: usize, name: &'static [u8], what: &'static str) -> Option<FileSpec> {
    Some(FileSpec { hier, name, what })
}

fn open_dir(root: &Root, rel: &str) -> Option<File> {
    let f = File::open(root.path(rel)).ok()?;
    f.metadata().ok()?.is_dir().then_some(f)
}

impl Layout {
    fn detect(root: &Root, buf: &mut Vec<u8>) -> Option<Layout> {
        // Some(true): a v2 root that has any controller this reads.
        let controllers = |rel: &str, buf: &mut Vec<u8>| {
            root.read_into(rel, buf)
                .ok()
                .map(|()| fields(buf).any(|c| matches!(c, b"cpu" | b"memory" | b"io" | b"pids")))
        };
        let v2 = |rel: &'static str| {
            Some(Layout {
                version: Version::V2,
                hiers: vec![Some(Hier {
                    dir: open_dir(root, rel)?,
                    what: rel,
                })],
                walked: 1,
                files: [
                    spec(0, b"cgroup.procs\0", "cgroup.procs"),
                    None,
                    spec(0, b"cpu.stat\0", "cpu.stat"),
                    spec(0, b"memory.current\0", "memory.current"),
                    spec(0, b"memory.max\0", "memory.max"),
                    spec(0, b"io.stat\0", "io.stat"),
                    spec(0, b"pids.current\0", "pids.current"),
                ],
            })
        };
        let top = controllers("sys/fs/cgroup/cgroup.controllers", buf);
        if top == Some(true) {
            return v2("sys/fs/cgroup");
        }
        let hybrid = controllers("sys/fs/cgroup/unified/cgroup.controllers", buf);
        if hybrid == Some(true) {
            return v2("sys/fs/cgroup/unified");
        }
        let hier = |rels: &[&'static str]| {
            rels.iter().find_map(|&rel| {
                Some(Hier {
                    dir: open_dir(root, rel)?,
                    what: rel,
                })
            })
        };
        let cpuacct = hier(&[
            "sys/fs/cgroup/cpuacct",
            "sys/fs/cgroup/cpu,cpuacct",
            "sys/fs/cgroup/cpuacct,cpu",
        ]);
        let memory = hier(&["sys/fs/cgroup/memory"]);
        if cpuacct.is_none() && memory.is_none() {
            // A v2 hierarchy without controllers still has cgroup.procs and cpu.stat.
            return match (top, hybrid) {
                (Some(_), _) => v2("sys/fs/cgroup"),
                (_, Some(_)) => v2("sys/fs/cgroup/unified"),
                _ => None,
            };
        }
        Some(Layout {
            version: Version::V1,
            hiers: vec![
                cpuacct,
                memory,
                hier(&["sys/fs/cgroup/blkio"]),
                hier(&["sys/fs/cgroup/pids"]),
            ],
            walked: 2,
            files: [
                spec(0, b"cgroup.procs\0", "cgroup.procs"),
                spec(1, b"cgroup.procs\0", "cgroup.procs"),
                spec(0, b"cpuacct.usage\0", "cpuacct.usage"),
                spec(1, b"memory.usage_in_bytes\0", "memory.usage_in_bytes"),
                spec(1, b"memory.limit_in_bytes\0", "memory.limit_in_bytes"),
                spec(
                    2,
                    b"blkio.throttle.io_service_bytes\0",
                    "blkio.throttle.io_service_bytes",
                ),
                spec(3, b"pids.current\0", "pids.current"),
            ],
        })
    }
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
struct Entry {
    /// The generation (sample) whose walk listed it.
    seen: u64,
    /// The generation in which a walked hierarchy found processes in it.
    holds: u64,
    /// Kept listing fds, per walked hierarchy.
    dirs: [Option<File>; 2],
    files: [Option<File>; SLOTS],
    /// The generation in which each file was found missing (0: not).
    absent: [u64; SLOTS],
    prev: Option<Prev>,
}

impl Entry {
    fn open_fds(&self) -> usize {
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
struct Io<'a> {
    version: Version,
    hiers: &'a [Option<Hier>],
    files: &'a [Option<FileSpec>; SLOTS],
    gen: u64,
    kept: &'a mut usize,
    budget: usize,
    path: &'a mut Vec<u8>,
    buf: &'a mut Vec<u8>,
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

impl Io<'_> {
    /// Reads `slot` of the cgroup `key` into `self.buf`. A kept fd that
    /// fails (ENODEV: its cgroup was removed, perhaps made again at the
    /// same path) closes every kept fd of the cgroup, and the file is
    /// opened again once.
    fn read(&mut self, key: &str, e: &mut Entry, slot: Slot, peek: bool) -> Read {
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
        e: &mut Entry,
        slot: Slot,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Option<T> {
        (self.read(key, e, slot, false) == Read::Ok)
            .then(|| parse(self.buf))
            .flatten()
    }
}

/// What one cgroup's files hold.
#[derive(Debug, Default)]
struct Values {
    cpu_pct: Option<f32>,
    cpu_ns: Option<u64>,
    mem_bytes: Option<u64>,
    mem_max_bytes: Option<u64>,
    io_rate: Option<(f64, f64)>,
    io: Option<(u64, u64)>,
    pids: Option<u64>,
}

/// Reads one cgroup that holds processes; `None` when nothing could be
/// read (it vanished since the listing).
fn read_cgroup(
    io: &mut Io,
    key: &str,
    e: &mut Entry,
    now: Instant,
    jiffies: u64,
    hz: u64,
) -> Option<Values> {
    let v2 = io.version == Version::V2;
    let mut v = Values {
        cpu_ns: io.value(key, e, Slot::Cpu, |b| {
            if v2 {
                parse_cpu_stat(b)
            } else {
                parse_single(b)
            }
        }),
        mem_bytes: io.value(key, e, Slot::Mem, parse_single),
        mem_max_bytes: io
            .value(key, e, Slot::MemMax, |b| {
                Some(if v2 {
                    parse_memory_max(b)
                } else {
                    parse_memory_limit_v1(b)
                })
            })
            .flatten(),
        io: io.value(key, e, Slot::Io, |b| {
            if v2 {
                parse_io_stat(b)
            } else {
                parse_blkio_service_bytes(b)
            }
        }),
        pids: io.value(key, e, Slot::Pids, parse_single),
        ..Values::default()
    };
    if v.pids.is_none() {
        let count = |b: &[u8]| Some(lines(b).count() as u64);
        v.pids = io
            .value(key, e, Slot::Procs0, count)
            .or_else(|| io.value(key, e, Slot::Procs1, count));
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

/// Owns the layout, each cgroup's kept fds and counters, and the rows.
pub struct CgroupScanner {
    layout: Option<Layout>,
    /// When the layout was last looked for (while there is none).
    probed: Option<Instant>,
    entries: HashMap<String, Entry>,
    generation: u64,
    kept: usize,
    budget: usize,
    /// Paths to list, reused between samples.
    queue: Vec<String>,
    dents: Vec<u8>,
    path: Vec<u8>,
    buf: Vec<u8>,
    warned_limit: bool,
    pub rows: Vec<CgroupRow>,
}

impl CgroupScanner {
    /// `fd_budget`: how many fds it may keep open (at most `MAX_KEPT_FILES`).
    pub fn new(fd_budget: usize) -> Self {
        CgroupScanner {
            layout: None,
            probed: None,
            entries: HashMap::new(),
            generation: 0,
            kept: 0,
            budget: fd_budget.min(MAX_KEPT_FILES),
            queue: Vec::new(),
            dents: Vec::new(),
            path: Vec::new(),
            buf: Vec::with_capacity(4096),
            warned_limit: false,
            rows: Vec::new(),
        }
    }

    /// The layout found (`None`: no cgroup filesystem, or not looked for yet).
    pub fn version(&self) -> Option<Version> {
        self.layout.as_ref().map(|l| l.version)
    }

    /// How many fds are kept open.
    pub fn kept_files(&self) -> usize {
        self.kept
    }

    /// One sample: lists every cgroup, reads those that hold processes
    /// into `self.rows` (sorted by path). `total_jiffies` is `/proc/stat`'s
    /// aggregate total read just before, `hz` its unit. Fails only when a
    /// hierarchy's root cannot be listed (then the layout is looked for
    /// again on the next sample).
    pub fn scan(&mut self, root: &Root, now: Instant, total_jiffies: u64, hz: u64) -> Result<()> {
        if self.layout.is_none() {
            if self.probed.is_some_and(|t| now.duration_since(t) < REPROBE) {
                self.rows.clear();
                return Ok(());
            }
            self.probed = Some(now);
            self.layout = Layout::detect(root, &mut self.buf);
            match &self.layout {
                Some(l) => log::debug!("cgroups: {:?}", l.version),
                None => log::debug!("cgroups: no cgroup filesystem under {:?}", root.base()),
            }
        }
        let Some(layout) = self.layout.take() else {
            self.rows.clear();
            return Ok(());
        };
        let r = self.scan_with(&layout, now, total_jiffies, hz);
        match &r {
            Ok(()) => self.layout = Some(layout),
            Err(_) => {
                self.entries.clear();
                self.kept = 0;
                self.rows.clear();
                self.probed = None;
            }
        }
        r
    }

    fn scan_with(
        &mut self,
        layout: &Layout,
        now: Instant,
        total_jiffies: u64,
        hz: u64,
    ) -> Result<()> {
        self.generation += 1;
        let gen = self.generation;
        let mut len = 0;
        for h in 0..layout.walked {
            self.walk(layout, h, gen, &mut len)?;
        }
        if len >= MAX_CGROUPS && !self.warned_limit {
            self.warned_limit = true;
            log::warn!("cgroups: more than {MAX_CGROUPS}; the rest are not listed");
        }
        let mut io = Io {
            version: layout.version,
            hiers: &layout.hiers,
            files: &layout.files,
            gen,
            kept: &mut self.kept,
            budget: self.budget,
            path: &mut self.path,
            buf: &mut self.buf,
        };
        let mut n = 0;
        for (key, e) in self.entries.iter_mut() {
            if e.seen != gen || e.holds != gen {
                continue;
            }
            let Some(v) = read_cgroup(&mut io, key, e, now, total_jiffies, hz) else {
                continue;
            };
            if self.rows.len() <= n {
                self.rows.push(CgroupRow::default());
            }
            let Some(row) = self.rows.get_mut(n) else {
                break;
            };
            n += 1;
            let (kind, name) = classify(key);
            row.path.clear();
            row.path.push('/');
            row.path.push_str(key);
            row.kind = kind;
            row.name.clear();
            row.name.push_str(name);
            row.cpu_pct = v.cpu_pct;
            row.cpu_ns = v.cpu_ns;
            row.mem_bytes = v.mem_bytes;
            row.mem_max_bytes = v.mem_max_bytes;
            row.io_read_bytes_per_s = v.io_rate.map(|r| r.0);
            row.io_write_bytes_per_s = v.io_rate.map(|r| r.1);
            row.io_read_bytes = v.io.map(|r| r.0);
            row.io_write_bytes = v.io.map(|r| r.1);
            row.pids = v.pids;
        }
        self.rows.truncate(n);
        self.rows.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        // Forget cgroups that are gone, closing their fds.
        let mut closed = 0;
        self.entries.retain(|_, e| {
            let keep = e.seen == gen;
            if !keep {
                closed += e.open_fds();
            }
            keep
        });
        self.kept = self.kept.saturating_sub(closed);
        Ok(())
    }

    /// Lists walked hierarchy `h` breadth first, marking every cgroup in
    /// it seen, and holding processes where its `cgroup.procs` is not
    /// empty. `total` counts cgroups over all walked hierarchies.
    fn walk(&mut self, layout: &Layout, h: usize, gen: u64, total: &mut usize) -> Result<()> {
        let Some(Some(hier)) = layout.hiers.get(h) else {
            return Ok(());
        };
        let procs = if h == 0 { Slot::Procs0 } else { Slot::Procs1 };
        let mut io = Io {
            version: layout.version,
            hiers: &layout.hiers,
            files: &layout.files,
            gen,
            kept: &mut self.kept,
            budget: self.budget,
            path: &mut self.path,
            buf: &mut self.buf,
        };
        let queue = &mut self.queue;
        let entries = &mut self.entries;
        let mut len = 0;
        list_subdirs(hier.dir.as_raw_fd(), &mut self.dents, |name| {
            push_path(queue, &mut len, "", name)
        })
        .map_err(|e| CollectError::io(hier.what, e))?;
        let mut i = 0;
        while i < len && *total < MAX_CGROUPS {
            let Some(key) = queue.get_mut(i).map(std::mem::take) else {
                break;
            };
            if !entries.contains_key(key.as_str()) {
                entries.insert(key.clone(), Entry::default());
            }
            if let Some(e) = entries.get_mut(key.as_str()) {
                *total += 1;
                if list_cgroup(&mut io, hier, h, &key, e, queue, &mut len, &mut self.dents) {
                    e.seen = gen;
                    if e.holds != gen
                        && io.read(&key, e, procs, true) == Read::Ok
                        && !io.buf.is_empty()
                    {
                        e.holds = gen;
                    }
                }
            }
            if let Some(s) = queue.get_mut(i) {
                *s = key;
            }
            i += 1;
        }
        Ok(())
    }
}

/// Lists the cgroup `key` of walked hierarchy `h` (through its kept fd,
/// opened on first use), queueing its children; false when it vanished.
#[allow(clippy::too_many_arguments)]
fn list_cgroup(
    io: &mut Io,
    hier: &Hier,
    h: usize,
    key: &str,
    e: &mut Entry,
    queue: &mut Vec<String>,
    len: &mut usize,
    dents: &mut Vec<u8>,
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
                let Ok(f) = openat(
                    hier.dir.as_raw_fd(),
                    key.as_bytes(),
                    b"",
                    io.path,
                    libc::O_DIRECTORY,
                ) else {
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
        let mark = *len;
        let r = list_subdirs(fd, dents, |name| {
            if *len < MAX_CGROUPS {
                push_path(queue, len, key, name)
            }
        });
        match r {
            Ok(()) => return true,
            Err(_) if was_kept && attempt == 0 => {
                *len = mark;
                e.close_all(io.kept);
            }
            Err(_) => {
                *len = mark;
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

/// `openat(dirfd, "rel/name")` (`name` NUL-terminated, or empty for `rel`
/// itself), the path built in a reused buffer.
fn openat(
    dirfd: RawFd,
    rel: &[u8],
    name: &[u8],
    path: &mut Vec<u8>,
    flags: libc::c_int,
) -> io::Result<File> {
    path.clear();
    path.extend_from_slice(rel);
    if !name.is_empty() {
        if !rel.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
    }
    if path.last() != Some(&0) {
        path.push(0);
    }
    if path.iter().filter(|&&b| b == 0).count() != 1 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: path is NUL-terminated; dirfd is an open directory.
    let fd = unsafe {
        libc::openat(
            dirfd,
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC | flags,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Calls `f` with the name of every subdirectory of the open directory
/// `fd`, from the start (`d_type`; `fstatat` where the filesystem does not
/// fill it in): a child cgroup is told from a control file by its type,
/// not by guessing from its name.
fn list_subdirs(fd: RawFd, buf: &mut Vec<u8>, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    super::fs::dir_entries(fd, buf, |name, d_type| {
        let dir = match d_type {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => is_dir_at(fd, name),
            _ => false,
        };
        if dir {
            f(name);
        }
    })
}

/// `fstatat(fd, name)` says directory.
fn is_dir_at(fd: RawFd, name: &[u8]) -> bool {
    // NAME_MAX is 255: the name and its NUL fit on the stack.
    let mut c = [0u8; 256];
    match c.get_mut(..name.len()) {
        Some(dst) if name.len() < 256 && !name.contains(&0) => dst.copy_from_slice(name),
        _ => return false,
    }
    // SAFETY: st is a valid out-pointer; c is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(fd, c.as_ptr().cast(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1be0d4a7f6c5b8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4";

    #[test]
    fn kinds_and_names() {
        let c = |p: &str| {
            let (k, n) = classify(p);
            (k.as_str(), n.to_string())
        };
        assert_eq!(
            c("system.slice/nginx.service"),
            ("service", "nginx.service".into())
        );
        assert_eq!(c("/user.slice"), ("slice", "user.slice".into()));
        assert_eq!(
            c("user.slice/user-1000.slice/session-2.scope"),
            ("scope", "session-2.scope".into())
        );
        for p in [
            format!("system.slice/docker-{ID}.scope"),
            format!("machine.slice/libpod-{ID}.scope"),
            format!("kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope"),
            format!("docker/{ID}"),
        ] {
            assert_eq!(c(&p), ("container", "3f2a9c1be0d4".into()), "{p}");
        }
        // podman's monitor, an id too short, an upper-case scope suffix: not containers
        assert_eq!(
            c(&format!("machine.slice/libpod-conmon-{ID}.scope")).0,
            "scope"
        );
        assert_eq!(c("docker/3f2a9c1be0d4").0, "other");
        assert_eq!(c("process_api/c0f134e0e49da27af0aa9589b227ae77").0, "other");
        assert_eq!(c("init.scope"), ("scope", "init.scope".into()));
        assert_eq!(c("-.mount"), ("other", "-.mount".into()));
    }

    #[test]
    fn cpu_stat_usage_in_ns() {
        let b = b"usage_usec 2506547\nuser_usec 1818012\nsystem_usec 688535\nnr_periods 0\n";
        assert_eq!(parse_cpu_stat(b), Some(2_506_547_000));
        assert_eq!(parse_cpu_stat(b"user_usec 5\n"), None);
        assert_eq!(parse_cpu_stat(b"usage_usec x\n"), None);
        assert_eq!(parse_cpu_stat(b""), None);
        // saturates instead of wrapping
        assert_eq!(
            parse_cpu_stat(b"usage_usec 18446744073709551615\n"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_max(b"max\n"), None);
        assert_eq!(parse_memory_max(b"536870912\n"), Some(536_870_912));
        assert_eq!(parse_memory_max(b"garbage"), None);
        assert_eq!(parse_memory_limit_v1(b"9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit_v1(b"9223372036854710272\n"), None);
        assert_eq!(parse_memory_limit_v1(b"1073741824\n"), Some(1_073_741_824));
        assert_eq!(parse_single(b"  123\n"), Some(123));
        assert_eq!(parse_single(b"-1\n"), None);
    }

    #[test]
    fn io_stat_sums_devices() {
        let b = b"8:0 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n\
                  259:0 rbytes=30 wbytes=40 rios=3 wios=4 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(b), Some((1030, 2040)));
        assert_eq!(parse_io_stat(b""), Some((0, 0)));
        assert_eq!(parse_io_stat(b"rbytes=1\n"), None);
        assert_eq!(parse_io_stat(b"8:0 rbytes=x\n"), None);
    }

    #[test]
    fn blkio_sums_read_and_write_not_total() {
        let b = b"8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n\
                  8:0 Discard 0\n8:0 Total 12288\n8:16 Read 100\n8:16 Write 0\n\
                  8:16 Total 100\nTotal 12388\n";
        assert_eq!(parse_blkio_service_bytes(b), Some((4196, 8192)));
        assert_eq!(parse_blkio_service_bytes(b"Total 0\n"), Some((0, 0)));
        assert_eq!(parse_blkio_service_bytes(b"x Read 1\n"), None);
        assert_eq!(parse_blkio_service_bytes(b"8:0 Read -1\n"), None);
    }

    #[test]
    fn openat_refuses_inner_nul() {
        // A tree of the repo's, not "/": qemu-user's -L sysroot would
        // stand in for "/" on the board builds' tests.
        let d = File::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h200-vm"
        ))
        .unwrap();
        let mut p = Vec::new();
        assert!(openat(d.as_raw_fd(), b"pr\0oc", b"", &mut p, libc::O_DIRECTORY).is_err());
        assert!(openat(d.as_raw_fd(), b"proc", b"stat\0", &mut p, 0).is_ok());
    }

    #[test]
    fn lists_only_directories() {
        let d = File::open("/proc/self").unwrap();
        let mut names = Vec::new();
        list_subdirs(d.as_raw_fd(), &mut Vec::new(), |n| names.push(n.to_vec())).unwrap();
        assert!(names.iter().any(|n| n == b"fd"));
        assert!(!names
            .iter()
            .any(|n| n == b"stat" || n == b"." || n == b".."));
    }

    fn fixture(tree: &str) -> Root {
        Root::new(format!(
            "{}/tests/fixtures/{tree}",
            env!("CARGO_MANIFEST_DIR")
        ))
    }

    /// (path, kind, name, cpu_ns, mem, mem_max, io, pids) of each row.
    type Expect = (
        &'static str,
        Kind,
        &'static str,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<(u64, u64)>,
        Option<u64>,
    );

    /// Two samples through `Collectors`, then the scanner alone with no
    /// fd budget (open, read, close): the rows hold what the files hold.
    fn check_tree(tree: &str, version: Version, want: &[Expect]) {
        use crate::collect::{Collectors, Settings};
        let mut c = Collectors::new(
            Settings {
                root: fixture(tree),
                ..Settings::default()
            },
            64,
        );
        for sample in 0..2 {
            let rows = c.collect_cgroups(Instant::now()).unwrap().to_vec();
            let got: Vec<Expect> = rows
                .iter()
                .zip(want)
                .map(|(r, w)| {
                    (
                        w.0,
                        r.kind,
                        w.2,
                        r.cpu_ns,
                        r.mem_bytes,
                        r.mem_max_bytes,
                        r.io_read_bytes.zip(r.io_write_bytes),
                        r.pids,
                    )
                })
                .collect();
            let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
            let want_paths: Vec<&str> = want.iter().map(|w| w.0).collect();
            assert_eq!(paths, want_paths, "{tree}, sample {sample}");
            let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
            let want_names: Vec<&str> = want.iter().map(|w| w.2).collect();
            assert_eq!(names, want_names);
            assert_eq!(got, want, "{tree}, sample {sample}");
            for r in &rows {
                // the files do not change: no CPU, no I/O since the first sample
                let (cpu, io) = if sample == 0 {
                    (None, None)
                } else {
                    (r.cpu_ns.map(|_| 0.0), r.io_read_bytes.map(|_| 0.0))
                };
                assert_eq!(r.cpu_pct, cpu, "{}", r.path);
                assert_eq!(r.io_read_bytes_per_s, io, "{}", r.path);
                assert_eq!(r.io_write_bytes_per_s, io, "{}", r.path);
            }
        }
        let mut s = CgroupScanner::new(0);
        s.scan(&fixture(tree), Instant::now(), 0, 100).unwrap();
        assert_eq!(s.version(), Some(version));
        assert_eq!(s.kept_files(), 0);
        assert_eq!(
            &s.rows,
            &c.cgroups()
                .1
                .iter()
                .map(|r| CgroupRow {
                    cpu_pct: None,
                    io_read_bytes_per_s: None,
                    io_write_bytes_per_s: None,
                    ..r.clone()
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn v2_fixture_gives_its_files_values() {
        check_tree(
            "cgroup-v2",
            Version::V2,
            &[
                (
                    "/system.slice/docker-3f2a9c1be0d4a7f6c5b8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4.scope",
                    Kind::Container,
                    "3f2a9c1be0d4",
                    Some(730_512_004_000),
                    Some(412_381_184),
                    Some(536_870_912),
                    Some((73_400_320, 209_715_200)),
                    Some(12),
                ),
                (
                    "/system.slice/nginx.service",
                    Kind::Service,
                    "nginx.service",
                    Some(48_213_377_000),
                    Some(25_714_688),
                    None,
                    Some((10_485_760 + 2_097_152, 4096 + 1_048_576)),
                    Some(3),
                ),
                (
                    "/user.slice/user-1000.slice/session-2.scope",
                    Kind::Scope,
                    "session-2.scope",
                    Some(5_120_004_311_000),
                    Some(2_198_302_720),
                    None,
                    Some((0, 0)),
                    Some(4), // no pids.current: the lines of cgroup.procs
                ),
            ],
        );
    }

    #[test]
    fn v1_fixture_gives_its_files_values() {
        check_tree(
            "cgroup-v1",
            Version::V1,
            &[
                (
                    "/docker/9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c",
                    Kind::Container,
                    "9b8c7d6e5f4a",
                    Some(730_512_004_000),
                    Some(412_381_184),
                    Some(536_870_912),
                    Some((73_400_320, 209_715_200)),
                    Some(2), // not in the pids hierarchy
                ),
                (
                    "/sandbox/job-7",
                    Kind::Other,
                    "job-7",
                    None, // only in the memory hierarchy
                    Some(1_350_475_776),
                    Some(4_294_967_296),
                    None,
                    Some(1),
                ),
                (
                    "/system.slice/nginx.service",
                    Kind::Service,
                    "nginx.service",
                    Some(48_213_377_123),
                    Some(25_714_688),
                    None, // 9223372036854771712: no limit
                    Some((10_485_760 + 2_097_152, 4096 + 1_048_576)),
                    Some(3),
                ),
            ],
        );
    }

    #[test]
    fn no_cgroup_filesystem_is_an_empty_list() {
        let mut s = CgroupScanner::new(16);
        s.scan(&fixture("h200-vm"), Instant::now(), 0, 100).unwrap();
        assert_eq!(s.version(), None);
        assert!(s.rows.is_empty());
    }

    /// Rates over a window: counters moved between two samples, one of
    /// them backwards (a reset: 0, not a wrap); a cgroup removed between
    /// samples is gone from the next.
    #[test]
    fn rates_resets_and_removal() {
        let dir = std::env::temp_dir().join(format!("sockagent-cg-{}", std::process::id()));
        let cg = dir.join("sys/fs/cgroup");
        let a = cg.join("a.service");
        let b = cg.join("b.service");
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("cgroup.procs"), "7\n").unwrap();
            std::fs::write(d.join("cpu.stat"), "usage_usec 1000000\n").unwrap();
            std::fs::write(d.join("io.stat"), "8:0 rbytes=1000 wbytes=5000\n").unwrap();
        }
        std::fs::write(cg.join("cgroup.controllers"), "cpu io\n").unwrap();
        let root = Root::new(&dir);
        let mut s = CgroupScanner::new(4);
        let t0 = Instant::now();
        s.scan(&root, t0, 10_000, 100).unwrap();
        assert_eq!(s.rows.len(), 2);
        // a: 0.5 s of CPU over 200 jiffies at 100 Hz (1 s on 2 CPUs): 25 %
        std::fs::write(a.join("cpu.stat"), "usage_usec 1500000\n").unwrap();
        std::fs::write(a.join("io.stat"), "8:0 rbytes=3000 wbytes=4000\n").unwrap();
        s.scan(&root, t0 + Duration::from_secs(2), 10_200, 100)
            .unwrap();
        let r = &s.rows[0];
        assert_eq!(r.path, "/a.service");
        assert_eq!(r.cpu_pct, Some(25.0));
        assert_eq!(r.io_read_bytes_per_s, Some(1000.0));
        assert_eq!(r.io_write_bytes_per_s, Some(0.0), "a reset is 0");
        std::fs::remove_dir_all(&b).unwrap();
        s.scan(&root, t0 + Duration::from_secs(3), 10_300, 100)
            .unwrap();
        let paths: Vec<&str> = s.rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/a.service"]);
        assert!(s.kept_files() <= 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
