//! One process in detail (`process_metrics`): this path runs for one PID
//! every 500 ms at most, so clarity beats speed. It reads `stat` with the
//! scan's own parser (`processes::parse_pid_stat`) and the few other files
//! with the small parsers here. It used the `procfs` crate until the binary
//! size target (#10): procfs was 74 KB of the binary for five files.

use super::fs::Root;
use super::processes::parse_pid_stat;
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

#[derive(Serialize)]
struct Response<'a> {
    process: &'a Detail,
    cached_at: u64,
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
pub fn parse_cmdline(raw: &[u8]) -> String {
    let parts: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    parts.join(" ")
}

/// `read_bytes` and `write_bytes` of `/proc/PID/io`.
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

/// `(size, resident, shared)` pages from `/proc/PID/statm`.
pub fn parse_statm(buf: &[u8]) -> Option<(u64, u64, u64)> {
    let mut f = super::num::fields(buf).map(super::num::parse_u64);
    Some((f.next()??, f.next()??, f.next()??))
}

/// The real UID and GID from `/proc/PID/status` (`Uid:` and `Gid:` lines,
/// real, effective, saved, filesystem).
pub fn parse_status_ids(buf: &[u8]) -> Option<(u32, u32)> {
    let (mut uid, mut gid) = (None, None);
    for line in super::num::lines(buf) {
        let mut f = super::num::fields(line);
        let slot = match f.next() {
            Some(b"Uid:") => &mut uid,
            Some(b"Gid:") => &mut gid,
            _ => continue,
        };
        *slot = f
            .next()
            .and_then(super::num::parse_u64)
            .and_then(|v| u32::try_from(v).ok());
    }
    Some((uid?, gid?))
}

fn link_string(p: PathBuf) -> Option<String> {
    std::fs::read_link(p)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Reads a `/proc` file into `buf` in one `read` (a 4 KiB buffer holds
/// every file read here; a short read is the end), where `std::fs::read`
/// would `statx` first and then grow from 32 bytes, a syscall per doubling.
fn read(path: PathBuf, buf: &mut Vec<u8>) -> Option<&[u8]> {
    let f = std::fs::File::open(path).ok()?;
    super::fs::pread_all(&f, buf).ok()?;
    Some(buf)
}

/// Open descriptors: since Linux 6.2 the size of procfs's `/proc/PID/fd`
/// is their number (a `statfs` and a `stat`, where listing a busy process's
/// fds costs tens of µs); older kernels say 0 there, and a directory that
/// is not procfs's (a fixture tree) has a size of its own: then they are
/// counted.
fn fd_count(fd_dir: PathBuf) -> Option<u32> {
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
        match std::fs::metadata(&fd_dir).map(|m| m.len()) {
            Ok(0) => {}
            Ok(n) => return u32::try_from(n).ok(),
            Err(_) => return None,
        }
    }
    u32::try_from(std::fs::read_dir(fd_dir).ok()?.count()).ok()
}

/// Reads one process. `with_family`: also its children and threads.
/// Reads one process: its detail and its utime+stime ticks.
pub fn read_detail(
    root: &Root,
    pid: u32,
    clock: &Clock,
    with_family: bool,
) -> Option<(Detail, u64)> {
    let dir = root.path(&format!("proc/{pid}"));
    let mut buf = Vec::with_capacity(4096);
    let st = parse_pid_stat(read(dir.join("stat"), &mut buf)?)?;
    let ticks = st.utime.saturating_add(st.stime);
    let mut d = Detail {
        pid,
        name: String::from_utf8_lossy(st.comm).into_owned(),
        command: String::new(),
        cpu_usage: 0.0,
        mem_bytes: u64::try_from(st.rss_pages)
            .unwrap_or(0)
            .saturating_mul(clock.page_size),
        virtual_mem_bytes: st.vsize,
        shared_mem_bytes: None,
        thread_count: u32::try_from(st.num_threads.max(0)).unwrap_or(u32::MAX),
        fd_count: None,
        status: state_name(char::from(st.state)).to_string(),
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
    };
    if let Some((_, resident, shared)) = read(dir.join("statm"), &mut buf).and_then(parse_statm) {
        d.mem_bytes = resident.saturating_mul(clock.page_size);
        d.shared_mem_bytes = Some(shared.saturating_mul(clock.page_size));
    }
    (d.user_id, d.group_id) = match read(dir.join("status"), &mut buf).and_then(parse_status_ids) {
        Some(ids) => ids,
        None => {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&dir).ok()?;
            (m.uid(), m.gid())
        }
    };
    // io and fd are unreadable for others' processes without
    // CAP_SYS_PTRACE: null. Some kernels print a negative
    // cancelled_write_bytes, which parse_io ignores.
    if let Some((r, w)) = read(dir.join("io"), &mut buf).map(parse_io) {
        (d.read_bytes, d.write_bytes) = (r, w);
    }
    d.fd_count = fd_count(dir.join("fd"));
    let cmd = read(dir.join("cmdline"), &mut buf)
        .map(parse_cmdline)
        .unwrap_or_default();
    d.command = if cmd.is_empty() {
        format!("[{}]", d.name)
    } else {
        cmd
    };
    d.working_directory = link_string(dir.join("cwd"));
    d.executable_path = link_string(dir.join("exe"));
    if with_family {
        let mut tids: Vec<u32> = std::fs::read_dir(dir.join("task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        tids.sort_unstable();
        for tid in tids {
            let path = dir.join(format!("task/{tid}/stat"));
            let Some(ts) = read(path, &mut buf).and_then(parse_pid_stat) else {
                continue;
            };
            d.threads.push(ThreadDetail {
                tid,
                name: String::from_utf8_lossy(ts.comm).into_owned(),
                cpu_time_user: clock.ticks_to_us(ts.utime),
                cpu_time_system: clock.ticks_to_us(ts.stime),
                status: state_name(char::from(ts.state)).to_string(),
            });
        }
        for child in children(root, pid) {
            if let Some((c, _)) = read_detail(root, child, clock, false) {
                d.child_processes.push(c);
            }
        }
    }
    Some((d, ticks))
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

/// Most PIDs whose answers (and CPU baselines) are kept: a client walking
/// every PID cannot grow memory past this.
pub const MAX_PIDS: usize = 64;
/// How long an answer is served from the cache.
pub const TTL: std::time::Duration = std::time::Duration::from_millis(250);
/// Entries unused for this long are dropped.
const EXPIRE: std::time::Duration = std::time::Duration::from_secs(60);

struct Entry {
    /// (when, utime+stime, starttime): the CPU baseline for the next ask.
    seen: Instant,
    ticks: u64,
    start_time: u64,
    answer: Option<(Instant, String)>,
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

/// Per-PID answers and CPU baselines, bounded.
#[derive(Default)]
pub struct DetailCache {
    entries: HashMap<u32, Entry>,
}

impl DetailCache {
    /// The JSON answer for `pid`, or `None` if there is no such process.
    pub fn answer(&mut self, root: &Root, pid: u32, clock: &Clock, now: Instant) -> Option<String> {
        if let Some(Entry {
            answer: Some((at, json)),
            ..
        }) = self.entries.get(&pid)
        {
            if now.duration_since(*at) < TTL {
                return Some(json.clone());
            }
        }
        let Some((mut d, ticks)) = read_detail(root, pid, clock, true) else {
            self.entries.remove(&pid);
            return None;
        };
        let uptime_now = super::epoch_ms() as f64 / 1000.0;
        d.cpu_usage = match self.entries.get(&pid) {
            // Over the time since this PID was last asked for (100 = one core).
            Some(e) if e.start_time == d.start_time && ticks >= e.ticks => {
                let secs = now.duration_since(e.seen).as_secs_f64();
                let used = (ticks - e.ticks) as f64 / clock.ticks_per_sec.max(1) as f64;
                if secs > 0.0 {
                    (used / secs * 100.0) as f32
                } else {
                    0.0
                }
            }
            // First ask: the average over the process's life so far.
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
        let json = serde_json::to_string(&Response {
            process: &d,
            cached_at: super::epoch_ms() / 1000,
        })
        .ok()?;
        let entry = Entry {
            seen: now,
            ticks,
            start_time: d.start_time,
            answer: Some((now, json.clone())),
        };
        insert_bounded(&mut self.entries, pid, entry, now, EXPIRE, |e| e.seen);
        Some(json)
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
        let root = Root::new(format!(
            "{}/tests/fixtures/prometheus-procfs",
            env!("CARGO_MANIFEST_DIR")
        ));
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
        assert_eq!(fd_count(dir), Some(listed));
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn statm_and_status_ids() {
        assert_eq!(
            parse_statm(b"149919 12547 4242 19864 0 14531 0\n"),
            Some((149_919, 12_547, 4242))
        );
        assert_eq!(parse_statm(b"1 2"), None);
        let status = b"Name:\tx\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\n";
        assert_eq!(parse_status_ids(status), Some((1000, 5)));
        assert_eq!(parse_status_ids(b"Uid:\t1\n"), None);
        assert_eq!(parse_status_ids(b"Uid:\t99999999999\nGid:\t1\n"), None);
    }

    #[test]
    fn unknown_pid_is_none_and_cache_is_bounded() {
        let root = Root::default();
        let c = Clock {
            ticks_per_sec: super::super::clock_ticks(),
            page_size: 4096,
            btime: 0,
        };
        let mut cache = DetailCache::default();
        assert!(cache
            .answer(&root, u32::MAX - 1, &c, Instant::now())
            .is_none());
        let me = std::process::id();
        let json = cache.answer(&root, me, &c, Instant::now()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["process"]["pid"], me);
        // walking many pids keeps at most MAX_PIDS entries
        for pid in std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .take(200)
        {
            let _ = cache.answer(&root, pid, &c, Instant::now());
        }
        assert!(cache.len() <= MAX_PIDS);
    }
}
