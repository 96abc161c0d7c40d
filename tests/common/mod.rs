//! Test helpers: start the real binary on a free port, talk to it over real
//! sockets with a real WebSocket client.
#![allow(dead_code)]

pub mod standin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tungstenite::{Message, WebSocket};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The agent binary to test: this build's, or `SOCKAGENT_TEST_BIN` (a
/// cross-built one) run through `SOCKAGENT_TEST_RUNNER` (e.g.
/// `qemu-aarch64-static -L /usr/aarch64-linux-gnu`).
pub fn agent_command() -> Command {
    let bin = std::env::var("SOCKAGENT_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sockagent").to_string());
    match std::env::var("SOCKAGENT_TEST_RUNNER")
        .ok()
        .filter(|r| !r.trim().is_empty())
    {
        Some(runner) => {
            let mut words = runner.split_whitespace();
            let mut cmd = Command::new(words.next().unwrap());
            cmd.args(words).arg(bin);
            cmd
        }
        None => Command::new(bin),
    }
}

/// The path of fixture tree `name` (`tests/fixtures/<name>`, the one
/// fixture root).
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the `rpi4-sensors` tree (at `root`) whose board recovers:
/// the firmware loses its "now" throttle bits (the since-boot ones stay)
/// and the hwmon under-voltage alarm clears.
pub fn rpi4_recovers(root: &std::path::Path) {
    let fw = root.join("sys/devices/platform/soc/soc:firmware");
    std::fs::write(fw.join("get_throttled"), "50000\n").unwrap();
    std::fs::write(
        fw.join("raspberrypi-hwmon/hwmon/hwmon1/in0_lcrit_alarm"),
        "0\n",
    )
    .unwrap();
}

/// True when the agent runs under an emulator (its comm is then the emulator's).
pub fn emulated() -> bool {
    std::env::var("SOCKAGENT_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Agent {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Agent {
        Self::start_with(args, env, || Ok(()))
    }

    /// Starts the agent with `pre` run in the child before exec (rlimits, uid).
    pub fn start_with(
        args: &[&str],
        env: &[(&str, &str)],
        pre: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Agent {
        use std::os::unix::process::CommandExt;
        let mut cmd = agent_command();
        // SAFETY: `pre` only makes async-signal-safe calls (setrlimit, setuid).
        unsafe {
            cmd.pre_exec(pre);
        }
        cmd.args(["--bind", "127.0.0.1", "--port", "0"]).args(args);
        cmd.env_remove("SOCKTOP_TOKEN")
            .env_remove("SOCKTOP_PORT")
            .env("RUST_LOG", "debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn agent");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|r| r.split("://").nth(1))
                {
                    let addr = rest.split('/').next().unwrap_or("");
                    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let port = rx
            .recv_timeout(TIMEOUT)
            .expect("agent did not print its port");
        Agent { child, port, log }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn ws(&self) -> WebSocket<TcpStream> {
        connect(&self.url(), None).0
    }

    /// Sends a raw HTTP request and returns the whole response.
    pub fn http(&self, raw: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn connect(
    url: &str,
    protocols: Option<&str>,
) -> (
    WebSocket<TcpStream>,
    tungstenite::handshake::client::Response,
) {
    use tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let host = req.uri().authority().unwrap().as_str().to_string();
    let mut tries = 0;
    loop {
        let s = TcpStream::connect(&host).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        match tungstenite::client::client(req.clone(), s) {
            Ok(x) => return x,
            // A signal (the sandbox freezing and thawing us) interrupted a
            // syscall: that is not the agent's doing, so try again.
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::Interrupted && tries < 5 =>
            {
                tries += 1
            }
            Err(e) => panic!("websocket handshake: {e}"),
        }
    }
}

pub fn ask(ws: &mut WebSocket<TcpStream>, req: &str) -> Message {
    send(ws, Message::text(req));
    next(ws)
}

/// Sends a message, finishing the write if a signal interrupted it.
pub fn send(ws: &mut WebSocket<TcpStream>, m: Message) {
    let mut r = ws.send(m);
    for _ in 0..5 {
        match r {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                r = ws.flush()
            }
            _ => break,
        }
    }
    r.unwrap();
}

pub fn next(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read() {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(m) => return m,
            // a signal (another test's child exiting) interrupted the read
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
                continue
            }
            Err(e) => panic!("answer: {e}"),
        }
    }
}

pub fn json(m: &Message) -> serde_json::Value {
    match m {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("valid JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// A decoded process frame.
#[derive(Debug)]
pub struct Proc {
    pub pid: u32,
    pub name: String,
    pub cpu: f32,
    pub mem: u64,
}

pub fn gunzip_if_needed(b: &[u8]) -> Vec<u8> {
    if b.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        b.to_vec()
    }
}

/// Decodes the guide's ProcessList by hand (independent of our encoder).
pub fn decode_processes(raw: &[u8]) -> (u64, Vec<Proc>) {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let b = gunzip_if_needed(raw);
    let (mut i, mut count, mut rows) = (0, 0, Vec::new());
    while i < b.len() {
        let tag = varint(&b, &mut i);
        match tag {
            8 => count = varint(&b, &mut i),
            18 => {
                let len = varint(&b, &mut i) as usize;
                let sub = &b[i..i + len];
                i += len;
                let mut p = Proc {
                    pid: 0,
                    name: String::new(),
                    cpu: 0.0,
                    mem: 0,
                };
                let mut j = 0;
                while j < sub.len() {
                    match varint(sub, &mut j) {
                        8 => p.pid = varint(sub, &mut j) as u32,
                        18 => {
                            let l = varint(sub, &mut j) as usize;
                            p.name = String::from_utf8(sub[j..j + l].to_vec()).unwrap();
                            j += l;
                        }
                        29 => {
                            p.cpu = f32::from_le_bytes(sub[j..j + 4].try_into().unwrap());
                            j += 4;
                        }
                        32 => p.mem = varint(sub, &mut j),
                        t => panic!("unexpected tag {t}"),
                    }
                }
                rows.push(p);
            }
            t => panic!("unexpected tag {t}"),
        }
    }
    (count, rows)
}

pub fn binary(m: &Message) -> Vec<u8> {
    match m {
        Message::Binary(b) => b.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

pub fn meminfo_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|r| r.trim_start_matches(':').split_whitespace().next())
        })
        .unwrap()
        .parse()
        .unwrap()
}

/// Finds an outside program the tests need; without it the test fails and
/// says what to install (CI installs it in `.ci/run`; nothing is skipped).
pub fn tool(name: &str, debian_package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: this test needs it. Install Debian's \
                 `{debian_package}` package (sudo apt-get install {debian_package}); \
                 .ci/run installs it before running the tests"
            )
        })
}

/// A directory removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sockagent-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Prometheus on a free loopback port with `config` (YAML)
/// written in `dir`, its data and log (`prometheus.log`, appended: a
/// restart keeps the first run's lines) there too, `extra` flags after
/// the usual ones; killed when the handle is dropped.
pub fn start_prometheus(dir: &std::path::Path, config: &str, port: u16, extra: &[&str]) -> Reaped {
    let bin = tool("prometheus", "prometheus");
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("prometheus.log"))
        .unwrap();
    Reaped(
        Command::new(bin)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// A PromQL instant query against Prometheus on `port`: its (labels,
/// value) rows; `None` when it did not answer 200 with a vector.
pub fn prom_query(port: u16, q: &str) -> Option<Vec<(serde_json::Value, f64)>> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http_get(port, &format!("/api/v1/query?query={enc}"), "")?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let rows = v["data"]["result"].as_array()?;
    Some(
        rows.iter()
            .filter_map(|r| Some((r["metric"].clone(), r["value"][1].as_str()?.parse().ok()?)))
            .collect(),
    )
}

/// Runs `cmd` (mount, mkfs, umount): it must succeed; the tests that use
/// it need root and a loop device, as CI has.
pub fn run_root(cmd: &str, args: &[&std::ffi::OsStr]) {
    let st = Command::new(cmd)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        st.success(),
        "{cmd} {args:?} failed (this test needs root and a loop device)"
    );
}

/// A fresh `bytes`-long ext4 image at `img`, to loop-mount.
pub fn make_ext4(img: &std::path::Path, bytes: u64) {
    std::fs::File::create(img).unwrap().set_len(bytes).unwrap();
    run_root(
        "mkfs.ext4",
        &["-q".as_ref(), "-F".as_ref(), img.as_os_str()],
    );
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads from `s` into `buf` until an HTTP head is complete: its length
/// (what follows it in `buf` is the body's start); `None` at EOF first.
pub fn read_head(s: &mut impl Read, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `GET path` over HTTP/1.1 (`Connection: close`; a `Content-Length` or
/// chunked body): (status, body), or `None` when nothing listens there yet.
pub fn http_get(port: u16, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{headers}\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let head_end = read_head(&mut s, &mut buf)?;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = buf[head_end..].to_vec();
    match length {
        Some(len) => {
            let mut chunk = [0u8; 8192];
            while body.len() < len {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            s.read_to_end(&mut body).ok()?;
        }
    }
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).ok()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(eol + 2..eol + 2 + size)?);
            rest = rest.get(eol + 4 + size..)?;
        }
        body = out;
    }
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A thread spinning on one core until dropped.
pub struct Burner {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Burner {
    pub fn start() -> Burner {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut x = 0u64;
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            x
        });
        Burner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Voluntary and involuntary context switches of `pid` so far: each
/// wakeup from epoll_wait is one.
pub fn ctxt_switches(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
        })
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}
