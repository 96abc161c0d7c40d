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
//! request and the cold caches are in every figure. Beside them, the floor
//! of one request on the machine: a minimal server (one blocking thread
//! that reads a frame and writes one as long as our error answer) against
//! our smallest answer, paced the same way; the same server on an epoll
//! loop (mio, one thread, our three syscalls a request), the floor of an
//! agent of our design; and each answer's own floor: the blocking server
//! making that answer's syscalls and nothing else (metrics: `pread` of
//! /proc/stat, /proc/meminfo and /proc/net/dev, and `uname`; disks: `poll`
//! of the mount table and `statfs` of each filesystem; processes: listing
//! /proc and `pread` of each kept /proc/PID/stat, the kept-fd floor).
//! They say how much of each figure no agent can save.
//! Each round measures both agents back to back, so the median of the
//! rounds' own ratios ("paired rounds") is steadier than the ratio of
//! the two medians on a machine whose speed drifts.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

struct Agent {
    child: Child,
    port: u16,
    ws: Option<WebSocket<TcpStream>>,
    cpu_per_req: Vec<Vec<f64>>,
    rtt: Vec<Vec<f64>>,
}

impl Agent {
    fn new(child: Child, port: u16) -> Self {
        Agent {
            child,
            port,
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
    Agent::new(child, port)
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

/// The minimal server (`--floor-server PORT`): one client, blocking; each
/// text frame is answered with one text frame of `FLOOR_REPLY` bytes.
fn floor_server(port: u16) -> ! {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    loop {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let Ok(mut ws) = tungstenite::accept(s) else {
            continue;
        };
        let reply = "x".repeat(FLOOR_REPLY);
        let mut kept = ProcFloor::default();
        let mut reads = ReadFloor::new();
        while let Ok(m) = ws.read() {
            match m.to_text().unwrap_or_default() {
                "get_processes" => kept.scan(),
                "get_metrics" => reads.metrics(),
                "get_disks" => reads.disks(),
                _ => {}
            }
            if m.is_text() && ws.send(Message::text(reply.as_str())).is_err() {
                break;
            }
        }
    }
}

/// The minimal event-driven server (`--epoll-floor PORT`): the blocking
/// floor's work on the design every agent here has, one thread waiting in
/// `epoll_wait` (mio) for any of its sockets: per request `epoll_wait`,
/// one `read`, one `write` of a prebuilt frame of `FLOOR_REPLY` bytes, and
/// nothing else (a short read is taken as drained, as our loop does).
fn epoll_floor(port: u16) -> ! {
    use mio::{Events, Interest, Poll, Token};
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut reply = vec![0x81, 126, (FLOOR_REPLY >> 8) as u8, FLOOR_REPLY as u8];
    reply.resize(4 + FLOOR_REPLY, b'x');
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
                if len >= 126 || buf[at] & 0x0f != 1 {
                    break 'conn; // not a short text frame: a close, or not ours
                }
                at += 6 + len;
                if s.write_all(&reply).is_err() {
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

/// Bytes of the floor's answer: about our error object's.
const FLOOR_REPLY: usize = 160;

fn start_floor(kind: &str) -> Agent {
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([kind, &port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // it serves one client at a time: its listener, not a connection
    wait_listening(port, "floor");
    Agent::new(child, port)
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--floor-server") => {
            floor_server(args.next().and_then(|p| p.parse().ok()).unwrap_or(0))
        }
        Some("--epoll-floor") => epoll_floor(args.next().and_then(|p| p.parse().ok()).unwrap_or(0)),
        _ => {}
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
    let mut agents = [
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
    // Warm-up: the first answers set baselines in both.
    for a in agents.iter_mut() {
        for r in REQUESTS {
            let ws = a.ws.as_mut().unwrap();
            ws.send(Message::text(r)).unwrap();
            ws.read().unwrap();
        }
    }
    for round in 0..rounds {
        for (ri, r) in REQUESTS.iter().enumerate() {
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for &i in &order {
                let a = &mut agents[i];
                let (cpu, rtt) = paced(a, r, per, pace);
                a.cpu_per_req[ri].push(cpu);
                a.rtt[ri].extend(rtt);
            }
        }
    }
    // The floor of one request on this machine: a minimal WebSocket server
    // (one blocking thread: read a frame, write a frame of the size of our
    // error answer) against our agent's smallest answer (an unknown
    // request's error object), in rotating rounds. Paced, this is the
    // wakeup, one read and one write: no agent answers for less. Beside
    // it the same server on an epoll loop, the design of any agent that
    // serves many sockets from one thread: its wakeup is the floor of ours.
    let mut floor = start_floor("--floor-server");
    floor.ws = Some(connect(floor.port));
    let mut epoll = start_floor("--epoll-floor");
    epoll.ws = Some(connect(epoll.port));
    let mut small = [&mut agents[0], &mut floor, &mut epoll];
    let mut smallest: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    // each request's own floor (the blocking server doing its syscalls),
    // in REQUESTS order
    let mut req_floor: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..2 {
        for a in small.iter_mut() {
            paced(a, SMALLEST, 5, Duration::ZERO);
        }
        for r in REQUESTS {
            paced(small[1], r, 5, Duration::ZERO);
        }
    }
    for round in 0..rounds {
        for k in 0..3 {
            let i = (round + k) % 3;
            smallest[i].push(paced(small[i], SMALLEST, per, pace).0);
        }
        for (ri, r) in REQUESTS.iter().enumerate() {
            req_floor[ri].push(paced(small[1], r, per, pace).0);
        }
    }
    let (ours, theirs) = (&agents[0], &agents[1]);
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
    // Paired: each round measured ours and the reference back to back, so
    // a slow phase of the machine (this VM moves ±40% within minutes) hits
    // both; the median of the rounds' own ratios is the steadier figure.
    println!();
    println!("| paired rounds | median of each round's ratio | lowest | highest |");
    println!("| --- | --- | --- | --- |");
    for (ri, r) in REQUESTS.iter().enumerate() {
        let ratios: Vec<f64> = ours.cpu_per_req[ri]
            .iter()
            .zip(&theirs.cpu_per_req[ri])
            .filter(|(_, t)| **t > 0.0)
            .map(|(o, t)| o / t)
            .collect();
        println!(
            "| CPU per `{r}`, ours / the reference's | {:.3} | {:.3} | {:.3} |",
            pct(&ratios, 0.5),
            pct(&ratios, 0.0),
            pct(&ratios, 1.0)
        );
    }
    println!();
    println!("| the floor of one request | sockagent | minimal server | ratio |");
    println!("| --- | --- | --- | --- |");
    row(
        "CPU per smallest answer (an unknown request's error object)",
        pct(&smallest[0], 0.5),
        pct(&smallest[1], 0.5),
        "µs",
    );
    row(
        "CPU per smallest answer, against the minimal epoll server",
        pct(&smallest[0], 0.5),
        pct(&smallest[2], 0.5),
        "µs",
    );
    for (ri, what) in [
        "its floor (pread /proc/stat, /proc/meminfo, /proc/net/dev; uname)",
        "its floor (poll mountinfo; statfs each filesystem it lists)",
        "the kept-fd floor (list /proc, pread each kept stat)",
    ]
    .iter()
    .enumerate()
    {
        row(
            &format!("CPU per `{}`, against {what}", REQUESTS[ri]),
            pct(&ours.cpu_per_req[ri], 0.5),
            pct(&req_floor[ri], 0.5),
            "µs",
        );
    }
    // Each request's epoll floor: its floor with the blocking wakeup
    // traded for the epoll one.
    let (floor_us, epoll_us) = (pct(&smallest[1], 0.5), pct(&smallest[2], 0.5));
    for (ri, r) in REQUESTS.iter().enumerate() {
        let theirs = pct(&theirs.cpu_per_req[ri], 0.5);
        let floor = pct(&req_floor[ri], 0.5);
        println!(
            "| `{r}`: its floor is {:.3}x the reference's CPU per request, its epoll floor {:.3}x | | | |",
            floor / theirs,
            (floor - floor_us + epoll_us) / theirs
        );
    }
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
        stripped_size(&ours_bin) / 1024.0,
        stripped_size(&ref_bin) / 1024.0,
        "KiB",
    );
}
