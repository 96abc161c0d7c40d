//! One process in detail (`process_metrics`): this path runs for one PID
//! every 500 ms at most, so clarity beats speed. It reads the process
//! through the `procfs` crate (`stat`, `statm`, `status`, `io`, the fd
//! count, `cwd`, `exe`, its tasks), rooted at `Root` so fixture trees work;
//! the command line and a `/proc/PID/io` procfs refuses go through the two
//! small parsers here. (Issue 15 brought procfs back after #10 had
//! replaced it with hand parsers for size.)

use super::error::{CollectError, ErrorKind, Result};
use super::fs::Root;
use procfs::process::Process;
use procfs::ProcError;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

/// The shape of socktop_connector 1.60.1's `DetailedProcessInfo`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Detail {
    pub pid: u32,
    pub name: String,
    pub command: String,
    pub cpu_usage: f32,
    pub mem_bytes: u64,
    pub virtual_mem_bytes: u64,
    pub shared_mem_bytes: Option<u64>,
    pub thread_count: u32,
    pub fd_count: Option<u32>,
    pub status: String,
    pub parent_pid: Option<u32>,
    pub user_id: u32,
    pub group_id: u32,
    pub start_time: u64,
    pub cpu_time_user: u64,
    pub cpu_time_system: u64,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    pub working_directory: Option<String>,
    pub executable_path: Option<String>,
    pub child_processes: Vec<Detail>,
    pub threads: Vec<ThreadDetail>,
    /// The cgroup holding the process, as the `cgroups` answer names it
    /// (`pick_cgroup`); the process asked for only, null for its children.
    pub cgroup: Option<String>,
}

/// The shape of the connector's `ThreadInfo`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreadDetail {
    pub tid: u32,
    pub name: String,
    pub cpu_time_user: u64,
    pub cpu_time_system: u64,
    pub status: String,
}

/// The kernel's one-letter task state, spelled out.
pub fn state_name(c: char) -> &'static str {
    match c {
        'R' => "Running",
        'S' => "Sleeping",
        'D' => "Disk Sleep",
        'Z' => "Zombie",
        'T' => "Stopped",
        't' => "Tracing Stop",
        'X' | 'x' => "Dead",
        'I' => "Idle",
        'P' => "Parked",
        'W' => "Waking",
        'K' => "Wakekill",
        _ => "Unknown",
    }
}

/// Clock facts needed to turn ticks into time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub ticks_per_sec: u64,
    pub page_size: u64,
    /// Boot time, epoch seconds.
    pub btime: u64,
}

impl Clock {
    fn ticks_to_us(&self, t: u64) -> u64 {
        t.saturating_mul(1_000_000) / self.ticks_per_sec.max(1)
    }
}

/// The command line, NUL-separated args joined by spaces; lossy UTF-8.
/// Ours rather than procfs's `cmdline()`, which refuses (as an I/O error)
/// an argv that is not UTF-8 where this keeps the rest of it.
pub fn parse_cmdline(raw: &[u8]) -> String {
    let parts: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    parts.join(" ")
}

/// `read_bytes` and `write_bytes` of `/proc/PID/io`, for the file procfs
/// refuses whole: some kernels print a negative `cancelled_write_bytes`
/// (procfs wants every field a u64), which this ignores.
pub fn parse_io(buf: &[u8]) -> (Option<u64>, Option<u64>) {
    let mut out = (None, None);
    for line in super::num::lines(buf) {
        let mut f = super::num::fields(line);
        match (f.next(), f.next().and_then(super::num::parse_u64)) {
            (Some(b"read_bytes:"), v) => out.0 = v,
            (Some(b"write_bytes:"), v) => out.1 = v,
            _ => {}
        }
    }
    out
}

/// A procfs error as the collectors' one error type: a process gone (or a
/// file this kernel lacks) is `Vanished`, a refusal `Permission`, a file
/// procfs could not parse `Malformed`.
fn proc_error(what: &'static str) -> impl Fn(ProcError) -> CollectError {
    move |e| {
        let kind = |kind| CollectError {
            kind,
            what,
            source: None,
            why: "",
        };
        match e {
            ProcError::NotFound(_) => kind(ErrorKind::Vanished),
            ProcError::PermissionDenied(_) => kind(ErrorKind::Permission),
            ProcError::Io(e, _) => CollectError::io(what, e),
            ProcError::Incomplete(_) => CollectError::malformed(what, "incomplete"),
            ProcError::Other(_) | ProcError::InternalError(_) => {
                CollectError::malformed(what, "not what procfs parses")
            }
        }
    }
}

fn link_string(p: procfs::ProcResult<PathBuf>) -> Option<String> {
    p.ok().map(|p| p.to_string_lossy().into_owned())
}

/// Open descriptors: procfs's `fd_count` where `/proc/PID/fd` is procfs's
/// (since Linux 6.2 the directory's size is their number, a `stat` where
/// listing a busy process's fds costs tens of µs; older kernels say 0 and
/// it counts the listing). A directory that is not procfs's (a fixture
/// tree) has a size of its own, so it is always counted.
fn fd_count(proc: &Process, fd_dir: PathBuf) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    let c = std::ffi::CString::new(fd_dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid C string and `st` a zeroed statfs for the
    // kernel to fill; nothing else is read or kept.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // f_type is i64, i32 or an unsigned long, by target.
    #[allow(clippy::unnecessary_cast)]
    let on_procfs =
        unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 && st.f_type as i64 == PROC_SUPER_MAGIC;
    if on_procfs {
        return u32::try_from(proc.fd_count().ok()?).ok();
    }
    u32::try_from(std::fs::read_dir(fd_dir).ok()?.count()).ok()
}

/// Reads one process: its detail and its utime+stime ticks.
/// `with_family`: also its children and threads. Only `stat` must be
/// readable; a field whose file is refused (io, fd, cwd, exe of another
/// user's process without CAP_SYS_PTRACE) is null.
pub fn read_detail(
    root: &Root,
    pid: u32,
    clock: &Clock,
    with_family: bool,
) -> Result<(Detail, u64)> {
    let dir = root.path(&format!("proc/{pid}"));
    let proc = Process::new_with_root(dir.clone()).map_err(proc_error("/proc/PID"))?;
    let st = proc.stat().map_err(proc_error("/proc/PID/stat"))?;
    let ticks = st.utime.saturating_add(st.stime);
    let mut d = from_stat(pid, st, clock);
    if let Ok(m) = proc.statm() {
        d.mem_bytes = m.resident.saturating_mul(clock.page_size);
        d.shared_mem_bytes = Some(m.shared.saturating_mul(clock.page_size));
    }
    // The real IDs; a status procfs cannot parse: the directory's owner.
    (d.user_id, d.group_id) = match proc.status() {
        Ok(s) => (s.ruid, s.rgid),
        Err(_) => {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&dir).map_err(CollectError::reading("/proc/PID"))?;
            (m.uid(), m.gid())
        }
    };
    (d.read_bytes, d.write_bytes) = io_bytes(&proc, &dir);
    d.fd_count = fd_count(&proc, dir.join("fd"));
    let mut buf = Vec::with_capacity(4096);
    let cmd = read(dir.join("cmdline"), &mut buf)
        .map(parse_cmdline)
        .unwrap_or_default();
    d.command = if cmd.is_empty() {
        format!("[{}]", d.name)
    } else {
        cmd
    };
    d.working_directory = link_string(proc.cwd());
    d.executable_path = link_string(proc.exe());
    if with_family {
        add_family(root, &proc, clock, &mut d);
    }
    Ok((d, ticks))
}

/// The detail `/proc/PID/stat` alone gives; the rest starts empty.
fn from_stat(pid: u32, st: procfs::process::Stat, clock: &Clock) -> Detail {
    Detail {
        pid,
        name: st.comm,
        command: String::new(),
        cpu_usage: 0.0,
        mem_bytes: st.rss.saturating_mul(clock.page_size),
        virtual_mem_bytes: st.vsize,
        shared_mem_bytes: None,
        thread_count: u32::try_from(st.num_threads.max(0)).unwrap_or(u32::MAX),
        fd_count: None,
        status: state_name(st.state).to_string(),
        parent_pid: u32::try_from(st.ppid).ok().filter(|&p| p != 0),
        user_id: 0,
        group_id: 0,
        start_time: clock.btime + st.starttime / clock.ticks_per_sec.max(1),
        cpu_time_user: clock.ticks_to_us(st.utime),
        cpu_time_system: clock.ticks_to_us(st.stime),
        read_bytes: None,
        write_bytes: None,
        working_directory: None,
        executable_path: None,
        child_processes: Vec::new(),
        threads: Vec::new(),
        cgroup: None,
    }
}

/// Bytes read and written. io is unreadable for others' processes without
/// CAP_SYS_PTRACE: null; one procfs cannot parse goes through `parse_io`.
fn io_bytes(proc: &Process, dir: &std::path::Path) -> (Option<u64>, Option<u64>) {
    match proc.io().map_err(proc_error("/proc/PID/io")) {
        Ok(io) => (Some(io.read_bytes), Some(io.write_bytes)),
        Err(e) if e.kind == ErrorKind::Malformed => {
            let mut buf = Vec::with_capacity(4096);
            read(dir.join("io"), &mut buf).map_or((None, None), parse_io)
        }
        Err(_) => (None, None),
    }
}

/// The process's cgroup, its threads by tid and its children's detail.
fn add_family(root: &Root, proc: &Process, clock: &Clock, d: &mut Detail) {
    d.cgroup = proc.cgroups().ok().and_then(|g| pick_cgroup(&g.0));
    for task in proc.tasks().into_iter().flatten().flatten() {
        let (Ok(tid), Ok(ts)) = (u32::try_from(task.tid), task.stat()) else {
            continue;
        };
        d.threads.push(ThreadDetail {
            tid,
            name: ts.comm,
            cpu_time_user: clock.ticks_to_us(ts.utime),
            cpu_time_system: clock.ticks_to_us(ts.stime),
            status: state_name(ts.state).to_string(),
        });
    }
    d.threads.sort_unstable_by_key(|t| t.tid);
    for child in children(root, d.pid) {
        if let Ok((c, _)) = read_detail(root, child, clock, false) {
            d.child_processes.push(c);
        }
    }
}

/// The cgroup path to show for a process, from its `/proc/PID/cgroup`
/// lines: the unified (v2) one where it is not the root, else the v1
/// `cpuacct` or `memory` hierarchy's (the controllers the `cgroups` answer
/// reads on a v1 host) where that is not the root, else `/`.
pub fn pick_cgroup(groups: &[procfs::ProcessCGroup]) -> Option<String> {
    let not_root = |g: &&procfs::ProcessCGroup| g.pathname != "/";
    groups
        .iter()
        .filter(|g| g.hierarchy == 0 && g.controllers.is_empty())
        .find(not_root)
        .or_else(|| {
            groups
                .iter()
                .filter(|g| {
                    g.controllers
                        .iter()
                        .any(|c| c == "cpuacct" || c == "memory")
                })
                .find(not_root)
        })
        .or_else(|| groups.first())
        .map(|g| {
            if not_root(&g) {
                g.pathname.clone()
            } else {
                "/".into()
            }
        })
}

/// Reads a `/proc` file into `buf` in one `read` (a 4 KiB buffer holds
/// every file read here; a short read is the end), where `std::fs::read`
/// would `statx` first and then grow from 32 bytes, a syscall per doubling.
fn read(path: PathBuf, buf: &mut Vec<u8>) -> Option<&[u8]> {
    let f = std::fs::File::open(path).ok()?;
    super::fs::pread_all(&f, buf).ok()?;
    Some(buf)
}

/// Direct children: `/proc/PID/task/*/children` where the kernel has it,
/// else a walk of every `/proc/*/stat` for a matching parent.
pub fn children(root: &Root, pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut found_file = false;
    if let Ok(rd) = std::fs::read_dir(root.path(&format!("proc/{pid}/task"))) {
        for t in rd.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                found_file = true;
                out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
            }
        }
    }
    if !found_file {
        if let Ok(rd) = std::fs::read_dir(root.path("proc")) {
            for e in rd.flatten() {
                let Some(cpid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Ok(b) = std::fs::read(e.path().join("stat")) {
                    if super::processes::parse_pid_stat(&b)
                        .is_some_and(|s| s.ppid == i64::from(pid))
                    {
                        out.push(cpid);
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Most PIDs whose CPU baselines (and answers, in `answers`) are kept: a
/// client walking every PID cannot grow memory past this.
pub const MAX_PIDS: usize = 64;
/// Baselines unused for this long are dropped.
const EXPIRE: std::time::Duration = std::time::Duration::from_secs(60);

/// (when, utime+stime, starttime): the CPU baseline for the next ask.
struct Baseline {
    seen: Instant,
    ticks: u64,
    start_time: u64,
}

/// Inserts into a per-PID map that holds at most `MAX_PIDS` entries:
/// entries older than `expire` go first, then the oldest if still full.
pub fn insert_bounded<V>(
    map: &mut HashMap<u32, V>,
    pid: u32,
    value: V,
    now: Instant,
    expire: std::time::Duration,
    at: impl Fn(&V) -> Instant,
) {
    map.retain(|_, v| now.duration_since(at(v)) < expire);
    if !map.contains_key(&pid) && map.len() >= MAX_PIDS {
        if let Some(oldest) = map.iter().min_by_key(|(_, v)| at(v)).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
    map.insert(pid, value);
}

/// Per-PID CPU baselines, bounded: a process's `cpu_usage` is over the
/// time since it was last asked for.
#[derive(Default)]
pub struct DetailBaselines {
    entries: HashMap<u32, Baseline>,
}

impl DetailBaselines {
    /// `pid` in detail, its CPU share since it was last asked for (the
    /// first time: the average over its life so far; 100 = one core).
    pub fn sample(&mut self, root: &Root, pid: u32, clock: &Clock, now: Instant) -> Result<Detail> {
        let (mut d, ticks) = match read_detail(root, pid, clock, true) {
            Ok(v) => v,
            Err(e) => {
                self.entries.remove(&pid);
                return Err(e);
            }
        };
        let uptime_now = super::host::epoch_ms() as f64 / 1000.0;
        d.cpu_usage = match self.entries.get(&pid) {
            Some(e) if e.start_time == d.start_time && ticks >= e.ticks => {
                let secs = now.duration_since(e.seen).as_secs_f64();
                let used = (ticks - e.ticks) as f64 / clock.ticks_per_sec.max(1) as f64;
                if secs > 0.0 {
                    (used / secs * 100.0) as f32
                } else {
                    0.0
                }
            }
            _ => {
                let life = uptime_now - d.start_time as f64;
                let used = ticks as f64 / clock.ticks_per_sec.max(1) as f64;
                if life >= 1.0 {
                    (used / life * 100.0) as f32
                } else {
                    0.0
                }
            }
        };
        if !d.cpu_usage.is_finite() || d.cpu_usage < 0.0 {
            d.cpu_usage = 0.0;
        }
        let b = Baseline {
            seen: now,
            ticks,
            start_time: d.start_time,
        };
        insert_bounded(&mut self.entries, pid, b, now, EXPIRE, |b| b.seen);
        Ok(d)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(lines: &[(u32, &str, &str)]) -> Vec<procfs::ProcessCGroup> {
        lines
            .iter()
            .map(|&(h, c, p)| procfs::ProcessCGroup {
                hierarchy: h,
                controllers: c
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                pathname: p.into(),
            })
            .collect()
    }

    #[test]
    fn the_cgroup_shown_is_the_cgroups_answers() {
        // a v2 host: the unified line
        let v2 = groups(&[(0, "", "/system.slice/nginx.service")]);
        assert_eq!(
            pick_cgroup(&v2).as_deref(),
            Some("/system.slice/nginx.service")
        );
        // a hybrid v1 host like this development VM: memory's, the unified one being the root
        let v1 = groups(&[
            (9, "name=systemd", "/"),
            (4, "memory", "/process_api/3ce2"),
            (2, "cpuacct", "/"),
            (1, "cpu", "/"),
            (0, "", "/"),
        ]);
        assert_eq!(pick_cgroup(&v1).as_deref(), Some("/process_api/3ce2"));
        // everything at the root
        let root = groups(&[(2, "cpu,cpuacct", "/"), (0, "", "/")]);
        assert_eq!(pick_cgroup(&root).as_deref(), Some("/"));
        assert_eq!(pick_cgroup(&[]), None);
    }

    fn clock() -> Clock {
        Clock {
            ticks_per_sec: 100,
            page_size: 4096,
            btime: 1_418_183_276,
        }
    }

    #[test]
    fn cmdline_with_hostile_bytes() {
        assert_eq!(parse_cmdline(b"vim\0test.txt\0"), "vim test.txt");
        assert_eq!(parse_cmdline(b""), "");
        let s = parse_cmdline(b"a\xffb\0c\nd\0");
        assert!(serde_json::to_string(&s).is_ok());
        assert!(s.contains('\n'));
    }

    #[test]
    fn fixture_process_26231() {
        let root = Root::fixture("prometheus-procfs");
        let (d, ticks) = read_detail(&root, 26231, &clock(), true).unwrap();
        assert_eq!(d.name, "vim");
        assert_eq!(d.command, "vim test.go +10");
        assert_eq!(d.status, "Running");
        assert_eq!(d.parent_pid, Some(5392));
        assert_eq!(ticks, 1677 + 44);
        assert_eq!(d.cpu_time_user, 16_770_000);
        assert_eq!(d.start_time, 1_418_183_276 + 823);
        assert_eq!(d.virtual_mem_bytes, 56274944);
        assert_eq!(d.read_bytes, Some(1024));
        assert_eq!(d.executable_path.as_deref(), Some("/usr/bin/vim"));
        assert_eq!(d.working_directory.as_deref(), Some("/usr/bin"));
        assert_eq!((d.user_id, d.group_id), (1000, 1001));
        assert_eq!(d.mem_bytes, 12547 * 4096);
        assert_eq!(d.shared_mem_bytes, Some(u64::MAX), "saturates, as before");
        assert_eq!(d.fd_count, Some(5));
        assert_eq!(d.write_bytes, Some(2048));
        assert!(d.threads.is_empty(), "no task directory in this fixture");
    }

    #[test]
    fn fd_count_on_procfs_matches_the_listing() {
        // A child whose descriptors stay put (this process's change as
        // other tests run beside this one): stdin, stdout and stderr.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let dir = PathBuf::from(format!("/proc/{}/fd", child.id()));
        let listed = std::fs::read_dir(&dir).unwrap().count() as u32;
        assert!(listed >= 3, "{listed}");
        let proc = Process::new(child.id() as i32).unwrap();
        assert_eq!(fd_count(&proc, dir), Some(listed));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn io_that_procfs_refuses_still_gives_both_counts() {
        // The fixture's io (as some kernels print it) has a negative
        // cancelled_write_bytes; the fixture test above reads it through
        // procfs and then this parser.
        let io = b"rchar: 1\nread_bytes: 1024\nwrite_bytes: 2048\ncancelled_write_bytes: -1024\n";
        assert_eq!(parse_io(io), (Some(1024), Some(2048)));
        assert_eq!(parse_io(b"read_bytes: x\n"), (None, None));
    }

    #[test]
    fn errors_say_what_happened() {
        let root = Root::default();
        let e = read_detail(&root, u32::MAX - 1, &clock(), false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Vanished, "{e}");
        // A directory with a stat procfs cannot parse.
        let tmp = crate::scratch::Scratch::new("detail");
        tmp.write("proc/7/stat", b"7 no parens\n");
        let e = read_detail(&Root::new(tmp.path()), 7, &clock(), false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed, "{e}");
    }

    #[test]
    fn unknown_pid_is_vanished_and_baselines_are_bounded() {
        let root = Root::default();
        let c = Clock {
            ticks_per_sec: crate::collect::host::clock_ticks(),
            page_size: 4096,
            btime: 0,
        };
        let mut cache = DetailBaselines::default();
        let gone = cache.sample(&root, u32::MAX - 1, &c, Instant::now());
        assert_eq!(
            gone.unwrap_err().kind,
            crate::collect::error::ErrorKind::Vanished
        );
        let me = std::process::id();
        let d = cache.sample(&root, me, &c, Instant::now()).unwrap();
        assert_eq!(d.pid, me);
        // walking many pids keeps at most MAX_PIDS entries
        for pid in std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .take(200)
        {
            let _ = cache.sample(&root, pid, &c, Instant::now());
        }
        assert!(cache.len() <= MAX_PIDS);
    }
}
