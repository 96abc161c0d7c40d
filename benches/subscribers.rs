//! Pushed streams against polling (issue 18, item 5), in one run on one
//! machine: N WebSocket clients (default 1 000) driven by one thread with
//! mio, in phases one after the other:
//!
//! 1. idle: sockagent started fresh with its default history and no client,
//!    beside one with `--history 0`, both for `--idle-seconds`: CPU per hour
//!    and context switches per second, then `sockagent_history_bytes` and
//!    `sockagent_history_samples` from `/metrics`; beside them, two floors:
//!    this bench re-run as a process that only wakes once a second, and as
//!    one that also reads the files a history tick reads (`idle_floor`);
//! 2. push: sockagent, every client sends `{"type":"subscribe","metrics_ms":1000}`
//!    once and then only reads; the delay of each pushed frame is the
//!    client's receive time (epoch ms) minus its `sampled_at_ms`, and per tick
//!    (one `sampled_at_ms`) the largest over the clients is the "delay to the
//!    last subscriber's frame";
//! 3. floor (unless `--no-floor`): this bench re-run as the least a server
//!    can do, one shared frame of the same size written to the N sockets
//!    each second, its CPU measured the same way;
//! 4. poll: the reference socktop_agent 1.60.1 with its default caches, each
//!    client sending `get_metrics` once a second (spread evenly over the
//!    second, one request in flight per client);
//! 5. with `--ours-polled`, sockagent polled the same way.
//!
//! Agent CPU is summed over its threads from `/proc/PID/task/*/schedstat`
//! (ns; utime+stime from `/proc/PID/stat` beside it) over the measured
//! window, after a warm-up of `--warmup` seconds (5). GPU probing is off in
//! both agents (`SOCKTOP_AGENT_GPU=0`), as in `compare.rs`.
//!
//! cargo build --release
//! cargo bench --bench subscribers -- --bin target/release/sockagent
//!   [--clients 1000] [--seconds 60] [--idle-seconds 60] [--ref PATH]
//!   [--idle-only]

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

struct Opts {
    bin: String,
    reference: String,
    clients: usize,
    seconds: u64,
    idle_seconds: u64,
    warmup: u64,
    floor: bool,
    reference_phase: bool,
    ours_polled: bool,
    /// the agents on CPU 0, this bench on CPU 1
    pin: bool,
}

#[path = "common/proc.rs"]
mod proc;
use proc::{cpu_ns, ctxt_switches, pct, status_kb, wait_listening};

fn opts() -> Opts {
    let mut o = Opts {
        bin: "target/release/sockagent".into(),
        reference: std::env::var("SOCKTOP_REF")
            .unwrap_or_else(|_| "/opt/socktop_ref/bin/socktop_agent".into()),
        clients: 1000,
        seconds: 60,
        idle_seconds: 60,
        warmup: 5,
        floor: true,
        reference_phase: true,
        ours_polled: false,
        pin: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        let num = |name: &str, v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
        };
        match a.as_str() {
            "--bin" => o.bin = val("--bin"),
            "--ref" => o.reference = val("--ref"),
            "--clients" => o.clients = num("--clients", val("--clients")) as usize,
            "--seconds" => o.seconds = num("--seconds", val("--seconds")),
            "--idle-seconds" => o.idle_seconds = num("--idle-seconds", val("--idle-seconds")),
            "--warmup" => o.warmup = num("--warmup", val("--warmup")),
            "--no-floor" => o.floor = false,
            // profiling the push phase alone (no summary table)
            "--no-reference" => o.reference_phase = false,
            "--ours-polled" => o.ours_polled = true,
            // the idle phase alone
            "--idle-only" => o.clients = 0,
            "--pin" => o.pin = true,
            // cargo bench passes --bench to harness = false benches
            "--bench" => {}
            _ => panic!("unknown argument {a}"),
        }
    }
    o
}

// ---- the measured process ----

struct Agent {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Pins `pid` (0: this thread) to `cpu`.
fn pin(pid: u32, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(pid as libc::pid_t, std::mem::size_of_val(&set), &set) != 0 {
            eprintln!("cannot pin {pid} to CPU {cpu}");
        }
    }
}

static PIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn pin_agent(pid: u32) {
    if PIN.load(std::sync::atomic::Ordering::Relaxed) {
        pin(pid, 0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &'static str, bin: &str, args: &[&str]) -> Option<Agent> {
    let port = free_port();
    let mut child = Command::new(bin)
        .args(["--port", &port.to_string()])
        .args(args)
        .env("SOCKTOP_AGENT_GPU", "0")
        .env("RUST_LOG", "warn")
        .env_remove("SOCKTOP_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    pin_agent(child.id());
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            eprintln!("{name} ({bin} {args:?}) exited: {st}");
            return None;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{name} did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Agent { name, child, port })
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of `pid` (all its threads), in ms.
fn utime_stime_ms(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name, which is in parentheses
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks * 1000.0 / clk_tck()
}

/// Idle time of the whole machine (idle + iowait), in ms. With a tickless
/// kernel it is measured, not sampled, where the busy columns are sampled
/// at ticks and miss tasks that run briefly between them; so busy time is
/// the wall time of every CPU less this.
fn machine_idle_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    (f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0)) * 1000.0 / clk_tck()
}

fn ncpu() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as f64
}

/// utime+stime (ms) and name of every process on the machine, kernel
/// threads included (ksoftirqd takes over the loopback's receive work
/// when a burst is long).
fn all_processes() -> HashMap<u32, (String, f64)> {
    let mut m = HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let name = s
                .split_once('(')
                .and_then(|(_, r)| r.rsplit_once(')'))
                .map(|(n, _)| n.to_string())
                .unwrap_or_default();
            m.insert(pid, (name, utime_stime_ms(&pid.to_string())));
        }
    }
    m
}

/// A snapshot of everything a window is measured by.
#[derive(Clone)]
struct Snap {
    pid: u32,
    at: Instant,
    agent_ns: f64,
    agent_ticks_ms: f64,
    agent_ctx: f64,
    bench_ms: f64,
    idle_ms: f64,
    procs: HashMap<u32, (String, f64)>,
}

fn snap(pid: u32) -> Snap {
    Snap {
        pid,
        at: Instant::now(),
        agent_ns: cpu_ns(pid),
        agent_ticks_ms: utime_stime_ms(&pid.to_string()),
        agent_ctx: ctxt_switches(pid),
        bench_ms: utime_stime_ms("self"),
        idle_ms: machine_idle_ms(),
        procs: all_processes(),
    }
}

struct Window {
    secs: f64,
    agent_ms_s: f64,
    agent_ticks_ms_s: f64,
    agent_ctx_s: f64,
    bench_ms_s: f64,
    other_ms_s: f64,
    /// the busiest other processes: name, ms/s
    others: Vec<(String, f64)>,
}

fn window(a: &Snap, b: &Snap) -> Window {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    let agent_ms = (b.agent_ns - a.agent_ns) / 1e6;
    let bench_ms = b.bench_ms - a.bench_ms;
    Window {
        secs,
        agent_ms_s: agent_ms / secs,
        agent_ticks_ms_s: (b.agent_ticks_ms - a.agent_ticks_ms) / secs,
        agent_ctx_s: (b.agent_ctx - a.agent_ctx) / secs,
        bench_ms_s: bench_ms / secs,
        other_ms_s: (secs * 1e3 * ncpu() - (b.idle_ms - a.idle_ms) - agent_ms - bench_ms).max(0.0)
            / secs,
        others: {
            let me = std::process::id();
            let mut v: Vec<(String, f64)> = b
                .procs
                .iter()
                .filter(|(pid, _)| **pid != me && **pid != a.pid)
                .filter_map(|(pid, (name, ms))| {
                    let d = ms - a.procs.get(pid).map(|p| p.1).unwrap_or(0.0);
                    (d > 0.0).then(|| (format!("{name}[{pid}]"), d / secs))
                })
                .collect();
            v.sort_by(|x, y| y.1.total_cmp(&x.1));
            v.truncate(3);
            v
        },
    }
}

// ---- the clients ----

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1e3
}

fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer; then a valid rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn ws_config() -> WebSocketConfig {
    // small buffers: many connections, small frames; write eagerly
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

/// N connected clients, registered edge-triggered with one poll.
struct Clients {
    poll: Poll,
    ws: Vec<WebSocket<TcpStream>>,
    open: Vec<bool>,
}

fn connect_all(port: u16, n: usize) -> Clients {
    let poll = Poll::new().unwrap();
    let mut ws = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
        s.set_nodelay(true).unwrap();
        let (w, _) = tungstenite::client::client_with_config(
            format!("ws://127.0.0.1:{port}/ws"),
            s,
            Some(ws_config()),
        )
        .unwrap_or_else(|e| panic!("client {i}: handshake: {e}"));
        w.get_ref().set_nonblocking(true).unwrap();
        poll.registry()
            .register(
                &mut SourceFd(&w.get_ref().as_raw_fd()),
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap();
        ws.push(w);
    }
    Clients {
        poll,
        ws,
        open: vec![true; n],
    }
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

impl Clients {
    /// Queues `text` on client `i` and writes what the socket takes.
    fn send(&mut self, i: usize, text: &str) {
        match self.ws[i].send(Message::text(text)) {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => {
                eprintln!("client {i}: send: {e}");
                self.open[i] = false;
            }
        }
    }

    /// Waits up to `timeout` and hands every whole frame read to `f(client,
    /// bytes)`. Reads each ready socket until it would block (edge-triggered).
    fn turn(&mut self, events: &mut Events, timeout: Duration, mut f: impl FnMut(usize, &[u8])) {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(e) => panic!("poll: {e}"),
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if !self.open[i] {
                continue;
            }
            let ws = &mut self.ws[i];
            if ev.is_writable() {
                let _ = ws.flush();
            }
            loop {
                match ws.read() {
                    Ok(Message::Text(t)) => f(i, t.as_bytes()),
                    Ok(Message::Binary(b)) => f(i, &b),
                    Ok(_) => {}
                    Err(e) if would_block(&e) => break,
                    Err(e) => {
                        eprintln!("client {i}: read: {e}");
                        self.open[i] = false;
                        break;
                    }
                }
            }
        }
    }

    fn open_count(&self) -> usize {
        self.open.iter().filter(|&&o| o).count()
    }
}

/// The `sampled_at_ms` of a metrics frame, by substring: first where it was
/// in the last frame (`hint`, give or take 64 bytes), then anywhere, so the
/// client does not compare its way through every frame.
fn sampled_at(frame: &[u8], hint: &mut usize) -> Option<u64> {
    const KEY: &[u8] = b"\"sampled_at_ms\":";
    let find = |from: usize, to: usize| {
        let to = to.min(frame.len());
        (from < to)
            .then(|| frame[from..to].windows(KEY.len()).position(|w| w == KEY))
            .flatten()
            .map(|p| p + from)
    };
    let at =
        find(hint.saturating_sub(64), *hint + KEY.len() + 64).or_else(|| find(0, frame.len()))?;
    *hint = at;
    let mut v: u64 = 0;
    let mut n = 0;
    for &d in frame[at + KEY.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
    {
        v = v * 10 + u64::from(d - b'0');
        n += 1;
    }
    (n > 0).then_some(v)
}

#[derive(Clone, Copy)]
struct Tick {
    count: u32,
    first: f64,
    last: f64,
}

struct PushResult {
    w: Window,
    ticks: Vec<Tick>,
    frames_s: f64,
    frame_bytes: usize,
    short_ticks: usize,
    open: usize,
    rss_kb: f64,
    hwm_kb: f64,
    anon_kb: f64,
}

/// Clients that (optionally) send `hello` once, then only read frames
/// carrying `sampled_at_ms`.
fn push_phase(agent: &Agent, n: usize, hello: Option<&str>, o: &Opts) -> PushResult {
    let mut c = connect_all(agent.port, n);
    if let Some(h) = hello {
        for i in 0..n {
            c.send(i, h);
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut ticks: HashMap<u64, Tick> = HashMap::new();
    let mut frame_bytes = 0;
    let mut hint = 0;
    let t0 = Instant::now();
    let warm = t0 + Duration::from_secs(o.warmup);
    let mut measuring_from = f64::INFINITY; // epoch ms of the window's start
    let mut measuring_to = f64::INFINITY;
    let mut a = None;
    let mut b = None;
    let end = warm + Duration::from_secs(o.seconds);
    // after the window, 2 s more to collect the frames of its last ticks
    let drain = end + Duration::from_secs(2);
    loop {
        let now = Instant::now();
        if a.is_none() && now >= warm {
            a = Some(snap(agent.pid()));
            measuring_from = epoch_ms();
        }
        if b.is_none() && now >= end {
            b = Some(snap(agent.pid()));
            measuring_to = epoch_ms();
        }
        if now >= drain {
            break;
        }
        let next = [warm, end, drain]
            .into_iter()
            .filter(|&t| t > now)
            .min()
            .unwrap();
        c.turn(&mut events, next - now, |_, frame| {
            let got = epoch_ms();
            let Some(t) = sampled_at(frame, &mut hint) else {
                return;
            };
            frame_bytes = frame.len();
            let tf = t as f64;
            if tf < measuring_from || tf >= measuring_to {
                return;
            }
            let d = got - tf;
            let e = ticks.entry(t).or_insert(Tick {
                count: 0,
                first: f64::INFINITY,
                last: f64::NEG_INFINITY,
            });
            e.count += 1;
            e.first = e.first.min(d);
            e.last = e.last.max(d);
        });
    }
    let pid = agent.pid();
    let (a, b) = (a.unwrap(), b.unwrap());
    let w = window(&a, &b);
    let frames: u64 = ticks.values().map(|t| u64::from(t.count)).sum();
    let open = c.open_count();
    let mut tv: Vec<(u64, Tick)> = ticks.into_iter().collect();
    tv.sort_by_key(|(t, _)| *t);
    let short_ticks = tv.iter().filter(|(_, t)| (t.count as usize) < open).count();
    PushResult {
        frames_s: frames as f64 / w.secs,
        w,
        ticks: tv.into_iter().map(|(_, t)| t).collect(),
        frame_bytes,
        short_ticks,
        open,
        rss_kb: status_kb(pid, "VmRSS:"),
        hwm_kb: status_kb(pid, "VmHWM:"),
        anon_kb: status_kb(pid, "RssAnon:"),
    }
}

struct PollResult {
    w: Window,
    answers_s: f64,
    skipped: u64,
    rtt_ms: Vec<f64>,
    open: usize,
    rss_kb: f64,
    hwm_kb: f64,
    anon_kb: f64,
}

/// Each client sends `request` once a second, client i at i/N of the
/// second, with at most one request in flight; every frame read is an answer.
fn poll_phase(agent: &Agent, n: usize, request: &str, o: &Opts) -> PollResult {
    let mut c = connect_all(agent.port, n);
    let mut events = Events::with_capacity(1024);
    let mut sent_at: Vec<Option<Instant>> = vec![None; n];
    let t0 = Instant::now();
    let warm = t0 + Duration::from_secs(o.warmup);
    let end = warm + Duration::from_secs(o.seconds);
    let mut a = None;
    let b;
    let mut slot: u64 = 0; // round * n + client
    let slot_due = |s: u64| {
        t0 + Duration::from_secs(s / n as u64)
            + Duration::from_nanos((s % n as u64) * 1_000_000_000 / n as u64)
    };
    let (mut answers, mut skipped) = (0u64, 0u64);
    let mut rtt_ms = Vec::new();
    let mut measuring = false;
    loop {
        let now = Instant::now();
        if a.is_none() && now >= warm {
            a = Some(snap(agent.pid()));
            measuring = true;
        }
        if now >= end {
            b = Some(snap(agent.pid()));
            break;
        }
        while slot_due(slot) <= now {
            let i = (slot % n as u64) as usize;
            if sent_at[i].is_none() && c.open[i] {
                c.send(i, request);
                sent_at[i] = Some(Instant::now());
            } else if measuring {
                skipped += 1;
            }
            slot += 1;
        }
        let next = slot_due(slot).min(if a.is_none() { warm } else { end });
        let timeout = next.saturating_duration_since(Instant::now());
        c.turn(&mut events, timeout, |i, _| {
            if let Some(s) = sent_at[i].take() {
                if measuring {
                    answers += 1;
                    rtt_ms.push(s.elapsed().as_secs_f64() * 1e3);
                }
            }
        });
    }
    let pid = agent.pid();
    let w = window(a.as_ref().unwrap(), b.as_ref().unwrap());
    PollResult {
        answers_s: answers as f64 / w.secs,
        w,
        skipped,
        rtt_ms,
        open: c.open_count(),
        rss_kb: status_kb(pid, "VmRSS:"),
        hwm_kb: status_kb(pid, "VmHWM:"),
        anon_kb: status_kb(pid, "RssAnon:"),
    }
}

// ---- the floor: one shared frame to N sockets each second ----

/// `subscribers --floor-server PORT N BYTES`: accepts N WebSocket clients,
/// then at each whole second writes one frame of BYTES (carrying
/// `sampled_at_ms`) to every socket, nothing else.
fn floor_server(port: u16, n: usize, bytes: usize) -> ! {
    raise_nofile();
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut socks = Vec::with_capacity(n);
    while socks.len() < n {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let ws = tungstenite::accept(s).unwrap();
        let s = ws.into_inner();
        s.set_nonblocking(true).unwrap();
        socks.push(s);
    }
    let mut frame = Vec::with_capacity(bytes + 10);
    loop {
        let now = epoch_ms() as u64;
        let next = (now / 1000 + 1) * 1000;
        std::thread::sleep(Duration::from_millis(next - now));
        let t = epoch_ms() as u64;
        let head = format!("{{\"sampled_at_ms\":{t},\"pad\":\"");
        let pad = bytes.saturating_sub(head.len() + 2);
        frame.clear();
        frame.push(0x81); // FIN, text
        let len = head.len() + pad + 2;
        if len < 126 {
            frame.push(len as u8);
        } else if len < 65536 {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        frame.extend_from_slice(head.as_bytes());
        frame.resize(frame.len() + pad, b'x');
        frame.extend_from_slice(b"\"}");
        for s in socks.iter_mut() {
            let _ = s.write(&frame);
        }
    }
}

fn start_floor(n: usize, bytes: usize) -> Agent {
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--floor-server",
            &port.to_string(),
            &n.to_string(),
            &bytes.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    pin_agent(child.id());
    wait_listening(port, "floor");
    Agent {
        name: "floor",
        child,
        port,
    }
}

// ---- /metrics ----

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn prom_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name || k.starts_with(&format!("{name}{{")))
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_window(name: &str, w: &Window) {
    println!(
        "  {name}: CPU {:.2} ms/s (utime+stime {:.1} ms/s), {:.1} context switches/s; \
         this bench {:.1} ms/s; everything else on the machine {:.1} ms/s; window {:.1} s",
        w.agent_ms_s, w.agent_ticks_ms_s, w.agent_ctx_s, w.bench_ms_s, w.other_ms_s, w.secs
    );
    let o: Vec<String> = w
        .others
        .iter()
        .map(|(n, v)| format!("{n} {v:.1} ms/s"))
        .collect();
    println!("  {name}: the busiest other processes: {}", o.join(", "));
    if w.other_ms_s > 100.0 {
        println!("  {name}: WARNING: the machine was busy with something else in this window (every CPU's time less its idle time in /proc/stat, less the agent's and this bench's)");
    }
}

fn print_push(name: &str, r: &PushResult) {
    let last: Vec<f64> = r.ticks.iter().map(|t| t.last).collect();
    let first: Vec<f64> = r.ticks.iter().map(|t| t.first).collect();
    let spread: Vec<f64> = r.ticks.iter().map(|t| t.last - t.first).collect();
    print_window(name, &r.w);
    println!(
        "  {name}: {:.1} frames/s to {} open clients ({} B each); {} ticks, {} of them missing a client's frame",
        r.frames_s,
        r.open,
        r.frame_bytes,
        r.ticks.len(),
        r.short_ticks
    );
    println!(
        "  {name}: delay sample → last subscriber's frame p50 {:.1} / p99 {:.1} / max {:.1} ms; \
         → first subscriber's p50 {:.1} / p99 {:.1} ms; first→last spread p50 {:.1} / p99 {:.1} ms",
        pct(&last, 0.5),
        pct(&last, 0.99),
        pct(&last, 1.0),
        pct(&first, 0.5),
        pct(&first, 0.99),
        pct(&spread, 0.5),
        pct(&spread, 0.99)
    );
    println!(
        "  {name}: VmRSS {:.0} KiB, VmHWM {:.0} KiB, RssAnon {:.0} KiB with {} clients",
        r.rss_kb, r.hwm_kb, r.anon_kb, r.open
    );
}

fn print_poll(name: &str, r: &PollResult) {
    print_window(name, &r.w);
    println!(
        "  {name}: {:.1} answers/s from {} open clients ({} sends skipped: previous answer not back); \
         round trip p50 {:.2} / p99 {:.2} / max {:.2} ms",
        r.answers_s,
        r.open,
        r.skipped,
        pct(&r.rtt_ms, 0.5),
        pct(&r.rtt_ms, 0.99),
        pct(&r.rtt_ms, 1.0)
    );
    println!(
        "  {name}: VmRSS {:.0} KiB, VmHWM {:.0} KiB, RssAnon {:.0} KiB with {} clients",
        r.rss_kb, r.hwm_kb, r.anon_kb, r.open
    );
}

fn date() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%F %T UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `subscribers --idle-floor wake|read`: the least a 1 Hz sampler can do.
/// `wake` wakes once a second and does nothing; `read` also reads the files
/// a history tick reads on a machine without hwmon or cpufreq (what
/// `strace` shows the agent read): `/proc/stat`, `/proc/meminfo`,
/// `/proc/self/net/dev` and `/proc/diskstats` each second, the three
/// pressure files every other second, each kept open and read with one
/// `pread` into a kept buffer.
fn idle_floor(kind: &str) -> ! {
    use std::os::unix::fs::FileExt;
    let open = |p: &str| std::fs::File::open(p).ok();
    let each: Vec<_> = [
        "/proc/stat",
        "/proc/meminfo",
        "/proc/self/net/dev",
        "/proc/diskstats",
    ]
    .iter()
    .filter_map(|p| open(p))
    .collect();
    let every_other: Vec<_> = ["cpu", "memory", "io"]
        .iter()
        .filter_map(|k| open(&format!("/proc/pressure/{k}")))
        .collect();
    let read = kind == "read";
    let mut buf = vec![0u8; 64 * 1024];
    let mut next = Instant::now();
    let mut tick = 0u64;
    loop {
        tick += 1;
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        if read {
            for f in each
                .iter()
                .chain(every_other.iter().filter(|_| tick % 2 == 0))
            {
                let _ = f.read_at(&mut buf, 0);
            }
        }
    }
}

fn start_idle_floor(name: &'static str, kind: &str) -> Agent {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--idle-floor", kind])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    pin_agent(child.id());
    Agent {
        name,
        child,
        port: 0,
    }
}

fn idle_phase(o: &Opts) {
    let Some(on) = start("sockagent", &o.bin, &[]) else {
        return;
    };
    let off = start("sockagent --history 0", &o.bin, &["--history", "0"]);
    let floors = [
        start_idle_floor("floor: wake once a second", "wake"),
        start_idle_floor(
            "floor: wake once a second and read the tick's files",
            "read",
        ),
    ];
    let all: Vec<&Agent> = std::iter::once(&on)
        .chain(off.as_ref())
        .chain(floors.iter())
        .collect();
    // settle: the first samples, the page cache
    std::thread::sleep(Duration::from_secs(2));
    let a: Vec<Snap> = all.iter().map(|g| snap(g.pid())).collect();
    std::thread::sleep(Duration::from_secs(o.idle_seconds));
    let b: Vec<Snap> = all.iter().map(|g| snap(g.pid())).collect();
    println!(
        "idle, no client, {} s (ended {}; load {}):",
        o.idle_seconds,
        date(),
        loadavg()
    );
    let mut per_hour = Vec::new();
    for (g, (a, b)) in all.iter().zip(a.iter().zip(&b)) {
        let w = window(a, b);
        per_hour.push(w.agent_ms_s * 3600.0);
        println!(
            "  {}: CPU {:.1} ms/hour = {:.4} % of a core (utime+stime {:.0} ms/hour), {:.2} context switches/s, VmRSS {:.0} KiB, RssAnon {:.0} KiB",
            g.name,
            w.agent_ms_s * 3600.0,
            w.agent_ms_s / 10.0,
            w.agent_ticks_ms_s * 3600.0,
            w.agent_ctx_s,
            status_kb(g.pid(), "VmRSS:"),
            status_kb(g.pid(), "RssAnon:"),
        );
    }
    // `all` is the agent with history first and the two floors last
    let [.., wake, read] = per_hour[..] else {
        unreachable!("the two floors are always measured")
    };
    println!(
        "  sockagent with history: {:.2}x the bare wakeup, {:.2}x the wakeup reading the same files",
        per_hour[0] / wake,
        per_hour[0] / read
    );
    if off.is_none() {
        println!("  (sockagent --history 0 did not start: no history flag in this build)");
    }
    let m = http_get(on.port, "/metrics");
    for k in ["sockagent_history_bytes", "sockagent_history_samples"] {
        match prom_value(&m, k) {
            Some(v) => println!("  {k} {v} (after {} s)", o.idle_seconds + 2),
            None => println!("  {k}: not in /metrics"),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--floor-server") => {
            let p: Vec<usize> = args.map(|v| v.parse().unwrap()).collect();
            floor_server(p[0] as u16, p[1], p[2]);
        }
        Some("--idle-floor") => idle_floor(&args.next().unwrap_or_default()),
        _ => {}
    }
    let o = opts();
    raise_nofile();
    if o.pin {
        PIN.store(true, std::sync::atomic::Ordering::Relaxed);
        pin(0, 1);
        println!("pinned: the agents on CPU 0, this bench on CPU 1");
    }
    let n = o.clients;
    for b in [&o.bin, &o.reference] {
        if !std::path::Path::new(b).exists() {
            eprintln!("{b} not found (cargo build --release; cargo install socktop_agent@1.60.1 --root /opt/socktop_ref, needs libdrm-dev; or --bin/--ref)");
            std::process::exit(2);
        }
    }
    println!(
        "subscribers: {}, {n} clients, {} s measured after {} s warm-up, {} CPUs, load {}",
        date(),
        o.seconds,
        o.warmup,
        ncpu(),
        loadavg()
    );
    println!("  sockagent: {}; reference: {}", o.bin, o.reference);
    println!();

    if o.idle_seconds > 0 {
        idle_phase(&o);
        println!();
    }
    if n == 0 {
        return;
    }

    let ours = start("sockagent", &o.bin, &[]).expect("sockagent did not start");
    let push = push_phase(
        &ours,
        n,
        Some(r#"{"type":"subscribe","metrics_ms":1000}"#),
        &o,
    );
    drop(ours);
    println!(
        "push: sockagent, {n} subscribers at metrics_ms 1000 (ended {}; load {}):",
        date(),
        loadavg()
    );
    print_push("sockagent", &push);
    println!("  (the delays are measured by the client: they include this one thread's own reading of the frames before)");
    println!();

    let floor = if o.floor {
        // no pushed frame (a build without subscribe): a metrics answer's size
        let bytes = if push.frame_bytes > 0 {
            push.frame_bytes
        } else {
            3000
        };
        let f = start_floor(n, bytes);
        let r = push_phase(&f, n, None, &o);
        drop(f);
        println!(
            "floor: one shared {bytes} B frame written to {n} sockets each second (ended {}; load {}):",
            date(),
            loadavg()
        );
        print_push("floor", &r);
        println!();
        Some(r)
    } else {
        None
    };

    if !o.reference_phase {
        return;
    }
    let theirs = start("socktop_agent", &o.reference, &[]).expect("reference did not start");
    let refp = poll_phase(&theirs, n, "get_metrics", &o);
    drop(theirs);
    println!(
        "poll: socktop_agent 1.60.1, {n} clients sending get_metrics once a second, default caches (ended {}; load {}):",
        date(),
        loadavg()
    );
    print_poll("socktop_agent", &refp);
    println!();

    let polled = if o.ours_polled {
        let g = start("sockagent", &o.bin, &[]).expect("sockagent did not start");
        let r = poll_phase(&g, n, "get_metrics", &o);
        drop(g);
        println!(
            "poll: sockagent, {n} clients sending get_metrics once a second, default caches (ended {}; load {}):",
            date(),
            loadavg()
        );
        print_poll("sockagent polled", &r);
        println!();
        Some(r)
    } else {
        None
    };

    let rc = refp.w.agent_ms_s;
    println!("| measure | value | target |");
    println!("| --- | --- | --- |");
    println!(
        "| agent CPU: sockagent pushing / reference polled | {:.2} / {:.2} ms/s = **{:.3}×** | ≤ 0.2× |",
        push.w.agent_ms_s,
        rc,
        push.w.agent_ms_s / rc
    );
    match &floor {
        Some(f) => println!(
            "| the floor (one shared frame to {n} sockets) / reference | {:.2} / {:.2} ms/s = {:.3}× (sockagent is {:.2}× the floor) | (≈ 0.12×) |",
            f.w.agent_ms_s,
            rc,
            f.w.agent_ms_s / rc,
            push.w.agent_ms_s / f.w.agent_ms_s
        ),
        None => println!("| the floor / reference | ≈ 0.12× (a C program writing one shared frame to 1 000 sockets each second; not measured here) | |"),
    }
    if let Some(p) = &polled {
        println!(
            "| sockagent polled the same way / reference | {:.2} / {:.2} ms/s = {:.3}× | |",
            p.w.agent_ms_s,
            rc,
            p.w.agent_ms_s / rc
        );
    }
    let last: Vec<f64> = push.ticks.iter().map(|t| t.last).collect();
    println!(
        "| delay sample → last subscriber's frame, p99 (per-tick max) | {:.1} ms | ≤ 20 ms |",
        pct(&last, 0.99)
    );
    println!(
        "| memory with {n} subscribers: VmRSS / VmHWM | {:.0} / {:.0} KiB (reference polled: {:.0} / {:.0} KiB) | |",
        push.rss_kb, push.hwm_kb, refp.rss_kb, refp.hwm_kb
    );
}
