//! Faults: vanishing processes, unreadable /proc files, fd exhaustion,
//! clients that vanish or never read, too many clients, a non-root agent.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::Message;

#[test]
fn processes_exiting_during_scans_never_fail_an_answer() {
    let agent = Agent::start(&[], &[("SOCKTOP_AGENT_PROCESSES_TTL_MS", "0")]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let churn = std::thread::spawn(move || {
        let mut n = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = std::process::Command::new("true").status();
            n += 1;
        }
        n
    });
    let mut ws = agent.ws();
    for _ in 0..60 {
        let (count, rows) = decode_processes(&binary(&ask(&mut ws, "get_processes")));
        assert_eq!(count as usize, rows.len());
        assert!(rows.iter().any(|p| p.pid == std::process::id()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(churn.join().unwrap() > 10, "processes really came and went");
}

/// A /proc tree where some pids cannot be read: a stat that is a directory
/// (read fails), one that is garbage, one with no io/cwd/exe.
fn broken_proc_tree() -> std::path::PathBuf {
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h200-vm/proc");
    let root = std::env::temp_dir().join(format!("sockagent-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let proc = root.join("proc");
    for d in ["100", "200/stat", "300", "net", "self", "sys/kernel"] {
        std::fs::create_dir_all(proc.join(d)).unwrap();
    }
    for f in ["stat", "meminfo", "net/dev", "self/mountinfo"] {
        std::fs::copy(format!("{fx}/{f}"), proc.join(f)).unwrap();
    }
    std::fs::write(proc.join("sys/kernel/hostname"), "brokenhost\n").unwrap();
    std::fs::copy(format!("{fx}/413/stat"), proc.join("100/stat")).unwrap();
    std::fs::copy(format!("{fx}/413/cmdline"), proc.join("100/cmdline")).unwrap();
    std::fs::write(proc.join("300/stat"), "300 (half").unwrap();
    root
}

#[test]
fn unreadable_proc_files_give_nulls_or_skipped_rows() {
    let root = broken_proc_tree();
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", root.to_str().unwrap())]);
    let mut ws = agent.ws();
    let (count, rows) = decode_processes(&binary(&ask(&mut ws, "get_processes")));
    assert_eq!((count, rows.len()), (1, 1), "{rows:?}");
    assert_eq!(rows[0].pid, 100);
    let d = json(&ask(&mut ws, "get_process_metrics:100"));
    let p = &d["process"];
    assert_eq!(p["pid"], 100);
    for k in [
        "read_bytes",
        "write_bytes",
        "working_directory",
        "executable_path",
        "fd_count",
    ] {
        assert!(p[k].is_null(), "{k}: {p}");
    }
    for bad in [200, 300] {
        let e = json(&ask(&mut ws, &format!("get_process_metrics:{bad}")));
        assert_eq!(e["pid"], bad);
    }
    let m = json(&ask(&mut ws, "get_metrics"));
    assert_eq!(m["hostname"], "brokenhost");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn out_of_file_descriptors_keeps_serving_and_recovers() {
    const LIMIT: libc::rlim_t = 48;
    let agent = Agent::start_with(&[], &[("SOCKAGENT_HANDSHAKE_TIMEOUT_MS", "60000")], || {
        let l = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: LIMIT,
        };
        // SAFETY: plain syscall in the child before exec.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    });
    let mut ws = agent.ws();
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
    // More connections than the agent has descriptors for.
    let flood: Vec<TcpStream> = (0..LIMIT as usize + 20)
        .map(|_| TcpStream::connect(("127.0.0.1", agent.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        agent.log().contains("retrying"),
        "the agent saw EMFILE: {}",
        agent.log()
    );
    // The connection it has keeps being served.
    for _ in 0..3 {
        assert!(json(&ask(&mut ws, "get_metrics"))["mem_total"].is_u64());
    }
    // Free the descriptors: new clients are accepted again.
    drop(flood);
    let t0 = Instant::now();
    let mut ws2 = loop {
        let s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        match tungstenite::client::client(agent.url(), s) {
            Ok((ws, _)) => break ws,
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "never accepted again: {e}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert!(json(&ask(&mut ws2, "get_metrics"))["cpu_total"].is_number());
}

#[test]
fn a_client_vanishing_mid_write_hurts_nobody() {
    let mut agent = Agent::start(&[], &[("SOCKTOP_AGENT_PROCESSES_TTL_MS", "0")]);
    for _ in 0..5 {
        let mut ws = agent.ws();
        for _ in 0..200 {
            ws.send(Message::text("get_processes")).unwrap();
        }
        // Reset the connection with answers still being written.
        let s = ws.get_mut();
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: setsockopt on our own socket with a valid linger struct.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&l as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(ws);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent died (SIGPIPE?)"
    );
    let mut ws = agent.ws();
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
}

#[test]
fn a_client_that_never_reads_is_dropped_at_its_output_cap() {
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_MAX_QUEUED_BYTES", "65536"),
            ("SOCKTOP_AGENT_PROCESSES_TTL_MS", "60000"),
        ],
    );
    let mut hog = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    hog.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    // Masked text frames "get_processes" (mask 0), never reading the answers.
    let mut frame = vec![0x81, 0x80 | 13, 0, 0, 0, 0];
    frame.extend_from_slice(b"get_processes");
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    while !agent.log().contains("not reading its answers") {
        if hog.write_all(&frame.repeat(100)).is_err() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never dropped");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        agent.log().contains("not reading its answers"),
        "{}",
        agent.log()
    );
    let mut ws = agent.ws();
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
}

#[test]
fn over_max_connections_gets_503_before_upgrade() {
    let agent = Agent::start(&[], &[("SOCKAGENT_MAX_CONNECTIONS", "2")]);
    let mut a = agent.ws();
    let mut b = agent.ws();
    let r = agent.http("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
    assert!(json(&ask(&mut a, "get_metrics"))["cpu_total"].is_number());
    assert!(json(&ask(&mut b, "get_disks")).is_array());
}

#[test]
fn runs_as_an_unprivileged_user() {
    // nobody: everything works; other users' process details lose io/cwd/exe.
    let agent = Agent::start_with(&[], &[], || {
        // SAFETY: plain syscalls in the child before exec.
        unsafe {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    });
    let mut ws = agent.ws();
    assert!(
        json(&ask(&mut ws, "get_metrics"))["mem_total"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(!json(&ask(&mut ws, "get_disks"))
        .as_array()
        .unwrap()
        .is_empty());
    let (_, rows) = decode_processes(&binary(&ask(&mut ws, "get_processes")));
    assert!(
        rows.iter().any(|p| p.pid == std::process::id()),
        "root's processes are listed too"
    );
    let me = std::process::id();
    let d = json(&ask(&mut ws, &format!("get_process_metrics:{me}")));
    assert_eq!(d["process"]["pid"], me);
    assert!(d["process"]["executable_path"].is_null());
    assert!(d["process"]["read_bytes"].is_null());
    let own = json(&ask(
        &mut ws,
        &format!("get_process_metrics:{}", agent.child.id()),
    ));
    assert!(
        own["process"]["executable_path"].is_string(),
        "its own process stays fully readable"
    );
    let mut buf = [0u8; 1];
    let _ = TcpStream::connect(("127.0.0.1", agent.port))
        .unwrap()
        .read(&mut buf);
}

#[test]
fn idle_timeout_closes_silent_clients_only_when_set() {
    let agent = Agent::start(&[], &[("SOCKAGENT_IDLE_TIMEOUT_MS", "400")]);
    let mut talker = agent.ws();
    let mut silent = agent.ws();
    assert!(json(&ask(&mut silent, "get_metrics"))["cpu_total"].is_number());
    // the talker keeps asking; the silent one says nothing for > 400 ms
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(100));
        assert!(json(&ask(&mut talker, "get_metrics"))["cpu_total"].is_number());
    }
    match silent.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(
            f.code,
            tungstenite::protocol::frame::coding::CloseCode::Away
        ),
        other => panic!("expected an idle close, got {other:?}"),
    }
    assert!(json(&ask(&mut talker, "get_disks")).is_array());
    // off by default: a client silent for longer stays connected
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    std::thread::sleep(Duration::from_millis(600));
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
}
