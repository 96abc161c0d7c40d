//! The page at `/` in a real browser: Debian's headless Chromium, driven
//! over the DevTools protocol (a WebSocket, spoken here with tungstenite).
//! It loads the page with `?token=`, waits for live data, checks what a
//! user sees (hostname, a CPU figure, process rows), that the page asks for
//! `history` first and then subscribes instead of polling, that no script
//! error happened, and saves a screenshot. Then: the charts are filled from
//! the agent's history right after the page opens, a reconnect backfills
//! the gap (`since_ms`), and an agent without history (`--history 0`) or one
//! that ignores history and subscribe (socktop_agent) is polled no faster
//! than the API guide's intervals.
//!
//! Needs the `chromium` package; without it the test fails and says so.
//! `.ci/run` installs it. `SOCKAGENT_SCREENSHOT=path` also writes the PNG
//! there (how docs/page.png is made; `SOCKAGENT_SCREENSHOT_WAIT_S=N` waits
//! N more seconds first, so the charts have some history).

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

const SECRET: &str = "page-secret";

struct Cdp {
    ws: WebSocket<TcpStream>,
    next: u64,
    /// Script errors seen so far.
    exceptions: Vec<Value>,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.ws
            .send(Message::text(
                json!({"id": id, "method": method, "params": params}).to_string(),
            ))
            .unwrap();
        loop {
            let m = match self.ws.read().expect("DevTools answer") {
                Message::Text(t) => t,
                _ => continue,
            };
            let v: Value = serde_json::from_str(m.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            if v["method"] == "Runtime.exceptionThrown" {
                self.exceptions.push(v["params"].clone());
            }
        }
    }

    /// The expression's value; `Err` with the error while the page is not
    /// there yet (still about:blank, or loading).
    fn eval(&mut self, expr: &str) -> Result<Value, Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        match r.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(r["result"]["value"].clone()),
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64"),
    };
    let b: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(b.len() * 3 / 4);
    for chunk in b.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| u32::from(val(c))).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, x)| a | x << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Records every request the page sends: (type, ms, request). With `mute`
/// in the page's address it drops `history` and `subscribe`, as
/// socktop_agent ignores them; while `window.__block` is set, connections
/// fail (they go to a path that is no WebSocket). `window.__filled`: when
/// the CPU chart first had 4 points, with how many and the time they span.
const SPY: &str = "window.__sent = []; const __send = WebSocket.prototype.send;
WebSocket.prototype.send = function (d) {
  let m = null;
  try { m = JSON.parse(d); } catch (e) {}
  if (m) window.__sent.push([m.type, performance.now(), m]);
  if (m && location.search.includes('mute') && (m.type === 'history' || m.type === 'subscribe')) return;
  return __send.call(this, d);
};
const __WS = WebSocket;
window.WebSocket = class extends __WS {
  constructor(u) { super(window.__block ? u.replace('/ws', '/blocked') : u); }
};
const __fill = setInterval(() => {
  try {
    if (hist.cpu.length < 4) return;
    window.__filled = [performance.now(), hist.cpu.length, hist.cpu[hist.cpu.length - 1][0] - hist.cpu[0][0]];
    clearInterval(__fill);
  } catch (e) {}
}, 10);";

/// What the page shows now.
const LOOK: &str = "JSON.stringify({
  host: document.getElementById('host').textContent,
  cpu: document.getElementById('cpu-total').textContent,
  cores: document.querySelectorAll('#cores .core').length,
  mem: document.getElementById('mem-text').textContent,
  rows: document.querySelectorAll('#procs tbody td.name').length,
  agent: procs.some(p => p.pid === window.AGENT_PID && p.name === 'sockagent'),
  disks: document.querySelectorAll('#disks tbody tr').length,
  diskio: document.querySelectorAll('#diskio tbody tr').length,
  diskChart: hist.dw.length,
  clocks: document.querySelectorAll('#clocks div').length,
  board: !document.getElementById('board').hidden,
  status: document.getElementById('status').textContent,
  err: document.getElementById('err').textContent,
  alerts: document.getElementById('alerts').hidden ? '' : document.getElementById('alerts').textContent,
  mode, live, seen, span,
  cpuPoints: hist.cpu.length,
  cpuLast: hist.cpu.length ? hist.cpu[hist.cpu.length - 1][0] : 0,
  cpuStep: hist.cpu.reduce((m, p, i, a) => i ? Math.max(m, p[0] - a[i - 1][0]) : 0, 0),
  filled: window.__filled || null,
  sent: window.__sent,
})";

/// One browser at a time: the timing checks must not share two cores
/// with another Chromium.
static SERIAL: Mutex<()> = Mutex::new(());

/// Headless Chromium with one page, driven over DevTools (fields drop in
/// order: the DevTools socket, the browser, its profile, then the lock).
struct Browser {
    cdp: Cdp,
    _child: Reaped,
    _profile: TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts Chromium, with the spy in every document it loads.
    fn start(agent: &Agent) -> Browser {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let chromium = tool("chromium", "chromium");
        let profile = TempDir::new("chromium");
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let child = Reaped(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end so the browser never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let browser_url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium did not start its DevTools endpoint");
        let port: u16 = browser_url
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (_, list) = http_get(port, "/json/list", "").expect("DevTools target list");
        let targets: Value = serde_json::from_str(&list).unwrap();
        let page_ws = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let mut cdp = Cdp {
            ws: connect(&page_ws, None).0,
            next: 0,
            exceptions: Vec::new(),
        };
        cdp.call("Runtime.enable", json!({}));
        cdp.call("Page.enable", json!({}));
        let spy = format!("{SPY}\nwindow.AGENT_PID = {};", agent.child.id());
        cdp.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": spy}),
        );
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        Browser {
            cdp,
            _child: child,
            _profile: profile,
            _serial: serial,
        }
    }

    /// Loads the agent's page (`query`: the address' `?…`).
    fn open(&mut self, agent: &Agent, query: &str) {
        let url = format!("http://127.0.0.1:{}/{query}", agent.port);
        self.cdp.call("Page.navigate", json!({"url": url}));
    }

    fn look(&mut self) -> Value {
        match self.cdp.eval(LOOK) {
            Ok(v) => v
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null),
            Err(e) => json!({ "not yet": e }),
        }
    }

    /// What the page shows once `done` holds; fails after `secs`.
    fn wait(
        &mut self,
        agent: &Agent,
        what: &str,
        secs: u64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let look = self.look();
            if done(&look) {
                return look;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs} s: {look}\nexceptions: {:?}\nagent log:\n{}",
                self.cdp.exceptions,
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The requests of one kind the page sent: (ms, request).
fn sent(look: &Value, kind: &str) -> Vec<(f64, Value)> {
    look["sent"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|s| s[0] == kind)
        .map(|s| (s[1].as_f64().unwrap(), s[2].clone()))
        .collect()
}

/// Never faster than the guide: metrics >= 500 ms, processes >= 2000,
/// disks >= 5000, cgroups (the agent's own) like processes, alerts 5000.
fn assert_spacing(look: &Value) {
    for (kind, min_ms) in [
        ("metrics", 500.0),
        ("processes", 2000.0),
        ("disks", 5000.0),
        ("cgroups", 2000.0),
        ("alerts", 5000.0),
    ] {
        let times: Vec<f64> = sent(look, kind).iter().map(|s| s.0).collect();
        for w in times.windows(2) {
            // 1 ms: the page schedules with Date.now, the spy reads performance.now
            assert!(
                w[1] - w[0] >= min_ms - 1.0,
                "{kind} polled after {} ms: {times:?}",
                w[1] - w[0]
            );
        }
    }
}

fn cpu_ok(look: &Value) -> bool {
    look["cpu"]
        .as_str()
        .unwrap_or("")
        .strip_suffix('%')
        .and_then(|n| n.parse::<f64>().ok())
        .is_some_and(|n| (0.0..=100.0).contains(&n))
}

fn hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    host.trim().to_string()
}

#[test]
fn page_shows_live_data_in_headless_chromium() {
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", SECRET)]);
    let mut b = Browser::start(&agent);
    b.open(&agent, &format!("?token={SECRET}"));
    let host = hostname();
    // pushed: metrics several times, processes twice, disks once
    let look = b.wait(&agent, "the page did not show live data", 60, |look| {
        look["host"] == host.as_str()
            && cpu_ok(look)
            && look["rows"].as_u64().unwrap_or(0) >= 1
            && look["agent"] == true
            && look["disks"].as_u64().unwrap_or(0) >= 1
            && look["diskChart"].as_u64().unwrap_or(0) >= 2
            && look["seen"]["metrics"].as_u64().unwrap_or(0) >= 3
            && look["seen"]["processes"].as_u64().unwrap_or(0) >= 2
            && look["seen"]["disks"].as_u64().unwrap_or(0) >= 1
    });
    assert!(b.cdp.exceptions.is_empty(), "{:?}", b.cdp.exceptions);
    assert_eq!(look["err"], "", "{look}");
    assert_eq!(look["status"], "live", "{look}");
    let ncpu = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(look["cores"], ncpu as u64);
    assert!(look["mem"].as_str().unwrap().contains(" of "), "{look}");
    // board health: the disk rate chart has points, one row per whole disk
    // (this VM: vda), the board card shows load and uptime; core clocks
    // where the machine has cpufreq (a VM has none)
    assert!(look["diskio"].as_u64().unwrap() >= 1, "{look}");
    assert!(look["diskChart"].as_u64().unwrap() >= 2, "{look}");
    assert_eq!(look["board"], true, "{look}");
    let cpufreq =
        std::path::Path::new("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq").exists();
    assert_eq!(
        look["clocks"],
        if cpufreq { ncpu as u64 } else { 0 },
        "{look}"
    );

    // history first (the whole ring: no since_ms), then one subscribe at
    // the guide's intervals; the agent pushes those three kinds, so the
    // page never asks for them; cgroups, no stream, is polled
    let all = look["sent"].as_array().unwrap();
    assert_eq!(all[0][0], "history", "{look}");
    assert_eq!(all[0][2], json!({"type": "history"}), "{look}");
    let subs = sent(&look, "subscribe");
    assert_eq!(subs.len(), 1, "{look}");
    assert_eq!(
        subs[0].1,
        json!({"type": "subscribe", "metrics_ms": 1000, "processes_ms": 2000, "disks_ms": 5000}),
        "{look}"
    );
    assert_eq!(look["mode"], "push", "{look}");
    assert_eq!(
        look["live"],
        json!({"metrics": true, "processes": true, "disks": true}),
        "{look}"
    );
    for kind in ["metrics", "processes", "disks"] {
        assert!(
            sent(&look, kind).is_empty(),
            "{kind} polled while subscribed: {look}"
        );
    }
    assert!(!sent(&look, "cgroups").is_empty(), "{look}");
    assert_spacing(&look);

    if let Some(s) = std::env::var("SOCKAGENT_SCREENSHOT_WAIT_S")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        // more history in the charts (for docs/page.png)
        std::thread::sleep(Duration::from_secs(s));
    }
    let shot = b
        .cdp
        .call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("page.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", out.display(), png.len());
    if let Some(p) = std::env::var_os("SOCKAGENT_SCREENSHOT") {
        std::fs::write(&p, &png).unwrap();
    }
}

#[test]
fn page_fills_its_charts_from_history_and_backfills_after_a_reconnect() {
    let agent = Agent::start(&[], &[]);
    // the ring's window, as the agent tells it
    let h = json(&ask(&mut agent.ws(), r#"{"type":"history"}"#));
    let window = h["capacity"].as_f64().unwrap() * h["interval_ms"].as_f64().unwrap();
    // some samples in the ring
    std::thread::sleep(Duration::from_secs(6));
    let mut b = Browser::start(&agent);
    b.open(&agent, "");
    let look = b.wait(&agent, "the CPU chart did not fill", 30, |l| {
        l["filled"].is_array() && l["mode"] == "push"
    });
    // 4 points spanning 3 s within 1.5 s of the page's opening its socket
    // (its first request): only history can give them, pushes come each second
    let opened = look["sent"][0][1].as_f64().unwrap();
    let filled = &look["filled"];
    assert_eq!(look["sent"][0][0], "history", "{look}");
    assert!(
        filled[0].as_f64().unwrap() - opened <= 1500.0,
        "the CPU chart had 4 points only {} ms after the socket opened: {look}",
        filled[0].as_f64().unwrap() - opened
    );
    assert!(filled[1].as_u64().unwrap() >= 4, "{look}");
    assert!(filled[2].as_f64().unwrap() >= 3000.0, "{look}");
    assert_eq!(look["span"].as_f64().unwrap(), window, "{look}");
    assert!(look["cpuStep"].as_f64().unwrap() <= 2500.0, "{look}");

    // drop the socket and keep the page out for 6 s (it retries after 1 s,
    // then 2 s more, then 4 s: back about 7 s later): the agent sampled on,
    // and the page must ask for what it missed and fill the gap
    let last = b
        .cdp
        .eval(
            "(() => { const l = hist.cpu[hist.cpu.length - 1][0]; window.__block = true; ws.close();
             setTimeout(() => { window.__block = false; }, 6000); return l; })()",
        )
        .unwrap();
    let look = b.wait(&agent, "the page did not reconnect", 30, |l| {
        sent(l, "history").len() >= 2
            && l["mode"] == "push"
            && l["cpuLast"].as_f64().unwrap_or(0.0) > last.as_f64().unwrap() + 9000.0
    });
    let again = &sent(&look, "history")[1].1;
    assert_eq!(
        again,
        &json!({"type": "history", "since_ms": last}),
        "{look}"
    );
    assert!(
        look["cpuStep"].as_f64().unwrap() <= 2500.0,
        "a gap in the CPU chart after the reconnect: {look}"
    );
    assert_eq!(sent(&look, "subscribe").len(), 2, "{look}");
    assert!(b.cdp.exceptions.is_empty(), "{:?}", b.cdp.exceptions);
    assert_eq!(look["err"], "", "{look}");

    // an agent that ignores history and subscribe (socktop_agent): after
    // 3 s with no answer the page polls, no faster than the guide
    b.open(&agent, "?mute");
    let look = b.wait(&agent, "the page did not poll a silent agent", 60, |l| {
        l["mode"] == "poll"
            && cpu_ok(l)
            && l["agent"] == true
            && sent(l, "disks").len() >= 2
            && sent(l, "processes").len() >= 2
    });
    assert_eq!(look["sent"][0][0], "history", "{look}");
    assert!(sent(&look, "subscribe").is_empty(), "{look}");
    let history_at = look["sent"][0][1].as_f64().unwrap();
    assert!(sent(&look, "metrics")[0].0 - history_at >= 2999.0, "{look}");
    assert_spacing(&look);
    assert!(b.cdp.exceptions.is_empty(), "{:?}", b.cdp.exceptions);
    assert_eq!(look["err"], "", "{look}");
}

#[test]
fn page_polls_an_agent_without_history() {
    let agent = Agent::start(&["--history", "0"], &[]);
    let mut b = Browser::start(&agent);
    b.open(&agent, "");
    let host = hostname();
    let look = b.wait(&agent, "the page did not show live data", 60, |l| {
        l["host"] == host.as_str()
            && cpu_ok(l)
            && l["rows"].as_u64().unwrap_or(0) >= 1
            && l["agent"] == true
            && l["cpuPoints"].as_u64().unwrap_or(0) >= 2
            && sent(l, "disks").len() >= 2
    });
    // history answered an error: the page polls as it did before history
    assert_eq!(look["sent"][0][0], "history", "{look}");
    assert_eq!(look["mode"], "poll", "{look}");
    assert!(sent(&look, "subscribe").is_empty(), "{look}");
    for kind in ["metrics", "processes", "disks", "cgroups"] {
        assert!(!sent(&look, kind).is_empty(), "no {kind} request: {look}");
    }
    assert_spacing(&look);
    assert!(b.cdp.exceptions.is_empty(), "{:?}", b.cdp.exceptions);
    assert_eq!(look["err"], "", "{look}");
    assert_eq!(look["status"], "live", "{look}");
}

/// On the Raspberry Pi 4 tree with under-voltage now, the banner shows
/// the firing `NodeUnderVoltage`; once the firmware's "now" bits are gone,
/// the banner goes.
#[test]
fn page_shows_a_banner_while_an_alert_fires() {
    let tree = TempDir::new("browser-rpi4");
    let st = Command::new("cp")
        .arg("-a")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rpi4/."
        ))
        .arg(&tree.0)
        .status()
        .unwrap();
    assert!(st.success());
    let root = tree.0.to_str().unwrap();
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", root), ("SOCKTOP_AGENT_GPU", "0")]);
    let mut b = Browser::start(&agent);
    b.open(&agent, "");
    let look = b.wait(&agent, "no alert banner", 60, |l| {
        l["alerts"]
            .as_str()
            .is_some_and(|a| a.contains("NodeUnderVoltage (critical)"))
    });
    assert!(
        look["alerts"]
            .as_str()
            .unwrap()
            .contains("The board's supply voltage is too low."),
        "{look}"
    );
    assert!(!sent(&look, "alerts").is_empty(), "{look}");
    common::rpi4_recovers(&tree.0);
    b.wait(&agent, "the banner stayed", 60, |l| l["alerts"] == "");
    assert!(b.cdp.exceptions.is_empty(), "{:?}", b.cdp.exceptions);
}

#[test]
fn page_is_served_whole_and_small() {
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", SECRET)]);
    // served without the token: the page holds no data, its WebSocket does
    let r = agent.http("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Content-Type: text/html; charset=utf-8"));
    assert!(head.contains("Content-Security-Policy: default-src 'none'"));
    assert!(body.len() < 30 * 1024, "page is {} bytes", body.len());
    assert!(body.starts_with("<!doctype html>") && body.trim_end().ends_with("</html>"));
    // and without the token its WebSocket is refused
    let r = agent.http(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 401 "), "{r}");
}
