//! The process scan: every `/proc/PID/stat`, CPU share since the last scan.
//!
//! Each live pid's stat file is kept open and re-read with `pread` (a fresh
//! open+read+close costs 2-3x more); a pid that is gone reads as an error
//! and is dropped. Open files are budgeted against RLIMIT_NOFILE: past the
//! budget a pid falls back to open/read/close.
//!
//! `/proc` itself is listed again only when a pid may have come: the last
//! field of `/proc/loadavg` is the pid the kernel allocated last, so while
//! it stands still no process (or thread) was made and the pids of the
//! last listing are all there is; one that exited reads as an error. A
//! listing costs more than that one small read, and a paced client finds
//! the pid set unchanged most of the time. Where `/proc` is not our own
//! pid namespace's (another root's), loadavg speaks of ours, so every scan
//! lists. Whatever happens, `/proc` is listed again once per re-probe
//! epoch.

use super::error::{CollectError, Result};
use super::fs::{pid_of, pread_all, KeptDir, KeptFile, Root};
use super::num::{fields, parse_i64, parse_u64};
use crate::families::{Family, Sink, Value};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// The fields of `/proc/PID/stat` the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat<'a> {
    pub comm: &'a [u8],
    pub state: u8,
    pub ppid: i64,
    pub utime: u64,
    pub stime: u64,
    pub num_threads: i64,
    pub starttime: u64,
    pub vsize: u64,
    pub rss_pages: i64,
}

/// Parses `/proc/PID/stat`. The comm sits between the first `(` and the
/// last `)` and may itself hold spaces and parentheses.
pub fn parse_pid_stat(buf: &[u8]) -> Option<PidStat<'_>> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    let comm = buf.get(open + 1..close)?;
    // After the comm come fields 3 (state) .. 52; we need 3..=24.
    let mut f = fields(buf.get(close + 1..)?);
    let mut v: [&[u8]; 22] = [b""; 22];
    for slot in v.iter_mut() {
        *slot = f.next()?;
    }
    let get = |field: usize| v.get(field - 3).copied();
    Some(PidStat {
        comm,
        state: *get(3)?.first()?,
        ppid: parse_i64(get(4)?)?,
        utime: parse_u64(get(14)?)?,
        stime: parse_u64(get(15)?)?,
        num_threads: parse_i64(get(20)?)?,
        starttime: parse_u64(get(22)?)?,
        vsize: parse_u64(get(23)?)?,
        rss_pages: parse_i64(get(24)?)?,
    })
}

/// One row of the process frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcRow {
    pub pid: u32,
    pub name: String,
    pub cpu_usage: f32,
    pub mem_bytes: u64,
}

/// Pids are the kernel's small integers, not chosen by an attacker: a
/// multiplicative hash (Fibonacci hashing) instead of SipHash, whose cost
/// per lookup showed in a 3 000-process scan.
#[derive(Default)]
struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PidMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<PidHasher>>;

struct PidEntry {
    file: Option<File>,
    ticks: u64,
    starttime: u64,
    seen: u64,
}

/// `/proc/loadavg` → its last field: the pid the kernel allocated last
/// (in the reading process's pid namespace).
pub fn parse_last_pid(buf: &[u8]) -> Option<u64> {
    fields(buf).nth(4).and_then(parse_u64)
}

/// When `/proc` was last listed: the re-probe epoch and the last pid then.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Listed {
    epoch: u64,
    last_pid: u64,
}

/// Owns the per-pid state between scans.
pub struct ProcScanner {
    dir: Option<KeptDir>,
    /// `/proc/loadavg`, kept while `/proc` is our pid namespace's.
    loadavg: Option<KeptFile>,
    /// Whether `/proc/self` is our pid (decided at the first scan).
    own_ns: Option<bool>,
    listed: Option<Listed>,
    /// `/proc` listings made (a benchmark's and a test's count).
    pub listings: u64,
    entries: PidMap<PidEntry>,
    generation: u64,
    last_total: Option<u64>,
    kept: usize,
    fd_budget: usize,
    page_size: u64,
    buf: Vec<u8>,
    pids: Vec<u32>,
    pub rows: Vec<ProcRow>,
}

impl ProcScanner {
    pub fn new(fd_budget: usize, page_size: u64) -> Self {
        ProcScanner {
            dir: None,
            loadavg: None,
            own_ns: None,
            listed: None,
            listings: 0,
            entries: PidMap::default(),
            generation: 0,
            last_total: None,
            kept: 0,
            fd_budget,
            page_size,
            buf: Vec::with_capacity(1024),
            pids: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// How many `/proc/PID/stat` files are kept open.
    pub fn kept_files(&self) -> usize {
        self.kept
    }

    /// The pid the kernel allocated last, when `root/proc` is our pid
    /// namespace's and its loadavg reads.
    fn last_pid(&mut self, root: &Root) -> Option<u64> {
        let own = *self.own_ns.get_or_insert_with(|| {
            std::fs::read_link(root.path("proc/self"))
                .is_ok_and(|l| l.as_os_str() == std::process::id().to_string().as_str())
        });
        if !own {
            return None;
        }
        let f = self
            .loadavg
            .get_or_insert_with(|| KeptFile::new(root, "proc/loadavg"));
        f.read(&mut self.buf).ok()?;
        parse_last_pid(&self.buf)
    }

    /// Lists `root/proc` into `self.pids` unless no pid may have come since
    /// the last listing (loadavg's last pid and the epoch as they were).
    fn list_if_moved(&mut self, root: &Root, epoch: u64) -> std::io::Result<()> {
        // read before listing: a pid made in between is listed now, and
        // makes the next scan list again
        let now = self
            .last_pid(root)
            .map(|last_pid| Listed { epoch, last_pid });
        if now.is_some() && now == self.listed {
            return Ok(());
        }
        let dir = self.dir.get_or_insert_with(|| KeptDir::new(root, "proc"));
        let pids = &mut self.pids;
        pids.clear();
        dir.for_each(|name| pids.extend(pid_of(name)))?;
        self.listings += 1;
        self.listed = now;
        Ok(())
    }

    /// Scans `root/proc`. `total_jiffies` is the aggregate `cpu` total of
    /// `/proc/stat` read just before; `epoch` the collector's re-probe
    /// epoch (a new one lists `/proc` whatever loadavg says). Fills
    /// `self.rows`. After warm-up a scan allocates nothing unless new pids
    /// appear.
    pub fn scan(&mut self, root: &Root, total_jiffies: u64, epoch: u64) -> std::io::Result<()> {
        self.generation += 1;
        let gen = self.generation;
        let window = self.last_total.map(|t| total_jiffies.saturating_sub(t));
        self.last_total = Some(total_jiffies);
        self.list_if_moved(root, epoch)?;
        let dir = self.dir.get_or_insert_with(|| KeptDir::new(root, "proc"));
        let dirfd = dir.file()?.as_raw_fd();
        let mut n = 0;
        let mut gone = false;
        let fds = &mut (self.kept, self.fd_budget);
        for &pid in &self.pids {
            // one lookup a pid: the entry is read, then updated in place
            let e = self.entries.entry(pid).or_insert(PidEntry {
                file: None,
                ticks: 0,
                starttime: u64::MAX,
                seen: gen,
            });
            e.seen = gen;
            if !read_entry(e, dirfd, pid, &mut self.buf, fds) {
                self.entries.remove(&pid);
                gone = true;
                continue;
            }
            let Some(st) = parse_pid_stat(&self.buf) else {
                continue;
            };
            let cpu = cpu_share(e, &st, window);
            let rss = u64::try_from(st.rss_pages.max(0))
                .unwrap_or(0)
                .saturating_mul(self.page_size);
            put_row(&mut self.rows, n, pid, st.comm, cpu, rss);
            n += 1;
        }
        self.kept = fds.0;
        self.rows.truncate(n);
        self.forget_gone(gen, gone);
        Ok(())
    }

    /// Forgets the pids this scan (`gen`) did not see, closing their files;
    /// with `gone` (a read failed), drops them from the pid list too.
    fn forget_gone(&mut self, gen: u64, gone: bool) {
        if gone {
            // the next scan may not list: it reads the pids still here
            let entries = &self.entries;
            self.pids.retain(|p| entries.contains_key(p));
        }
        let mut closed = 0;
        self.entries.retain(|_, e| {
            let keep = e.seen == gen;
            if !keep && e.file.is_some() {
                closed += 1;
            }
            keep
        });
        self.kept -= closed.min(self.kept);
    }
}

/// The share of all CPUs `st`'s process used in the `window` (jiffies)
/// since its last scan, 0-100; keeps its ticks in `e` for the next. A pid
/// new since the last scan (or reused) used all its ticks inside the window.
fn cpu_share(e: &mut PidEntry, st: &PidStat, window: Option<u64>) -> f32 {
    let ticks = st.utime.saturating_add(st.stime);
    let prev_ticks = match (e.ticks, e.starttime) {
        (t, s) if s == st.starttime && t <= ticks => t,
        _ => 0,
    };
    e.ticks = ticks;
    e.starttime = st.starttime;
    match window {
        Some(w) if w > 0 => {
            ((ticks - prev_ticks) as f64 / w as f64 * 100.0).clamp(0.0, 100.0) as f32
        }
        _ => 0.0,
    }
}

/// Row `n` of `rows` (grown by one when it is the next), reusing its name.
fn put_row(rows: &mut Vec<ProcRow>, n: usize, pid: u32, comm: &[u8], cpu: f32, rss: u64) {
    if rows.len() <= n {
        rows.push(ProcRow::default());
    }
    if let Some(row) = rows.get_mut(n) {
        row.pid = pid;
        row.name.clear();
        match std::str::from_utf8(comm) {
            Ok(s) => row.name.push_str(s),
            Err(_) => row.name.push_str(&String::from_utf8_lossy(comm)),
        }
        row.cpu_usage = cpu;
        row.mem_bytes = rss;
    }
}

/// Reads one pid's stat into `buf` through its entry's kept fd, or a new
/// open kept while `fds` (kept, budget) allows; false if the pid is gone.
fn read_entry(
    e: &mut PidEntry,
    dirfd: std::os::fd::RawFd,
    pid: u32,
    buf: &mut Vec<u8>,
    fds: &mut (usize, usize),
) -> bool {
    let mut reopened = false;
    loop {
        let ok = match &e.file {
            Some(f) => pread_all(f, buf).is_ok() && !buf.is_empty(),
            None => match open_stat(dirfd, pid) {
                Some(f) => {
                    let ok = pread_all(&f, buf).is_ok() && !buf.is_empty();
                    if ok && fds.0 < fds.1 {
                        e.file = Some(f);
                        fds.0 += 1;
                    }
                    ok
                }
                None => false,
            },
        };
        if ok {
            return true;
        }
        // A kept fd of an exited pid reads ESRCH; the pid may have been
        // reused by a new process, so reopen once.
        if e.file.take().is_none() {
            return false;
        }
        fds.0 = fds.0.saturating_sub(1);
        if reopened {
            return false;
        }
        reopened = true;
    }
}

/// `openat(dirfd, "PID/stat")` without building a path on the heap.
fn open_stat(dirfd: std::os::fd::RawFd, pid: u32) -> Option<File> {
    let mut digits = itoa::Buffer::new();
    let d = digits.format(pid).as_bytes();
    let mut path = [0u8; 24];
    let tail = b"/stat\0";
    let len = d.len() + tail.len();
    path.get_mut(..d.len())?.copy_from_slice(d);
    path.get_mut(d.len()..len)?.copy_from_slice(tail);
    super::fs::openat_c(dirfd, path.get(..len)?, 0).ok()
}

crate::families::declare! {
    pub PROCESSES = gauge("sockagent_processes", "Processes seen by the last process scan.");
    pub TOP_CPU = gauge("sockagent_top_process_cpu_percent", "Share of all CPUs used since the previous process scan, 0-100, by the top processes by CPU (SOCKAGENT_PROM_TOP_N).");
    pub TOP_RSS = gauge("sockagent_top_process_resident_memory_bytes", "Resident set size of the same top processes.");
}

/// Most CPU first, then most memory, then the lower pid.
fn by_cpu(a: &&ProcRow, b: &&ProcRow) -> std::cmp::Ordering {
    b.cpu_usage
        .total_cmp(&a.cpu_usage)
        .then(b.mem_bytes.cmp(&a.mem_bytes))
        .then(a.pid.cmp(&b.pid))
}

/// The process count (when `listed`) and the `n` heaviest processes by CPU.
pub fn describe(rows: &[ProcRow], listed: bool, n: usize, out: &mut dyn Sink) {
    if listed {
        PROCESSES.single(out, rows.len() as u64);
    }
    let top = super::top::top_by(rows, n, by_cpu);
    type Pick = fn(&ProcRow) -> Value;
    let families: [(Family, Pick); 2] = [
        (TOP_CPU, |r| Value::F32(r.cpu_usage)),
        (TOP_RSS, |r| Value::U(r.mem_bytes)),
    ];
    let mut pid = itoa::Buffer::new();
    for (family, pick) in families {
        family.open(out);
        for r in &top {
            out.sample(&[("name", &r.name), ("pid", pid.format(r.pid))], pick(r));
        }
    }
}

/// The process collector: the scan and when it last ran.
pub struct Processes {
    pub scanner: ProcScanner,
    pub at: Option<Instant>,
}

impl super::collector::Collector for Processes {
    const NAME: &'static str = "processes";
    /// `/proc` is listed again when loadavg's last pid moved, and at
    /// least this often whatever it says.
    const REPROBE: Option<std::time::Duration> = Some(std::time::Duration::from_secs(10));

    /// Scans every process; CPU shares are over the time since the previous scan.
    fn collect(&mut self, cx: &mut super::collector::Cx, now: Instant) -> Result<()> {
        let total = cx.stat_now()?.all.total;
        self.scanner
            .scan(&cx.s.root, total, cx.epoch)
            .map_err(CollectError::reading("/proc"))?;
        self.at = Some(now);
        cx.last_scan = Some((now, self.scanner.rows.len() as u64));
        Ok(())
    }

    fn taken(&self) -> Option<Instant> {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn hostile_comm_with_parens_and_spaces() {
        let buf = fixture("prometheus-procfs/proc/584/stat");
        let st = parse_pid_stat(&buf).unwrap();
        assert_eq!(st.comm, b"(a b ) ( c d) ");
    }

    #[test]
    fn fields_from_prometheus_fixture() {
        // 26231: "(vim) R 5392 ... 1677 44 ..." rss 1981 pages, vsize 56274944
        let buf = fixture("prometheus-procfs/proc/26231/stat");
        let st = parse_pid_stat(&buf).unwrap();
        assert_eq!(st.comm, b"vim");
        assert_eq!(st.state, b'R');
        assert_eq!(st.ppid, 5392);
        assert_eq!((st.utime, st.stime), (1677, 44));
        assert_eq!(st.vsize, 56274944);
        assert_eq!(st.rss_pages, 1981);
        assert_eq!(st.num_threads, 1);
        assert_eq!(st.starttime, 82375);
    }

    #[test]
    fn negative_fields_parse() {
        let buf = fixture("prometheus-procfs/proc/26232/stat");
        assert!(parse_pid_stat(&buf).is_some());
    }

    #[test]
    fn truncated_or_garbage_is_none() {
        assert!(parse_pid_stat(b"").is_none());
        assert!(parse_pid_stat(b"1 (x) R 1 2 3").is_none());
        assert!(parse_pid_stat(b"1 x R").is_none());
    }

    #[test]
    fn scan_fixture_tree_then_live_proc() {
        let root = Root::fixture("prometheus-procfs");
        let mut s = ProcScanner::new(16, 4096);
        s.scan(&root, 1000, 0).unwrap();
        let mut pids: Vec<u32> = s.rows.iter().map(|r| r.pid).collect();
        pids.sort();
        assert!(pids.contains(&584) && pids.contains(&26231), "{pids:?}");
        let vim = s.rows.iter().find(|r| r.pid == 26231).unwrap();
        assert_eq!(vim.mem_bytes, 1981 * 4096);
        assert_eq!(vim.name, "vim");
        // second scan, same ticks: 0% everywhere
        s.scan(&root, 2000, 0).unwrap();
        assert!(s.rows.iter().all(|r| r.cpu_usage == 0.0));

        let mut live = ProcScanner::new(4, 4096); // tiny budget: fallback path too
        live.scan(&Root::default(), 1, 0).unwrap();
        let me = std::process::id();
        assert!(live.rows.iter().any(|r| r.pid == me));
        live.scan(&Root::default(), 2, 0).unwrap();
        assert!(live.rows.iter().any(|r| r.pid == me));
    }

    #[test]
    fn last_pid_of_loadavg() {
        assert_eq!(parse_last_pid(b"0.52 1.50 2.00 1/95 4242\n"), Some(4242));
        assert_eq!(parse_last_pid(b"0.52 1.50 2.00 1/95"), None);
        assert_eq!(parse_last_pid(b"0.52 1.50 2.00 1/95 x"), None);
    }

    /// A `/proc` whose `self` is this process, so its loadavg is trusted.
    fn own_proc(s: &crate::scratch::Scratch, last_pid: u32, pids: &[u32]) {
        s.write("proc/loadavg", format!("0.00 0.00 0.00 1/9 {last_pid}\n"));
        for pid in pids {
            let stat =
                format!("{pid} (p{pid}) S 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 4096 10 0\n");
            s.write(&format!("proc/{pid}/stat"), stat);
        }
        let me = s.path().join("proc/self");
        if me.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(std::process::id().to_string(), me).unwrap();
        }
    }

    fn pids_of(s: &ProcScanner) -> Vec<u32> {
        let mut pids: Vec<u32> = s.rows.iter().map(|r| r.pid).collect();
        pids.sort_unstable();
        pids
    }

    #[test]
    fn proc_is_listed_again_only_when_a_pid_may_have_come() {
        let tree = crate::scratch::Scratch::new("proc_listed_again");
        let root = Root::new(tree.path());
        own_proc(&tree, 20, &[10, 20]);
        let mut s = ProcScanner::new(16, 4096);
        s.scan(&root, 100, 1).unwrap();
        assert_eq!((pids_of(&s), s.listings), (vec![10, 20], 1));
        // a pid dir appears, but loadavg's last pid stands still: the
        // kernel made no process, so /proc is not listed
        own_proc(&tree, 20, &[30]);
        s.scan(&root, 200, 1).unwrap();
        assert_eq!((pids_of(&s), s.listings), (vec![10, 20], 1));
        // the last pid moved: listed, the new pid is there
        own_proc(&tree, 30, &[]);
        s.scan(&root, 300, 1).unwrap();
        assert_eq!((pids_of(&s), s.listings), (vec![10, 20, 30], 2));
        s.scan(&root, 400, 1).unwrap();
        assert_eq!(s.listings, 2);
        // a new re-probe epoch lists whatever loadavg says
        own_proc(&tree, 30, &[40]);
        s.scan(&root, 500, 2).unwrap();
        assert_eq!((pids_of(&s), s.listings), (vec![10, 20, 30, 40], 3));
    }

    #[test]
    fn another_namespaces_proc_is_listed_every_scan() {
        // the fixture's proc/self is not this process: its loadavg speaks
        // of another pid namespace than the one the kernel reports
        let root = Root::fixture("prometheus-procfs");
        let mut s = ProcScanner::new(16, 4096);
        for t in 1..=3 {
            s.scan(&root, t * 100, 1).unwrap();
        }
        assert_eq!(s.listings, 3);
    }

    #[test]
    fn an_exited_process_is_gone_at_the_next_scan() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut s = ProcScanner::new(4096, 4096);
        s.scan(&Root::default(), 1, 1).unwrap();
        assert!(pids_of(&s).contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
        // listed again or not (other tests make threads meanwhile), its
        // kept stat reads as an error
        s.scan(&Root::default(), 2, 1).unwrap();
        assert!(!pids_of(&s).contains(&pid), "a reaped pid is gone");
    }

    #[test]
    fn open_stat_formats_the_pid() {
        let dir = std::fs::File::open("/proc").unwrap();
        use std::os::fd::AsRawFd;
        assert!(open_stat(dir.as_raw_fd(), std::process::id()).is_some());
        assert!(open_stat(dir.as_raw_fd(), u32::MAX).is_none());
        assert!(open_stat(dir.as_raw_fd(), 1).is_some());
    }
}
