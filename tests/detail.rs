//! process_metrics and journal_entries: the 1.60 TUI's process window.

mod common;
use common::*;
use socktop_connector::{JournalResponse, ProcessMetricsResponse};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tungstenite::Message;

fn text(m: &Message) -> String {
    match m {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn process_metrics_of_this_test_and_its_child() {
    let agent = Agent::start(&[], &[]);
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let b = stop.clone();
            std::thread::spawn(move || {
                b.wait();
            })
        })
        .collect();
    let me = std::process::id();
    let mut ws = agent.ws();
    for req in [
        format!("get_process_metrics:{me}"),
        format!(r#"{{"type":"process_metrics","pid":{me}}}"#),
    ] {
        let r: ProcessMetricsResponse =
            serde_json::from_str(&text(&ask(&mut ws, &req))).expect("connector type");
        let p = &r.process;
        assert_eq!(p.pid, me);
        let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
        let argv0 =
            String::from_utf8_lossy(cmdline.split(|&b| b == 0).next().unwrap()).into_owned();
        assert!(p.command.starts_with(&argv0), "{} vs {argv0}", p.command);
        assert!(p.thread_count >= 4, "{}", p.thread_count);
        assert!(p.threads.len() >= 4);
        assert!(p.threads.iter().any(|t| t.tid == me));
        assert!(
            p.child_processes
                .iter()
                .any(|c| c.pid == child.id() && c.name == "sleep"),
            "{:?}",
            p.child_processes
        );
        assert_eq!(p.parent_pid, Some(std::os::unix::process::parent_id()));
        assert!(p.mem_bytes > 0 && p.virtual_mem_bytes >= p.mem_bytes);
        assert!(p.fd_count.is_some_and(|n| n >= 3));
        assert!(p.working_directory.is_some() && p.executable_path.is_some());
        assert!(p.start_time > 1_600_000_000);
        assert!(r.cached_at > 1_600_000_000);
        assert!(p.cpu_usage.is_finite() && p.cpu_usage >= 0.0);
    }
    // The cgroup holding the process: one of its /proc/PID/cgroup paths
    // (the cgroups answer's naming), and only for the process asked for.
    let v = common::json(&ask(&mut ws, &format!("get_process_metrics:{me}")));
    let cg = v["process"]["cgroup"]
        .as_str()
        .expect("a cgroup path")
        .to_string();
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(
        mine.lines()
            .any(|l| l.rsplit(':').next() == Some(cg.as_str())),
        "{cg} not in {mine}"
    );
    assert!(v["process"]["child_processes"][0]["cgroup"].is_null());
    stop.wait();
    for t in threads {
        t.join().unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn process_metrics_errors_name_the_pid() {
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let e = json(&ask(&mut ws, "get_process_metrics:4000000"));
    assert_eq!(e["pid"], 4000000);
    assert!(e["error"].as_str().unwrap().contains("no such process"));
    let e = json(&ask(&mut ws, r#"{"type":"process_metrics","pid":0}"#));
    assert_eq!(e["pid"], 0);
    assert!(json(&ask(&mut ws, r#"{"type":"process_metrics"}"#))["error"].is_string());
    assert!(json(&ask(&mut ws, "get_process_metrics:x1"))["error"].is_string());
    assert!(json(&ask(&mut ws, "get_journal_entries:"))["error"].is_string());
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    writeln!(f, "#!/bin/sh\n{body}").unwrap();
    drop(f);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_string_lossy().into_owned()
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sockagent-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn journal_entries_from_a_stand_in_journalctl() {
    let dir = tempdir("journal");
    let args_file = dir.join("args");
    let cmd = script(
        &dir,
        "journalctl",
        &format!(
            r#"echo "$@" > {}
echo '{{"__REALTIME_TIMESTAMP":"1700000000000000","PRIORITY":"4","MESSAGE":"low disk","_PID":"77","_COMM":"df","_UID":"1000","_GID":"1000","_SYSTEMD_UNIT":"x.service"}}'
echo '{{"__REALTIME_TIMESTAMP":"1700000001000000","PRIORITY":"6","MESSAGE":"ok","_PID":"77"}}'"#,
            args_file.display()
        ),
    );
    let agent = Agent::start(&[], &[("SOCKAGENT_JOURNALCTL", &cmd)]);
    let mut ws = agent.ws();
    // a pid that exists (the reader is started for no other)
    let me = std::process::id();
    for req in [
        format!("get_journal_entries:{me}"),
        format!(r#"{{"type":"journal_entries","pid":{me}}}"#),
    ] {
        let r: JournalResponse =
            serde_json::from_str(&text(&ask(&mut ws, &req))).expect("connector type");
        assert_eq!(r.entries.len(), 2);
        assert_eq!(r.total_count, 2);
        assert!(!r.truncated);
        assert!(r.notice.is_none());
        let e = &r.entries[0];
        assert!(matches!(e.priority, socktop_connector::LogLevel::Warning));
        assert_eq!(e.message, "low disk");
        assert_eq!(e.timestamp, "2023-11-14T22:13:20.000000Z");
        assert_eq!(
            (e.pid, e.uid, e.unit.as_deref()),
            (Some(77), Some(1000), Some("x.service"))
        );
    }
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(
        args.trim(),
        format!("_PID={me} -b -o json -n 100 --no-pager")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn slow_journal_answers_in_time_and_stalls_nobody() {
    let dir = tempdir("slowjournal");
    let cmd = script(&dir, "journalctl", "exec sleep 5");
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_JOURNALCTL", &cmd),
            ("SOCKTOP_AGENT_METRICS_TTL_MS", "0"),
        ],
    );
    let mut a = agent.ws();
    let mut b = agent.ws();
    let t0 = Instant::now();
    a.send(Message::text("get_journal_entries:1")).unwrap();
    a.send(Message::text("get_metrics")).unwrap();
    // Another client is served while the journal read runs.
    let m = json(&ask(&mut b, "get_metrics"));
    assert!(m["cpu_total"].is_number());
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "metrics waited for the journal: {:?}",
        t0.elapsed()
    );
    // The slow one answers by its deadline, with a notice, then the next in order.
    let r: JournalResponse = serde_json::from_str(&text(&next(&mut a))).unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(1600),
        "journal answer took {took:?}"
    );
    assert!(r.entries.is_empty());
    assert!(r.notice.unwrap().contains("did not answer"));
    assert!(json(&next(&mut a))["cpu_total"].is_number());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The children of `parent` that are zombies (state Z in /proc/PID/stat).
fn zombie_children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) STATE PPID ...: fields after the last ')'
        let mut f = stat[stat.rfind(')').unwrap() + 1..].split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<u32>().ok()));
        if ppid == Some(parent) && state == Some("Z") {
            out.push(pid);
        }
    }
    out
}

#[test]
fn journal_reader_runs_clean_for_this_boot_and_is_reaped_at_its_deadline() {
    let dir = tempdir("journalenv");
    let seen = dir.join("seen");
    // records its argv and the environment it was started with, then hangs
    let cmd = script(
        &dir,
        "journalctl",
        &format!(
            "{{ echo \"ARGS $*\"; tr '\\0' '\\n' < /proc/$$/environ; }} > {}\nexec sleep 5",
            seen.display()
        ),
    );
    let token = "journal-test-token";
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_JOURNALCTL", &cmd),
            ("SOCKTOP_TOKEN", token),
            ("SOCKAGENT_TEST_SECRET", "nope"),
        ],
    );
    let (mut ws, _) = connect(&format!("{}?token={token}", agent.url()), None);
    let r: JournalResponse =
        serde_json::from_str(&text(&ask(&mut ws, "get_journal_entries:1"))).unwrap();
    assert!(r.entries.is_empty());
    assert!(
        r.notice.unwrap().contains("did not answer"),
        "the deadline's notice"
    );
    // reaped: within a second no child of the agent is a zombie
    let t0 = Instant::now();
    let mut zombies = zombie_children(agent.child.id());
    while !zombies.is_empty() && t0.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(20));
        zombies = zombie_children(agent.child.id());
    }
    assert!(zombies.is_empty(), "zombie journal children: {zombies:?}");
    let seen = std::fs::read_to_string(&seen).expect("the journal command ran");
    let mut lines = seen.lines();
    let args = lines.next().unwrap();
    assert!(
        args.split_whitespace()
            .any(|a| a == "-b" || a.starts_with("--boot")),
        "limited to this boot: {args}"
    );
    let mut keys: Vec<&str> = lines.filter_map(|l| l.split('=').next()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["LANG", "PATH"], "its whole environment:\n{seen}");
    assert!(!seen.contains(token));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn journal_for_a_pid_that_does_not_exist_starts_nothing() {
    let dir = tempdir("journalnopid");
    let marker = dir.join("ran");
    let cmd = script(&dir, "journalctl", &format!("touch {}", marker.display()));
    let agent = Agent::start(&[], &[("SOCKAGENT_JOURNALCTL", &cmd)]);
    let mut ws = agent.ws();
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = pid_max + 1;
    for req in [
        format!("get_journal_entries:{gone}"),
        format!(r#"{{"type":"journal_entries","pid":{gone}}}"#),
    ] {
        let e = json(&ask(&mut ws, &req));
        assert_eq!(e["pid"], gone, "{e}");
        assert_eq!(e["error"], format!("no such process: {gone}"), "{e}");
    }
    // the next answer in order; the command never ran
    assert!(json(&ask(&mut ws, "get_metrics"))["cpu_total"].is_number());
    assert!(!marker.exists(), "the journal command was started");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_journal_command_is_a_notice() {
    let agent = Agent::start(&[], &[("SOCKAGENT_JOURNALCTL", "/nonexistent/journalctl")]);
    let mut ws = agent.ws();
    let r: JournalResponse =
        serde_json::from_str(&text(&ask(&mut ws, "get_journal_entries:1"))).unwrap();
    assert!(r.entries.is_empty());
    let notice = r.notice.unwrap();
    // Under qemu-user a failed exec shows as a child that exits at once.
    assert!(
        notice.contains("cannot run") || (emulated() && !notice.is_empty()),
        "{notice}"
    );
}

#[test]
fn hostile_process_names_stay_valid() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempdir("hostile");
    // comm is the first 15 bytes of the file name: parens, spaces, a newline
    // and a byte that is not UTF-8.
    let name = std::ffi::OsStr::from_bytes(b"(a b)\n\xff) x");
    let exe = dir.join(name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    // Other tests fork while the copy's write fd is open: ETXTBSY, retry.
    let mut child = (0..50)
        .find_map(
            |_| match std::process::Command::new(&exe).arg("30").spawn() {
                Ok(c) => Some(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    None
                }
            },
        )
        .expect("spawn the oddly named copy of sleep");
    std::thread::sleep(Duration::from_millis(100));
    let agent = Agent::start(&[], &[]);
    let mut ws = agent.ws();
    let (_, rows) = decode_processes(&binary(&ask(&mut ws, "get_processes")));
    let row = rows.iter().find(|p| p.pid == child.id()).expect("listed");
    assert!(row.name.starts_with("(a b)\n"), "{:?}", row.name);
    let r: ProcessMetricsResponse = serde_json::from_str(&text(&ask(
        &mut ws,
        &format!("get_process_metrics:{}", child.id()),
    )))
    .unwrap();
    assert!(r.process.name.starts_with("(a b)\n"));
    assert!(r.process.command.contains("30"));
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}
