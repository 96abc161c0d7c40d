//! sockagent against the reference socktop_agent 1.60.1, in one run on one
//! machine: both started with caches off and GPU off, the same requests
//! sent to both in alternating rounds. Prints agent CPU per request (from
//! /proc/PID/task/*/schedstat), p50/p99 round trip, peak RSS, private
//! memory, idle CPU and wakeups over 3 s with no client, stripped binary
//! size, and the ratio ours/reference of each.
//!
//! cargo install socktop_agent@1.60.1 --root /opt/socktop_ref   # needs libdrm-dev
//! SOCKTOP_REF=/opt/socktop_ref/bin/socktop_agent cargo bench --bench compare
//! SOCKAGENT_BIN=target/x86_64-unknown-linux-musl/release/sockagent cargo bench --bench compare
//! PACE_MS=20 cargo bench --bench compare   # paced: one request every 20 ms
//!
//! Paced mode sends each request on a 20 ms grid instead of back to back,
//! so every request finds the agent asleep, as a client at the guide's
//! cadence does: the wakeup, the syscalls of an idle process's first
//! request and the cold caches are in every figure. Beside the two agents,
//! two floors of each answer on this machine: a minimal server (one
//! blocking thread) and the same server on an epoll loop (mio, one thread:
//! the design of any agent that serves many sockets from one thread, ours
//! included). Each makes that answer's syscalls and nothing else, then
//! writes a frame as long as our agent's answer (metrics: `pread` of
//! /proc/stat, /proc/meminfo and /proc/net/dev, and `uname`; disks: `poll`
//! of the mount table and `statfs` of each filesystem; processes: listing
//! /proc and `pread` of each kept /proc/PID/stat, the kept-fd floor; the
//! smallest answer, an unknown request's error object: none). They say
//! how much of each figure no agent can save.
//! Each round measures both agents and both floors back to back, so the
//! median of the rounds' own ratios ("paired rounds") is steadier than
//! the ratio of two medians on a machine whose speed drifts.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

struct Agent {
    child: Child,
    ws: Option<WebSocket<TcpStream>>,
    cpu_per_req: Vec<Vec<f64>>,
    rtt: Vec<Vec<f64>>,
}

impl Agent {
    fn new(child: Child) -> Self {
        Agent {
            child,
            ws: None,
            cpu_per_req: vec![Vec::new(); 3],
            rtt: vec![Vec::new(); 3],
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const REQUESTS: [&str; 3] = ["get_metrics", "get_disks", "get_processes"];

#[path = "common/proc.rs"]
mod proc;
use proc::{cpu_ns, ctxt_switches, pct, status_kb, wait_listening};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &str, bin: &str, port: u16) -> Agent {
    let child = Command::new(bin)
        .args(["--port", &port.to_string()])
        .env("SOCKTOP_AGENT_METRICS_TTL_MS", "0")
        .env("SOCKTOP_AGENT_DISKS_TTL_MS", "0")
        .env("SOCKTOP_AGENT_PROCESSES_TTL_MS", "0")
        .env("SOCKTOP_AGENT_GPU", "0")
        // History off (the reference has none): its tick a second would
        // be in every CPU figure here; its own cost is measured by
        // benches/subscribers.rs.
        .env("SOCKAGENT_HISTORY", "0")
        .env("RUST_LOG", "warn")
        .env_remove("SOCKTOP_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{name} did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Agent::new(child)
}

fn connect(port: u16) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    tungstenite::client::client(format!("ws://127.0.0.1:{port}/ws"), s)
        .unwrap()
        .0
}

fn stripped_size(bin: &str) -> f64 {
    let tmp = std::env::temp_dir().join(format!("compare-strip-{}", std::process::id()));
    let _ = std::fs::copy(bin, &tmp);
    let _ = Command::new("strip").arg(&tmp).status();
    let n = std::fs::metadata(&tmp)
        .map(|m| m.len() as f64)
        .unwrap_or(0.0);
    let _ = std::fs::remove_file(&tmp);
    n
}

fn row(name: &str, ours: f64, theirs: f64, unit: &str) {
    let ratio = if theirs > 0.0 {
        format!("{:.3}", ours / theirs)
    } else {
        "-".into()
    };
    println!("| {name} | {ours:.1} {unit} | {theirs:.1} {unit} | {ratio} |");
}

/// What the smallest-answer rows send: not a request, so our agent answers
/// with its error object; the floor answers anything with a frame as long.
const SMALLEST: &str = "hello";

/// `per` requests `r` to `a`, one every `pace` (0: back to back): the
/// agent's CPU per request (µs) and each round trip (µs).
fn paced(a: &mut Agent, r: &str, per: usize, pace: Duration) -> (f64, Vec<f64>) {
    let pid = a.child.id();
    let ws = a.ws.as_mut().unwrap();
    let mut rtt = Vec::with_capacity(per);
    let c0 = cpu_ns(pid);
    let start = Instant::now();
    for k in 0..per {
        // paced: each request on its own grid point, the agent asleep
        if let Some(wait) = (start + pace * k as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        ws.send(Message::text(r)).unwrap();
        ws.read().unwrap();
        rtt.push(t.elapsed().as_secs_f64() * 1e6);
    }
    ((cpu_ns(pid) - c0) / per as f64 / 1e3, rtt)
}

/// How long each floor's answer to each request is: as long as our
/// agent's (measured in the warm-up), in `REQUESTS` order then the
/// smallest answer; the floors are started with them.
type Lengths = [usize; 4];

/// What a floor does for request text `r`: that answer's syscalls, and
/// which of `Lengths` its reply takes.
struct FloorWork {
    kept: ProcFloor,
    reads: ReadFloor,
}

impl FloorWork {
    fn new() -> Self {
        FloorWork {
            kept: ProcFloor::default(),
            reads: ReadFloor::new(),
        }
    }

    fn answer(&mut self, r: &[u8]) -> usize {
        match r {
            b"get_metrics" => self.reads.metrics(),
            b"get_disks" => self.reads.disks(),
            b"get_processes" => self.kept.scan(),
            _ => return 3,
        }
        REQUESTS.iter().position(|q| q.as_bytes() == r).unwrap_or(3)
    }
}

/// The floor's lengths from its command line (after the port).
fn lengths(args: impl Iterator<Item = String>) -> Lengths {
    let mut l = [FLOOR_REPLY; 4];
    for (slot, a) in l.iter_mut().zip(args) {
        *slot = a.parse().unwrap_or(FLOOR_REPLY);
    }
    l
}

/// The minimal server (`--floor-server PORT LENGTHS…`): one client,
/// blocking; each text frame is answered with that answer's syscalls and
/// one text frame as long as ours.
fn floor_server(port: u16, len: Lengths) -> ! {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let replies = len.map(|n| "x".repeat(n));
    loop {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let Ok(mut ws) = tungstenite::accept(s) else {
            continue;
        };
        let mut work = FloorWork::new();
        while let Ok(m) = ws.read() {
            let k = work.answer(m.to_text().unwrap_or_default().as_bytes());
            if m.is_text() && ws.send(Message::text(replies[k].as_str())).is_err() {
                break;
            }
        }
    }
}

/// A server-to-client text frame of `n` bytes of `x`, framed by
/// tungstenite (unmasked, as a server sends).
fn text_frame(n: usize) -> Vec<u8> {
    use tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
    let mut f = Vec::with_capacity(n + 10);
    Frame::message("x".repeat(n), OpCode::Data(Data::Text), true)
        .format(&mut f)
        .unwrap();
    f
}

/// The minimal event-driven server (`--epoll-floor PORT LENGTHS…`): the
/// blocking floor's work on the design every agent here has, one thread
/// waiting in `epoll_wait` (mio) for any of its sockets: per request
/// `epoll_wait`, one `read`, that answer's syscalls and one `write` of a
/// prebuilt frame as long as ours, and nothing else (a short read is
/// taken as drained, as our loop does).
fn epoll_floor(port: u16, len: Lengths) -> ! {
    use mio::{Events, Interest, Poll, Token};
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let replies = len.map(text_frame);
    let mut buf = vec![0u8; 4096];
    loop {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        // the handshake by tungstenite, blocking; the socket kept by a clone
        let kept = s.try_clone().unwrap();
        if tungstenite::accept(s).is_err() {
            continue;
        }
        kept.set_nonblocking(true).unwrap();
        let mut s = mio::net::TcpStream::from_std(kept);
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut s, Token(0), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(8);
        let mut work = FloorWork::new();
        'conn: loop {
            poll.poll(&mut events, None).unwrap();
            if events.is_empty() {
                continue;
            }
            let n = match s.read(&mut buf) {
                Ok(0) => break 'conn,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => break 'conn,
            };
            // one answer per whole client frame read (masked, short)
            let mut at = 0;
            while at + 6 <= n {
                let len = (buf[at + 1] & 0x7f) as usize;
                if len >= 126 || buf[at] & 0x0f != 1 || at + 6 + len > n {
                    break 'conn; // not a short text frame: a close, or not ours
                }
                let mask = [buf[at + 2], buf[at + 3], buf[at + 4], buf[at + 5]];
                let text = &mut buf[at + 6..at + 6 + len];
                for (i, b) in text.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
                let k = work.answer(text);
                at += 6 + len;
                if s.write_all(&replies[k]).is_err() {
                    break 'conn;
                }
            }
        }
    }
}

/// The processes floor: every `/proc/PID/stat` kept open and read again
/// with `pread` after listing `/proc`, nothing parsed or encoded (what
/// `benches/floor.rs` calls the kept-fd floor).
#[derive(Default)]
struct ProcFloor {
    files: std::collections::HashMap<u32, std::fs::File>,
    buf: Vec<u8>,
}

impl ProcFloor {
    fn scan(&mut self) {
        use std::os::unix::fs::FileExt;
        self.buf.resize(4096, 0);
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut seen = std::collections::HashSet::new();
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            seen.insert(pid);
            if let std::collections::hash_map::Entry::Vacant(v) = self.files.entry(pid) {
                match std::fs::File::open(format!("/proc/{pid}/stat")) {
                    Ok(f) => {
                        v.insert(f);
                    }
                    Err(_) => continue,
                }
            }
            if let Some(f) = self.files.get(&pid) {
                let _ = f.read_at(&mut self.buf, 0);
            }
        }
        self.files.retain(|pid, _| seen.contains(pid));
    }
}

/// The floors of the metrics and disks answers: the syscalls our agent
/// makes for each on a paced request (`strace -p`), on files kept open,
/// nothing parsed or encoded. Metrics: `pread` of `/proc/stat`,
/// `/proc/meminfo` and `/proc/net/dev`, and `uname` (the host name).
/// Disks: `poll` of `/proc/self/mountinfo` for a change, and `statfs` of
/// every filesystem the agent lists, found at start by the agent's own
/// mount-table parser (`collect::disks::parse_mountinfo`).
struct ReadFloor {
    files: Vec<std::fs::File>,
    mountinfo: std::fs::File,
    mounts: Vec<std::ffi::CString>,
    buf: Vec<u8>,
}

impl ReadFloor {
    fn new() -> Self {
        let open = |p: &str| std::fs::File::open(p).unwrap();
        let table = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
        let mounts = sockagent::collect::disks::parse_mountinfo(&table)
            .into_iter()
            .filter_map(|m| std::ffi::CString::new(m.mount_point).ok())
            .collect();
        ReadFloor {
            files: ["/proc/stat", "/proc/meminfo", "/proc/net/dev"]
                .map(open)
                .into(),
            mountinfo: open("/proc/self/mountinfo"),
            mounts,
            buf: vec![0; 16 << 10],
        }
    }

    fn metrics(&mut self) {
        use std::os::unix::fs::FileExt;
        for f in &self.files {
            let _ = f.read_at(&mut self.buf, 0);
        }
        // SAFETY: an all-zero utsname is valid, and uname fills it.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out-pointer.
        unsafe { libc::uname(&mut u) };
    }

    fn disks(&mut self) {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: self.mountinfo.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) };
        for m in &self.mounts {
            // SAFETY: an all-zero statfs is valid, and statfs fills it.
            let mut st: libc::statfs = unsafe { std::mem::zeroed() };
            // SAFETY: a NUL-terminated path and a valid out-pointer.
            unsafe { libc::statfs(m.as_ptr(), &mut st) };
        }
    }
}

/// A floor's answer length where its command line gives none: about our
/// error object's.
const FLOOR_REPLY: usize = 160;

fn start_floor(kind: &str, len: &Lengths) -> Agent {
    let port = free_port();
    let mut args = vec![kind.to_string(), port.to_string()];
    args.extend(len.iter().map(|n| n.to_string()));
    let child = Command::new(std::env::current_exe().unwrap())
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // it serves one client at a time: its listener, not a connection
    wait_listening(port, "floor");
    let mut a = Agent::new(child);
    a.ws = Some(connect(port));
    a
}

/// The length of `a`'s answer to `r` (sent once, not measured).
fn answer_len(a: &mut Agent, r: &str) -> usize {
    let ws = a.ws.as_mut().unwrap();
    ws.send(Message::text(r)).unwrap();
    ws.read().unwrap().len()
}

/// The median of the rounds' own ratios `a[k] / b[k]`, and its extremes.
fn paired(a: &[f64], b: &[f64]) -> [f64; 3] {
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, d)| **d > 0.0)
        .map(|(n, d)| n / d)
        .collect();
    [pct(&r, 0.5), pct(&r, 0.0), pct(&r, 1.0)]
}

// Who takes part, in this order: our agent, the reference, the blocking
// floor, the epoll floor.
const OURS: usize = 0;
const REF: usize = 1;
const FLOOR: usize = 2;
const EPOLL: usize = 3;

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next();
    if let Some(k @ ("--floor-server" | "--epoll-floor")) = kind.as_deref() {
        let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let len = lengths(args);
        match k {
            "--floor-server" => floor_server(port, len),
            _ => epoll_floor(port, len),
        }
    }
    // SOCKAGENT_BIN: another build of ours (the static musl one, say).
    let ours_bin = std::env::var("SOCKAGENT_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sockagent").to_string());
    let ref_bin = std::env::var("SOCKTOP_REF")
        .unwrap_or_else(|_| "/opt/socktop_ref/bin/socktop_agent".into());
    if !std::path::Path::new(&ref_bin).exists() {
        eprintln!("reference agent not found at {ref_bin}: cargo install socktop_agent@1.60.1 --root /opt/socktop_ref (needs libdrm-dev), or set SOCKTOP_REF");
        std::process::exit(2);
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let per: usize = std::env::var("PER_ROUND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let pace = Duration::from_millis(
        std::env::var("PACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let (p1, p2) = (free_port(), free_port());
    let mut agents = vec![
        start("sockagent", &ours_bin, p1),
        start("socktop_agent", &ref_bin, p2),
    ];
    let ports = [p1, p2];
    // Idle: started, settled, no client for 3 s.
    std::thread::sleep(Duration::from_millis(1000));
    let idle0: Vec<(f64, f64)> = agents
        .iter()
        .map(|a| (cpu_ns(a.child.id()), ctxt_switches(a.child.id())))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let idle: Vec<(f64, f64)> = agents
        .iter()
        .zip(&idle0)
        .map(|(a, (c, w))| (cpu_ns(a.child.id()) - c, ctxt_switches(a.child.id()) - w))
        .collect();
    for (a, p) in agents.iter_mut().zip(ports) {
        a.ws = Some(connect(p));
    }
    // Warm-up: the first answers set baselines in both, and ours give the
    // floors the length of each answer.
    let mut len: Lengths = [0; 4];
    for (ri, r) in REQUESTS.iter().chain([&SMALLEST]).enumerate() {
        len[ri] = answer_len(&mut agents[OURS], r);
        // the reference has no smallest answer: it ignores text that is
        // not a request
        if ri < REQUESTS.len() {
            answer_len(&mut agents[REF], r);
        }
    }
    // The floors of one request on this machine, measured in the same
    // rounds as both agents. The minimal WebSocket server (one blocking
    // thread): read a frame, make that answer's syscalls (none for the
    // smallest answer), write a frame as long as ours. Paced, this is the
    // wakeup, the syscalls and one read and one write: no agent answers
    // for less. Beside it the same server on an epoll loop, the design of
    // any agent that serves many sockets from one thread: the floor of
    // ours.
    agents.push(start_floor("--floor-server", &len));
    agents.push(start_floor("--epoll-floor", &len));
    for a in agents[FLOOR..].iter_mut() {
        for r in REQUESTS.iter().chain([&SMALLEST]) {
            paced(a, r, 5, Duration::ZERO);
        }
    }
    paced(&mut agents[OURS], SMALLEST, 5, Duration::ZERO);
    // Each round measures everyone on each request, in an order that
    // rotates, so each round's ratios are paired: a slow phase of the
    // machine (this VM moves ±40% within minutes) hits them all.
    let mut smallest: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds {
        for (ri, r) in REQUESTS.iter().enumerate() {
            for k in 0..agents.len() {
                let a = &mut agents[(round + k) % 4];
                let (cpu, rtt) = paced(a, r, per, pace);
                a.cpu_per_req[ri].push(cpu);
                a.rtt[ri].extend(rtt);
            }
        }
        // the smallest answer, without the reference
        for k in 0..3 {
            let i = [OURS, FLOOR, EPOLL][(round + k) % 3];
            smallest[i].push(paced(&mut agents[i], SMALLEST, per, pace).0);
        }
    }
    report(
        &agents,
        &smallest,
        &idle,
        [&ours_bin, &ref_bin],
        rounds,
        per,
        pace,
    );
}

fn report(
    agents: &[Agent],
    smallest: &[Vec<f64>; 4],
    idle: &[(f64, f64)],
    bins: [&str; 2],
    rounds: usize,
    per: usize,
    pace: Duration,
) {
    let (ours, theirs) = (&agents[OURS], &agents[REF]);
    let date = Command::new("date")
        .arg("-u")
        .arg("+%F %R UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let nproc = std::fs::read_dir("/proc")
        .map(|r| {
            r.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0);
    let mode = if pace.is_zero() {
        "back to back".to_string()
    } else {
        format!("paced, one request every {} ms", pace.as_millis())
    };
    println!("compare: {date}, {rounds} rounds x {per} requests ({mode}), caches off, GPU off, {nproc} processes, {} CPUs", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!();
    println!("| measure | sockagent | socktop_agent 1.60.1 | ratio |");
    println!("| --- | --- | --- | --- |");
    for (ri, r) in REQUESTS.iter().enumerate() {
        row(
            &format!("CPU per `{r}` (median of rounds)"),
            pct(&ours.cpu_per_req[ri], 0.5),
            pct(&theirs.cpu_per_req[ri], 0.5),
            "µs",
        );
    }
    // Paired: the median of the rounds' own ratios is the steadier figure.
    println!();
    println!("| paired rounds | median of each round's ratio | lowest | highest |");
    println!("| --- | --- | --- | --- |");
    let line = |what: &str, [m, lo, hi]: [f64; 3]| {
        println!("| {what} | {m:.3} | {lo:.3} | {hi:.3} |");
    };
    for (ri, r) in REQUESTS.iter().enumerate() {
        let cpu = |i: usize| &agents[i].cpu_per_req[ri];
        line(
            &format!("CPU per `{r}`, ours / the reference's"),
            paired(cpu(OURS), cpu(REF)),
        );
        line(
            &format!("`{r}`'s floor (blocking) / the reference's"),
            paired(cpu(FLOOR), cpu(REF)),
        );
        line(
            &format!("`{r}`'s epoll floor / the reference's"),
            paired(cpu(EPOLL), cpu(REF)),
        );
        line(
            &format!("CPU per `{r}`, ours / its epoll floor"),
            paired(cpu(OURS), cpu(EPOLL)),
        );
    }
    line(
        "CPU per smallest answer, ours / the blocking floor",
        paired(&smallest[OURS], &smallest[FLOOR]),
    );
    line(
        "CPU per smallest answer, ours / the epoll floor",
        paired(&smallest[OURS], &smallest[EPOLL]),
    );
    println!();
    println!("| the floor of one request (median of rounds) | sockagent | blocking floor | epoll floor |");
    println!("| --- | --- | --- | --- |");
    let what = [
        "`get_metrics` (floors: pread /proc/stat, /proc/meminfo, /proc/net/dev; uname)",
        "`get_disks` (floors: poll mountinfo; statfs each filesystem it lists)",
        "`get_processes` (floors: list /proc, pread each kept stat)",
    ];
    for (ri, w) in what.iter().enumerate() {
        let cpu = |i: usize| pct(&agents[i].cpu_per_req[ri], 0.5);
        println!(
            "| CPU per {w} | {:.1} µs | {:.1} µs | {:.1} µs |",
            cpu(OURS),
            cpu(FLOOR),
            cpu(EPOLL)
        );
    }
    println!(
        "| CPU per smallest answer (an unknown request's error object) | {:.1} µs | {:.1} µs | {:.1} µs |",
        pct(&smallest[OURS], 0.5),
        pct(&smallest[FLOOR], 0.5),
        pct(&smallest[EPOLL], 0.5)
    );
    println!();
    println!("| measure | sockagent | socktop_agent 1.60.1 | ratio |");
    println!("| --- | --- | --- | --- |");
    for (ri, r) in REQUESTS.iter().enumerate() {
        row(
            &format!("`{r}` round trip p50"),
            pct(&ours.rtt[ri], 0.5),
            pct(&theirs.rtt[ri], 0.5),
            "µs",
        );
        row(
            &format!("`{r}` round trip p99"),
            pct(&ours.rtt[ri], 0.99),
            pct(&theirs.rtt[ri], 0.99),
            "µs",
        );
    }
    let (po, pt) = (ours.child.id(), theirs.child.id());
    row(
        "peak RSS (VmHWM)",
        status_kb(po, "VmHWM:"),
        status_kb(pt, "VmHWM:"),
        "KiB",
    );
    row(
        "private memory (RssAnon)",
        status_kb(po, "RssAnon:"),
        status_kb(pt, "RssAnon:"),
        "KiB",
    );
    row(
        "idle CPU over 3 s, no client (history off)",
        idle[0].0 / 1e3,
        idle[1].0 / 1e3,
        "µs",
    );
    row(
        "idle context switches over 3 s (history off)",
        idle[0].1,
        idle[1].1,
        "",
    );
    row(
        "stripped binary",
        stripped_size(bins[0]) / 1024.0,
        stripped_size(bins[1]) / 1024.0,
        "KiB",
    );
}
