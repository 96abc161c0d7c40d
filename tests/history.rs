//! Issue 18 over real sockets: the history ring (`{"type":"history"}`,
//! `since_ms`, gzip, `--history 0`) against this machine's `/proc/stat`,
//! and pushed streams (`subscribe`/`unsubscribe`): cadence, order beside
//! requests, and a subscriber that stops reading.

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::Message;

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (epoch ms, total ticks, idle + iowait ticks) of the `cpu` line.
fn stat_now() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap();
    let line = s.lines().next().unwrap();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    // guest and guest_nice are inside user and nice
    let total: u64 = v.iter().take(8).sum();
    (epoch_ms(), total, v[3] + v[4])
}

fn busy(a: (u64, u64, u64), b: (u64, u64, u64)) -> f64 {
    let total = b.1.saturating_sub(a.1) as f64;
    let idle = b.2.saturating_sub(a.2) as f64;
    if total == 0.0 {
        return 0.0;
    }
    (total - idle) / total * 100.0
}

fn history(ws: &mut tungstenite::WebSocket<TcpStream>, req: &str) -> Value {
    json(&ask(ws, req))
}

fn times(h: &Value) -> Vec<u64> {
    h["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sampled_at_ms"].as_u64().unwrap())
        .collect()
}

#[test]
fn history_holds_a_sample_a_second_that_agrees_with_proc_stat() {
    let agent = Agent::start(&["--history", "60"], &[]);
    // This test's own readings of /proc/stat, every 50 ms, for 21 s; a
    // client polls metrics meanwhile (as the TUI does), which must not
    // bunch the ring's samples.
    let mut readings = Vec::new();
    let mut poller = agent.ws();
    let start = Instant::now();
    let mut last_poll = Instant::now();
    while start.elapsed() < Duration::from_secs(21) {
        readings.push(stat_now());
        if last_poll.elapsed() >= Duration::from_millis(300) {
            assert!(json(&ask(&mut poller, "get_metrics"))["cpu_total"].is_number());
            last_poll = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    readings.push(stat_now());
    let mut ws = agent.ws();
    let h = history(&mut ws, r#"{"type":"history"}"#);
    assert_eq!(h["interval_ms"], 1000, "{h}");
    assert_eq!(h["capacity"], 60, "{h}");
    let samples = h["samples"].as_array().unwrap();
    assert!(samples.len() >= 18, "{} samples after 21 s", samples.len());
    let ts = times(&h);
    for w in ts.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (800..=1200).contains(&gap),
            "samples {gap} ms apart: {ts:?}"
        );
    }
    let ncpu = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let nearest = |t: u64| {
        *readings
            .iter()
            .min_by_key(|r| (r.0 as i64 - t as i64).abs())
            .unwrap()
    };
    // Each sample's cpu_total is over the second since the one before:
    // the test's own readings nearest both ends agree (they are at most
    // 25 ms off each end), and over the whole run they agree closely.
    let mut diffs = Vec::new();
    for w in samples.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert_eq!(b["cpu_per_core"].as_array().unwrap().len(), ncpu, "{b}");
        assert!(b["mem_used"].as_u64().unwrap() > 0, "{b}");
        let t0 = a["sampled_at_ms"].as_u64().unwrap();
        let t1 = b["sampled_at_ms"].as_u64().unwrap();
        if t0 < readings[0].0 {
            continue;
        }
        let mine = busy(nearest(t0), nearest(t1));
        let theirs = b["cpu_total"].as_f64().unwrap();
        diffs.push((mine - theirs).abs());
    }
    assert!(diffs.len() >= 15, "{diffs:?}");
    diffs.sort_by(|a, b| a.total_cmp(b));
    let median = diffs[diffs.len() / 2];
    assert!(
        median <= 8.0,
        "cpu_total is not /proc/stat's over each second: median difference {median:.1} points ({diffs:?})"
    );
    let (first, last) = (samples.first().unwrap(), samples.last().unwrap());
    let whole = busy(
        nearest(first["sampled_at_ms"].as_u64().unwrap()),
        nearest(last["sampled_at_ms"].as_u64().unwrap()),
    );
    let span: Vec<(f64, f64)> = samples
        .windows(2)
        .map(|w| {
            let dt = (w[1]["sampled_at_ms"].as_u64().unwrap()
                - w[0]["sampled_at_ms"].as_u64().unwrap()) as f64;
            (dt, w[1]["cpu_total"].as_f64().unwrap())
        })
        .collect();
    let weighted =
        span.iter().map(|(dt, v)| dt * v).sum::<f64>() / span.iter().map(|x| x.0).sum::<f64>();
    assert!(
        (whole - weighted).abs() <= 3.0,
        "over the whole run: /proc/stat {whole:.1}%, the ring {weighted:.1}%"
    );
    // the interfaces named are this machine's
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    for name in h["interfaces"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            dev.contains(&format!("{name}:")),
            "{name} is not in /proc/net/dev"
        );
    }
    let n = h["interfaces"].as_array().unwrap().len();
    assert_eq!(last["net_rx_bytes_per_s"].as_array().unwrap().len(), n);

    // since_ms: only newer samples, oldest first; gzip: the same JSON in a binary frame
    let pivot = ts[ts.len() / 2];
    let newer = history(
        &mut ws,
        &format!(r#"{{"type":"history","since_ms":{pivot}}}"#),
    );
    let nts = times(&newer);
    assert!(!nts.is_empty());
    assert!(nts.iter().all(|t| *t > pivot), "{nts:?} after {pivot}");
    assert_eq!(
        nts[..],
        times(&history(&mut ws, "get_history"))
            .into_iter()
            .filter(|t| *t > pivot)
            .collect::<Vec<_>>()[..nts.len()],
    );
    let none = history(
        &mut ws,
        &format!(r#"{{"type":"history","since_ms":{}}}"#, epoch_ms() + 60_000),
    );
    assert_eq!(none["samples"].as_array().unwrap().len(), 0, "{none}");
    let zipped = ask(&mut ws, r#"{"type":"history","gzip":true}"#);
    let Message::Binary(b) = &zipped else {
        panic!("gzip:true gave {zipped:?}")
    };
    assert_eq!(&b[..2], b"\x1f\x8b", "not gzip");
    let unzipped: Value = serde_json::from_slice(&gunzip_if_needed(b)).unwrap();
    assert!(unzipped["samples"].as_array().unwrap().len() >= 18);
    // bad since_ms: an error object, the connection stays
    let e = history(&mut ws, r#"{"type":"history","since_ms":"soon"}"#);
    assert!(e["error"].as_str().unwrap().contains("since_ms"), "{e}");
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());

    // /metrics reports the ring
    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    let bytes: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("sockagent_history_bytes "))
        .expect("sockagent_history_bytes")
        .parse()
        .unwrap();
    assert!(bytes > 0.0 && bytes < 1e6, "{bytes}");
    assert!(
        agent.log().contains("history: 60 samples"),
        "{}",
        agent.log()
    );
}

#[test]
fn history_off_answers_an_error_and_never_wakes() {
    let agent = Agent::start(&["--history", "0"], &[]);
    let mut ws = agent.ws();
    let e = history(&mut ws, r#"{"type":"history"}"#);
    assert_eq!(e["error"], "history is off (--history 0)", "{e}");
    assert_eq!(e["request"], r#"{"type":"history"}"#);
    let _ = ws.close(None);
    let _ = ws.flush();
    drop(ws);
    std::thread::sleep(Duration::from_millis(300));
    let before = ctxt_switches(agent.child.id());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        ctxt_switches(agent.child.id()),
        before,
        "woke with history off"
    );
    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    assert!(!body.contains("sockagent_history_bytes"), "{body}");
}

/// `key` (kB) from `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {s}"));
    kb * 1024.0
}

#[test]
fn the_ring_is_resident_from_the_start_and_does_not_grow() {
    // a day of samples: a ring far larger than the rest of the agent, so a
    // ring left to fault in as it fills would show at once
    let agent = Agent::start(&["--history", "86400"], &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    let ring = gauge(&body, "sockagent_history_bytes");
    assert!(ring > 10e6, "{body}");
    let pid = agent.child.id();
    let anon = status_bytes(pid, "RssAnon:");
    assert!(
        anon >= ring,
        "RssAnon {anon} B is under the ring's {ring} B: its pages come in as it fills"
    );
    std::thread::sleep(Duration::from_secs(3));
    let later = status_bytes(pid, "RssAnon:");
    assert!(
        later - anon < 64.0 * 1024.0,
        "RssAnon grew {} B in 3 s of history",
        later - anon
    );
}

#[test]
fn history_on_wakes_once_a_second_with_no_client() {
    let agent = Agent::start(&[], &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let before = ctxt_switches(agent.child.id());
    std::thread::sleep(Duration::from_secs(5));
    let n = ctxt_switches(agent.child.id()) - before;
    // one tick a second (a switch now and then from the scheduler)
    assert!((4..=8).contains(&n), "{n} wakeups in 5 s");
}

#[test]
fn a_subscriber_gets_frames_at_its_cadence_until_it_unsubscribes() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let r = history(
        &mut ws,
        r#"{"type":"subscribe","metrics_ms":500,"disks_ms":5000}"#,
    );
    assert_eq!(
        r,
        serde_json::json!({"subscribed": {"metrics_ms": 500, "disks_ms": 5000}})
    );
    // 6 s without asking: metrics frames every 500 ms, disks every 5 s
    let t0 = Instant::now();
    let (mut metrics, mut disks) = (Vec::new(), 0);
    while t0.elapsed() < Duration::from_secs(6) {
        let v = json(&next(&mut ws));
        if v.is_array() {
            disks += 1;
        } else {
            assert!(v["cpu_total"].is_number(), "{v}");
            metrics.push((t0.elapsed(), v["sampled_at_ms"].as_u64().unwrap()));
        }
    }
    assert!((11..=13).contains(&metrics.len()), "{metrics:?}");
    assert!((1..=2).contains(&disks), "{disks} disks frames in 6 s");
    for w in metrics.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!((450..=550).contains(&gap), "metrics frames {gap} ms apart");
    }

    // requests still get one answer each, in order, between the pushes
    for req in [
        r#"{"type":"cgroups"}"#,
        r#"{"type":"history","since_ms":0}"#,
        "bogus",
        "get_processes",
    ] {
        send(&mut ws, Message::text(req));
    }
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let m = next(&mut ws);
        let kind = match &m {
            Message::Binary(_) => "processes",
            _ => {
                let v = json(&m);
                if v.get("cpu_total").is_some() {
                    continue; // a push
                } else if v.is_array() && kinds.is_empty() {
                    "cgroups"
                } else if v.is_array() {
                    continue; // a disks push
                } else if v.get("samples").is_some() {
                    "history"
                } else if v.get("error").is_some() {
                    "error"
                } else {
                    panic!("unexpected {v}")
                }
            }
        };
        kinds.push(kind);
    }
    assert_eq!(kinds, ["cgroups", "history", "error", "processes"]);

    // unsubscribe: its answer, then nothing unasked
    send(&mut ws, Message::text(r#"{"type":"unsubscribe"}"#));
    loop {
        let v = json(&next(&mut ws));
        if v.get("subscribed").is_some() {
            assert_eq!(v, serde_json::json!({"subscribed": {}}));
            break;
        }
    }
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a frame after unsubscribe: {other:?}"),
    }
    // below the guide's minimum: an error object, nothing subscribed
    ws.get_mut().set_read_timeout(Some(TIMEOUT)).unwrap();
    let e = history(&mut ws, r#"{"type":"subscribe","processes_ms":500}"#);
    assert!(e["error"].as_str().unwrap().contains("processes_ms"), "{e}");
}

/// Raw WebSocket client pieces for a subscriber that stops reading: a
/// small receive buffer set before connecting, so the agent's socket fills.
fn raw_subscriber(port: u16, req: &str) -> TcpStream {
    use std::os::fd::AsRawFd;
    let s = socket_with_rcvbuf(2048);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let sa = libc_sockaddr(&addr);
    // SAFETY: a valid socket and sockaddr_in of the right length.
    let r = unsafe {
        libc::connect(
            s.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    let mut s = s;
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    // one masked text frame
    let p = req.as_bytes();
    let mut f = vec![0x81, 0x80 | p.len() as u8, 1, 2, 3, 4];
    f.extend(p.iter().enumerate().map(|(i, c)| c ^ [1, 2, 3, 4][i % 4]));
    s.write_all(&f).unwrap();
    s
}

fn socket_with_rcvbuf(bytes: libc::c_int) -> TcpStream {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls; the fd is owned by the TcpStream after.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0);
        TcpStream::from_raw_fd(fd)
    }
}

fn libc_sockaddr(a: &std::net::SocketAddr) -> libc::sockaddr_in {
    let std::net::SocketAddr::V4(v4) = a else {
        panic!("v4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn gauge(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn a_subscriber_that_stops_reading_holds_one_frame_per_stream_at_most() {
    let agent = Agent::start(&[], &[]);
    let mut stuck = raw_subscriber(
        agent.port,
        r#"{"type":"subscribe","metrics_ms":500,"processes_ms":2000,"disks_ms":5000}"#,
    );
    // A live subscriber beside it keeps getting every frame.
    let mut live = agent.ws();
    let _ = history(&mut live, r#"{"type":"subscribe","metrics_ms":500}"#);
    // It never reads. Once its socket is full, newer frames replace the
    // waiting one: never more than one per stream, however long it stays.
    let t0 = Instant::now();
    let mut coalesced = 0.0;
    let mut live_frames = 0;
    let mut max_pending = 0.0f64;
    while t0.elapsed() < Duration::from_secs(40) {
        let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
        let pending = gauge(&body, "sockagent_push_pending_frames");
        max_pending = max_pending.max(pending);
        assert!(
            pending <= 3.0,
            "{pending} frames pending for one stuck subscriber"
        );
        coalesced = gauge(&body, "sockagent_push_coalesced_total");
        assert_eq!(
            gauge(&body, "sockagent_subscribers{stream=\"metrics\"}"),
            2.0
        );
        if coalesced >= 10.0 && t0.elapsed() > Duration::from_secs(15) {
            break;
        }
        for _ in 0..2 {
            assert!(json(&next(&mut live))["cpu_total"].is_number());
            live_frames += 1;
        }
    }
    assert!(
        coalesced >= 10.0,
        "the stuck subscriber's socket never filled ({coalesced} coalesced in {:?})",
        t0.elapsed()
    );
    assert!(max_pending >= 1.0);
    assert!(live_frames >= 20, "{live_frames}");
    // It is still connected (well under SOCKAGENT_MAX_QUEUED_BYTES), and
    // once it reads again, what comes is fresh: within a few seconds it
    // reads a metrics frame sampled in the last 2 s.
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let started = epoch_ms();
    let mut text = Vec::new();
    let fresh = loop {
        let n = stuck
            .read(&mut buf)
            .expect("the stuck subscriber was dropped");
        assert!(n > 0, "closed");
        text.extend_from_slice(&buf[..n]);
        let s = String::from_utf8_lossy(&text);
        let newest = s
            .rmatch_indices("\"sampled_at_ms\":")
            .filter_map(|(i, k)| {
                let rest = &s[i + k.len()..];
                let d: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                (d.len() == 13).then(|| d.parse::<u64>().ok()).flatten()
            })
            .next();
        if let Some(t) = newest {
            if t + 2000 >= epoch_ms() {
                break t;
            }
        }
        assert!(epoch_ms() < started + 10_000, "no fresh frame after 10 s");
        if text.len() > 1 << 22 {
            text.drain(..text.len() - (1 << 16));
        }
    };
    assert!(fresh > started - 2000);
    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    assert!(gauge(&body, "sockagent_push_frames_total") > 0.0);
}
