//! The three core requests over real sockets against this machine's /proc.

mod common;
use common::*;
use std::time::Duration;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

#[test]
fn metrics_match_proc() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let m = json(&ask(&mut ws, r#"{"type":"metrics"}"#));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(m["hostname"], host.trim());
    assert_eq!(
        m["mem_total"].as_u64().unwrap(),
        meminfo_kb("MemTotal") * 1024
    );
    let used = m["mem_used"].as_u64().unwrap();
    assert!(used > 0 && used < m["mem_total"].as_u64().unwrap());
    assert_eq!(
        m["swap_total"].as_u64().unwrap(),
        meminfo_kb("SwapTotal") * 1024
    );
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let ncpu = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let cores = m["cpu_per_core"].as_array().unwrap();
    assert_eq!(cores.len(), ncpu);
    for c in cores.iter().chain([&m["cpu_total"]]) {
        let v = c.as_f64().unwrap();
        assert!((0.0..=100.0).contains(&v), "{v}");
    }
    let nets = m["networks"].as_array().unwrap();
    let lo = nets.iter().find(|n| n["name"] == "lo").expect("lo listed");
    assert!(
        lo["received"].as_u64().unwrap() > 0,
        "our own loopback traffic counts"
    );
    // the fields the real clients require
    assert_eq!(m["disks"], serde_json::json!([]));
    assert_eq!(m["top_processes"], serde_json::json!([]));
    // null on a host without GPUs (this machine, CI), a list elsewhere
    assert!(m["gpus"].is_null() || m["gpus"].is_array(), "{m}");
    assert!(m["sampled_at_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(m["process_count"].as_u64().unwrap() > 1);
    assert!(m.get("cpu_temp_c").is_some());
}

#[test]
fn first_metrics_answer_has_a_real_cpu_window() {
    // Burn CPU on one core while the agent starts: a window of microseconds
    // (the reference's first answer) would report 0 on every core.
    let burner = Burner::start();
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let m = json(&ask(&mut ws, "get_metrics"));
    drop(burner);
    let max = m["cpu_per_core"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(max > 20.0, "a busy core must show on the first answer: {m}");
    assert!(m["cpu_total"].as_f64().unwrap() > 0.0);
}

#[test]
fn disks_match_statvfs_of_root() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let d = json(&ask(&mut ws, "get_disks"));
    let rows = d.as_array().unwrap();
    assert!(!rows.is_empty());
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_src = mi
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let sep = f.iter().position(|x| *x == "-")?;
            (f[4] == "/").then(|| f[sep + 2].to_string())
        })
        .unwrap();
    let (total, _) = sockagent::collect::disks::statvfs(std::path::Path::new("/")).unwrap();
    for r in rows {
        let name = r["name"].as_str().unwrap();
        assert!(!name.starts_with("/dev/"), "{name}");
        assert!(r["available"].as_u64().unwrap() <= r["total"].as_u64().unwrap());
        assert!(r.get("is_partition").is_some() && r.get("temperature").is_some());
    }
    if let Some(name) = root_src.strip_prefix("/dev/").filter(|n| *n != "root") {
        let row = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {d}"));
        assert_eq!(row["total"].as_u64().unwrap(), total);
    }
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut dedup = names.clone();
    dedup.dedup();
    assert_eq!(names, dedup, "no duplicates");
}

#[test]
fn processes_list_us_with_comm_and_rss() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let raw = binary(&ask(&mut ws, r#"{"type":"processes"}"#));
    assert!(raw.len() > 768 || !raw.starts_with(&[0x1f, 0x8b]));
    let (count, rows) = decode_processes(&raw);
    assert_eq!(count as usize, rows.len());
    let me = std::process::id();
    let mine = rows
        .iter()
        .find(|p| p.pid == me)
        .expect("the test process is listed");
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(mine.name, comm.trim_end_matches('\n'));
    let rss = meminfo_self_rss();
    assert!(
        mine.mem > rss / 4 && mine.mem < rss * 4,
        "{} vs {}",
        mine.mem,
        rss
    );
    let agent_row = rows
        .iter()
        .find(|p| p.pid == agent.child.id())
        .expect("the agent is listed");
    // Under qemu-user the agent's comm is the emulator's.
    if !emulated() {
        assert_eq!(agent_row.name, "sockagent");
    }
    assert!(rows.iter().all(|p| (0.0..=100.0).contains(&p.cpu)));
    // A full process list is far over 768 bytes: it must arrive gzipped.
    assert_eq!(&raw[..2], &[0x1f, 0x8b]);
}

/// The pids of one `get_processes` answer.
fn listed(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> Vec<u32> {
    let (_, rows) = decode_processes(&binary(&ask(ws, "get_processes")));
    rows.iter().map(|p| p.pid).collect()
}

/// The agent lists /proc again only when the kernel made a pid since its
/// last listing: a process started between two answers must be in the
/// second, and one that ended must be gone from it.
#[test]
fn a_process_started_or_ended_between_two_answers_shows_in_the_next() {
    let agent = Agent::start(&[], &[("SOCKTOP_AGENT_PROCESSES_TTL_MS", "0")]);
    let mut ws = agent.ws();
    for _ in 0..3 {
        listed(&mut ws);
    }
    for _ in 0..3 {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(listed(&mut ws).contains(&pid), "{pid} started: listed");
        assert!(listed(&mut ws).contains(&pid), "{pid}: still listed");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!listed(&mut ws).contains(&pid), "{pid} reaped: gone");
    }
}

fn meminfo_self_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn first_process_answer_has_real_cpu_shares() {
    let burner = Burner::start();
    let agent = Agent::start(&[], &[]);
    std::thread::sleep(Duration::from_millis(300));
    let mut ws = agent.ws();
    let (_, rows) = decode_processes(&binary(&ask(&mut ws, "get_processes")));
    drop(burner);
    let me = rows.iter().find(|p| p.pid == std::process::id()).unwrap();
    assert!(
        me.cpu > 5.0,
        "a spinning test process shows CPU on the first answer: {me:?}"
    );
}

#[test]
fn both_forms_and_pipelining_in_order() {
    let agent = Agent::start(&[], &[("SOCKTOP_AGENT_METRICS_TTL_MS", "0")]);
    let mut ws = agent.ws();
    let reqs = [
        "get_metrics",
        r#"{"type":"disks"}"#,
        "get_processes",
        r#"{"type":"metrics"}"#,
        "get_disks",
        r#"{"type":"processes"}"#,
        "nonsense",
    ];
    let mut sent = Vec::new();
    for i in 0..20 {
        let r = reqs[i % reqs.len()];
        ws.send(Message::text(r)).unwrap();
        sent.push(r);
    }
    for r in sent {
        let m = next(&mut ws);
        match r {
            "get_metrics" | r#"{"type":"metrics"}"# => {
                assert!(json(&m)["cpu_total"].is_number(), "{r}")
            }
            "get_disks" | r#"{"type":"disks"}"# => assert!(json(&m).is_array(), "{r}"),
            "get_processes" | r#"{"type":"processes"}"# => assert!(!binary(&m).is_empty()),
            _ => assert!(json(&m)["error"].is_string()),
        }
    }
    // and nothing unasked follows
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    assert!(
        ws.read().is_err(),
        "no frame may arrive that was not asked for"
    );
}

#[test]
fn bad_input_gets_an_error_object_and_the_connection_lives() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    for bad in [
        "{",
        "",
        "   ",
        r#"{"type":"bogus"}"#,
        r#"{"type":3}"#,
        "get_process_metrics:abc",
        &"z".repeat(2000),
    ] {
        let e = json(&ask(&mut ws, bad));
        assert!(
            e["error"]
                .as_str()
                .is_some_and(|s| !s.is_empty() && !s.contains('\n')),
            "{bad:?}: {e}"
        );
        assert!(e["request"].as_str().unwrap().len() <= 64);
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    assert!(json(&next(&mut ws))["error"].is_string());
    let e = json(&ask(&mut ws, r#"{"type":"process_metrics","pid":0}"#));
    assert_eq!(e["pid"], 0);
    // still answering
    assert!(json(&ask(&mut ws, "get_metrics"))["mem_total"].is_u64());
    // ping → pong
    ws.send(Message::Ping(b"hi".to_vec().into())).unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"hi"),
        other => panic!("expected pong, got {other:?}"),
    }
}

#[test]
fn oversized_frame_closes_with_1009() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    ws.send(Message::text("x".repeat(100_000))).unwrap();
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Size),
        Ok(m) => panic!("unexpected {m:?}"),
        Err(e) => panic!("expected a close frame, got {e}"),
    }
    // the agent is unaffected
    let mut ws2 = agent.ws();
    assert!(json(&ask(&mut ws2, "get_metrics"))["cpu_total"].is_number());
}

#[test]
fn http_surface() {
    let agent = Agent::start(&[], &[]);
    let r = agent.http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 ") && r.ends_with("ok\n"), "{r}");
    let r = agent.http("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
    let r = agent.http("POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    let r = agent.http("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let r = agent.http("\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    // one line of plain text after the head
    let body = r.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(body.trim_end().lines().count(), 1);
}

#[test]
fn token_refused_before_upgrade_and_never_logged() {
    let secret = "tok-8c1f!x";
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", secret)]);
    let key = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let r = agent.http(&format!("GET /ws HTTP/1.1\r\nHost: x\r\n{key}\r\n"));
    assert!(r.starts_with("HTTP/1.1 401 "), "{r}");
    let r = agent.http(&format!(
        "GET /ws?token=wrong HTTP/1.1\r\nHost: x\r\n{key}\r\n"
    ));
    assert!(r.starts_with("HTTP/1.1 401 "), "{r}");
    let url = format!("{}?token=tok-8c1f%21x", agent.url());
    let (mut ws, _) = connect(&url, None);
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !agent.log().contains(secret),
        "the token leaked into the log"
    );
}

#[test]
fn subprotocol_selected_only_when_offered() {
    let agent = Agent::start(&[], &[]);
    let (_, resp) = connect(&agent.url(), Some("socktop"));
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "socktop"
    );
    let (_, resp) = connect(&agent.url(), None);
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
}

#[test]
fn a_client_that_stops_reading_does_not_block_others() {
    let agent = Agent::start(&[], &[("SOCKTOP_AGENT_PROCESSES_TTL_MS", "100000")]);
    let mut hog = agent.ws();
    for _ in 0..2000 {
        hog.send(Message::text("get_processes")).unwrap();
    }
    let mut ws = agent.ws();
    for _ in 0..5 {
        assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
    }
}

#[test]
fn sigterm_closes_clients_and_exits_zero() {
    let mut agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) };
    match ws.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let _ = ws.flush();
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_flags_exit_2_with_one_line() {
    for (args, env, needle) in [
        (vec!["--port", "99999"], vec![], "--port"),
        (vec!["--wat"], vec![], "--wat"),
        (vec![], vec![("SOCKTOP_PORT", "x")], "SOCKTOP_PORT"),
        (
            vec![],
            vec![("SOCKTOP_AGENT_PROCESSES_TTL_MS", "soon")],
            "SOCKTOP_AGENT_PROCESSES_TTL_MS",
        ),
    ] {
        let out = agent_command().args(&args).envs(env).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
    let out = agent_command().arg("-V").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sockagent "));
    let out = agent_command().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("SOCKTOP_TOKEN"));
}

#[test]
fn fixture_root_serves_a_captured_machine() {
    let root = fixture("h200-vm");
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", &root)]);
    let mut ws = agent.ws();
    let m = json(&ask(&mut ws, "get_metrics"));
    assert_eq!(m["mem_total"].as_u64().unwrap(), 135_148_564_480);
    assert_eq!(m["cpu_per_core"].as_array().unwrap().len(), 16);
    assert!(m["cpu_temp_c"].is_null());
    let names: Vec<&str> = m["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
    let (count, rows) = decode_processes(&binary(&ask(&mut ws, "get_processes")));
    assert_eq!(count, 2);
    let mut pids: Vec<u32> = rows.iter().map(|p| p.pid).collect();
    pids.sort();
    assert_eq!(pids, [1, 413]);
}

#[test]
fn bench_subcommand_times_every_collector() {
    let out = agent_command().args(["bench", "-n", "3"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8_lossy(&out.stdout);
    for name in [
        "metrics",
        "disks",
        "processes",
        "process scan",
        "protobuf encode",
        "gzip",
        "process detail",
    ] {
        let line = s
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {s}"));
        let nums: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(nums.len(), 4, "{line}");
        assert!(
            nums[0] > 0.0 && nums[0] <= nums[1] && nums[1] <= nums[2],
            "{line}"
        );
    }
    assert!(s.contains("processes/s"));
}

/// The disks answer keeps the mount table between requests and re-reads it
/// only when the kernel says it changed: a mount and an unmount show at once.
/// Needs root and a loop device (CI runs as root).
#[test]
fn mounting_and_unmounting_a_disk_shows_at_once() {
    let dir = std::env::temp_dir().join(format!("sockagent-loop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    make_ext4(&img, 16 << 20);
    let run = run_root;
    let agent = Agent::start(&[], &[("SOCKTOP_AGENT_DISKS_TTL_MS", "0")]);
    let mut ws = agent.ws();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let before = names(&json(&ask(&mut ws, "get_disks")));
    run(
        "mount",
        &[
            "-o".as_ref(),
            "loop".as_ref(),
            img.as_os_str(),
            mnt.as_os_str(),
        ],
    );
    let after = json(&ask(&mut ws, "get_disks"));
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dev = mi
        .lines()
        .find(|l| l.contains(mnt.to_str().unwrap()))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|r| r.split_whitespace().nth(1))
        .unwrap()
        .trim_start_matches("/dev/")
        .to_string();
    let row = after
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == dev.as_str())
        .cloned();
    run("umount", &[mnt.as_os_str()]);
    let gone = names(&json(&ask(&mut ws, "get_disks")));
    let _ = std::fs::remove_dir_all(&dir);
    let row = row.unwrap_or_else(|| panic!("{dev} not in {after}"));
    let total = row["total"].as_u64().unwrap();
    assert!(total > 8 << 20 && total <= 16 << 20, "{row}");
    assert!(
        !before.contains(&dev) && !gone.contains(&dev),
        "{before:?} / {gone:?}"
    );
}

/// With no client connected and history off the agent sleeps in
/// epoll_wait with no timeout: no timer, cache or deadline wakes it (the
/// handshake deadline of a closed connection included). (History on ticks
/// once a second: tests/history.rs.)
#[test]
fn no_wakeups_while_no_client_is_connected() {
    let agent = Agent::start(
        &["--history", "0"],
        &[("SOCKAGENT_HANDSHAKE_TIMEOUT_MS", "500")],
    );
    {
        let mut ws = agent.ws();
        assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
        let _ = agent.http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        let _ = ws.close(None);
        let _ = ws.flush();
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = ctxt_switches(agent.child.id());
    // past every deadline those connections ever had
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ctxt_switches(agent.child.id()),
        before,
        "the idle agent woke up"
    );
}
