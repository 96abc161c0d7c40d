//! The agent's own alerts (issue 28), seen as a user sees them: the
//! `alerts` request and the `sockagent_alerts` family of `/metrics`, on a
//! copy of the hand-made Raspberry Pi 4 tree whose firmware reports
//! under-voltage now (`get_throttled` 0x50005, `in0_lcrit_alarm` 1); then
//! the agent delivering to Debian's real Alertmanager, reaching a webhook
//! served here as firing, then as resolved; and to one that answers 503.

mod common;
use common::*;
use serde_json::Value;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Asks `req` until `done` says yes of the answer (the history tick
/// evaluates once a second); the last answer.
fn ask_until(agent: &Agent, req: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut ws = agent.ws();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let v = json(&ask(&mut ws, req));
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting; last answer {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A copy of the hand-made Raspberry Pi 4 tree that a test may change.
fn pi_tree(what: &str) -> TempDir {
    let tree = TempDir::new(what);
    copy_tree(Path::new(&fixture("rpi4")), &tree.0);
    tree
}

/// The alert named `name` in an `alerts` answer.
fn alert<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

fn firing(v: &Value, name: &str) -> bool {
    v.as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["name"] == name && x["state"] == "firing")
    })
}

#[test]
fn under_voltage_fires_then_resolves_on_a_pi_tree() {
    let tree = pi_tree("alerts-rpi4");
    let root = tree.0.to_str().unwrap();
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", root), ("SOCKTOP_AGENT_GPU", "0")]);
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        firing(v, "NodeUnderVoltage")
    });
    let under = alert(&v, "NodeUnderVoltage");
    assert_eq!(under["severity"], "critical");
    assert_eq!(under["labels"], serde_json::json!({}));
    assert_eq!(under["summary"], "The board's supply voltage is too low.");
    let since = under["since_ms"].as_u64().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        since <= now_ms && now_ms - since < 60_000,
        "{since} {now_ms}"
    );
    // The firmware's "throttled now" bit: pending for its minute.
    assert_eq!(alert(&v, "NodeCpuThrottled")["state"], "pending", "{v}");

    let (status, body) = http_get(agent.port, "/metrics", "").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE sockagent_alerts gauge"), "{body}");
    assert!(
        body.contains(
            "sockagent_alerts{alertname=\"NodeUnderVoltage\",alertstate=\"firing\",severity=\"critical\"} 1\n"
        ),
        "{body}"
    );
    assert!(body.contains(
        "sockagent_alerts{alertname=\"NodeCpuThrottled\",alertstate=\"pending\",severity=\"warning\"} 1\n"
    ));

    // The legacy spelling answers the same list.
    let legacy = ask_until(&agent, "get_alerts", |v| firing(v, "NodeUnderVoltage"));
    assert!(legacy.is_array());

    // The firmware loses its "now" bits (the since-boot ones stay), the
    // hwmon alarm clears: the alert resolves and leaves the list.
    common::rpi4_recovers(&tree.0);
    // (Nothing else holds: the clock rule reads the host's clock, and
    // there is none under a fixture root.)
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        v.as_array().is_some_and(|a| a.is_empty())
    });
    assert_eq!(v, serde_json::json!([]));
    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    assert!(!body.contains("sockagent_alerts{"), "{body}");
}

/// `/proc/vmstat`'s `oom_kill` rises between two reads (every 10 s, on
/// the tick): `NodeOutOfMemoryKill` fires at once (`for` 0).
#[test]
fn an_oom_kill_fires_at_once() {
    let tree = pi_tree("alerts-oom");
    let vmstat = tree.0.join("proc/vmstat");
    std::fs::write(&vmstat, "nr_free_pages 1000\noom_kill 7\n").unwrap();
    let root = tree.0.to_str().unwrap();
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", root), ("SOCKTOP_AGENT_GPU", "0")]);
    // The first read is the base: nothing fires.
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        firing(v, "NodeUnderVoltage")
    });
    assert!(!firing(&v, "NodeOutOfMemoryKill"), "{v}");
    std::fs::write(&vmstat, "nr_free_pages 1000\noom_kill 8\n").unwrap();
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        firing(v, "NodeOutOfMemoryKill")
    });
    let oom = alert(&v, "NodeOutOfMemoryKill");
    assert_eq!(oom["severity"], "warning");
}

/// A container's cgroup at 95 % of its `memory.max` fires
/// `ServiceMemoryNearLimit` for it with nobody asking for cgroups (the
/// tick lists them once); when its `memory.current` drops, the tick's
/// memory-only re-read resolves it (no request lists them again).
#[test]
fn a_cgroup_near_its_memory_limit_fires_then_resolves() {
    let tree = pi_tree("alerts-cgroup");
    std::fs::create_dir_all(tree.0.join("sys/fs")).unwrap();
    copy_tree(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cgroup-v2/sys/fs"
        )),
        &tree.0.join("sys/fs"),
    );
    let scope = "/system.slice/docker-3f2a9c1be0d4a7f6c5b8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4.scope";
    let current = tree.0.join(format!("sys/fs/cgroup{scope}/memory.current"));
    // memory.max is 512 MiB: 95 %
    std::fs::write(&current, "510027366\n").unwrap();
    let file = tree.0.join("alerts.toml");
    std::fs::write(&file, "[ServiceMemoryNearLimit]\nfor = 0\n").unwrap();
    let root = tree.0.to_str().unwrap();
    let agent = Agent::start(
        &["--alerts", file.to_str().unwrap()],
        &[("SOCKAGENT_ROOT", root), ("SOCKTOP_AGENT_GPU", "0")],
    );
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        firing(v, "ServiceMemoryNearLimit")
    });
    let cg = alert(&v, "ServiceMemoryNearLimit");
    assert_eq!(cg["labels"], serde_json::json!({ "cgroup": scope }), "{v}");
    std::fs::write(&current, "104857600\n").unwrap();
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        !firing(v, "ServiceMemoryNearLimit")
    });
    assert!(firing(&v, "NodeUnderVoltage"), "{v}");
}

#[test]
fn without_history_alerts_are_not_evaluated() {
    let agent = Agent::start(&["--history", "0"], &[("SOCKTOP_AGENT_GPU", "0")]);
    let mut ws = agent.ws();
    let v = json(&ask(&mut ws, r#"{"type":"alerts"}"#));
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("alerts are not evaluated yet"),
        "{v}"
    );
}

#[test]
fn a_bad_alerts_file_is_one_line_and_status_2() {
    let dir = TempDir::new("alerts-bad");
    let f = dir.0.join("alerts.toml");
    std::fs::write(&f, "[NodeHighTemperature]\nthreshold = \"hot\"\n").unwrap();
    let out = agent_command()
        .args(["--alerts", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "--alerts: {}: NodeHighTemperature.threshold",
            f.display()
        )),
        "{err}"
    );
    let out = agent_command()
        .args(["--alertmanager", "am.local:9093"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("sockagent: --alertmanager: invalid URL"),
        "{err}"
    );
}

/// A webhook on loopback: each request's body, answered 200.
fn webhook() -> (u16, std::sync::mpsc::Receiver<Value>) {
    endpoint(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        |body| serde_json::from_slice(&body).ok(),
    )
}

/// An HTTP endpoint on loopback that answers every request with `reply`
/// and hands on what `keep` makes of each body (`None`: skipped).
fn endpoint<T: Send + 'static>(
    reply: &'static [u8],
    keep: fn(Vec<u8>) -> Option<T>,
) -> (u16, std::sync::mpsc::Receiver<T>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let Some(body) = read_request(&mut s) else {
                continue;
            };
            let _ = s.write_all(reply);
            if let Some(v) = keep(body) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    (port, rx)
}

/// One HTTP request's body (`Content-Length`).
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

/// The next webhook notification whose status is `status`.
fn notified(rx: &std::sync::mpsc::Receiver<Value>, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {status} notification reached the webhook"));
        if v["status"] == status {
            return v;
        }
    }
}

/// Debian's Alertmanager on loopback, routing every alert at once to the
/// webhook on `hook` (resolved ones too); its port, and the process.
fn alertmanager(dir: &Path, hook: u16) -> (u16, Reaped) {
    let am = tool("prometheus-alertmanager", "prometheus-alertmanager");
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
             webhook_configs:\n      - url: http://127.0.0.1:{hook}/hook\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Reaped(
        std::process::Command::new(am)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(port, "/-/ready", "").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "Alertmanager did not get ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (port, child)
}

/// The agent itself delivers: started with `--alertmanager` on the Pi
/// tree with under-voltage now, `NodeUnderVoltage` reaches the webhook
/// through the real Alertmanager as firing; once `get_throttled` loses its
/// "now" bits, as resolved.
#[test]
fn the_agent_delivers_through_a_real_alertmanager_to_a_webhook() {
    let dir = TempDir::new("alertmanager");
    let (hook, rx) = webhook();
    let (port, _am) = alertmanager(&dir.0, hook);
    let tree = pi_tree("alerts-deliver-rpi4");
    let root = tree.0.to_str().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let agent = Agent::start(
        &["--alertmanager", &url],
        &[("SOCKAGENT_ROOT", root), ("SOCKTOP_AGENT_GPU", "0")],
    );

    let v = notified(&rx, "firing");
    let a = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "NodeUnderVoltage")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(a["labels"]["severity"], "critical");
    // the fixture's host name (its proc/sys/kernel/hostname)
    assert_eq!(a["labels"]["instance"], "rpi4");
    assert_eq!(
        a["annotations"]["description"],
        "The firmware reports under-voltage now."
    );
    assert_eq!(a["generatorURL"], format!("http://rpi4:{}/", agent.port));

    common::rpi4_recovers(&tree.0);
    let v = loop {
        let v = notified(&rx, "resolved");
        if v["groupLabels"]["alertname"] == "NodeUnderVoltage" {
            break v;
        }
    };
    assert_eq!(v["alerts"][0]["labels"]["alertname"], "NodeUnderVoltage");
    assert_eq!(v["alerts"][0]["status"], "resolved");

    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    let sent = format!("sockagent_alertmanager_notifications_total{{alertmanager=\"{url}\"}} ");
    assert!(body.contains(&sent), "{body}");
    assert!(
        body.contains(&format!(
            "sockagent_alertmanager_notifications_failed_total{{alertmanager=\"{url}\"}} 0\n"
        )),
        "{body}"
    );
}

/// An Alertmanager of the test's own that answers every request 503: the
/// agent tries again (the engine's backoff: 1 s, 2 s, …), counts the
/// failures, logs it once, and keeps answering clients meanwhile.
#[test]
fn a_failing_alertmanager_is_retried_and_clients_are_still_answered() {
    let (port, rx) = endpoint(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
        Some,
    );
    let tree = pi_tree("alerts-503-rpi4");
    let root = tree.0.to_str().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let agent = Agent::start(
        &["--alertmanager", &url],
        &[("SOCKAGENT_ROOT", root), ("SOCKTOP_AGENT_GPU", "0")],
    );
    let wait = Duration::from_secs(30);
    let body = rx.recv_timeout(wait).expect("no first delivery");
    let alerts: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["alertname"] == "NodeUnderVoltage"),
        "{alerts}"
    );
    // While it keeps failing, clients are answered.
    let mut ws = agent.ws();
    let v = json(&ask(&mut ws, r#"{"type":"alerts"}"#));
    assert!(firing(&v, "NodeUnderVoltage"), "{v}");
    rx.recv_timeout(wait).expect("no retry");
    rx.recv_timeout(wait).expect("no second retry");
    let (status, body) = http_get(agent.port, "/metrics", "").unwrap();
    assert_eq!(status, 200);
    let failed = body
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "sockagent_alertmanager_notifications_failed_total{{alertmanager=\"{url}\"}} "
            ))
        })
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{body}"));
    assert!(failed >= 2, "{body}");
    let log = agent.log.lock().unwrap().clone();
    assert_eq!(
        log.matches("fails (answered 503 busy)").count(),
        1,
        "one line when it starts failing: {log}"
    );
}

/// Unmounts when dropped, so a failing test leaves no mount behind.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// On this machine: a loop-mounted ext4 filled past 95 % fires
/// `NodeFilesystemAlmostOutOfSpace` for its mountpoint, both severities,
/// with a short `for` from an alerts file. Needs root and a loop device
/// (CI runs as root), as tests/e2e.rs's mount test does.
#[test]
fn a_full_loop_mounted_ext4_fires_almost_out_of_space() {
    let dir = TempDir::new("alerts-loop");
    let img = dir.0.join("disk.img");
    let mnt = dir.0.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    make_ext4(&img, 16 << 20);
    let run = run_root;
    run(
        "mount",
        &[
            "-o".as_ref(),
            "loop".as_ref(),
            img.as_os_str(),
            mnt.as_os_str(),
        ],
    );
    let mnt = mnt.canonicalize().unwrap();
    let _mounted = Mounted(mnt.clone());
    let space = sockagent::collect::disks::space(&mnt).unwrap();
    // Leave 2 % of the size available: under both thresholds.
    let fill = space.avail - space.total / 50;
    std::fs::write(mnt.join("fill"), vec![0u8; fill as usize]).unwrap();
    let after = sockagent::collect::disks::space(&mnt).unwrap();
    assert!(after.avail * 100 < after.total * 5, "{after:?}");
    let file = dir.0.join("alerts.toml");
    std::fs::write(&file, "[NodeFilesystemAlmostOutOfSpace]\nfor = \"2s\"\n").unwrap();
    let agent = Agent::start(
        &["--alerts", file.to_str().unwrap()],
        &[("SOCKTOP_AGENT_GPU", "0")],
    );
    let mp = mnt.to_str().unwrap();
    let ours = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|x| {
                x["name"] == "NodeFilesystemAlmostOutOfSpace" && x["labels"]["mountpoint"] == mp
            })
            .map(|x| {
                (
                    x["severity"].as_str().unwrap().into(),
                    x["state"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let firing = |s: &str| (s.to_string(), "firing".to_string());
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        ours(v).len() == 2 && ours(v).iter().all(|a| a.1 == "firing")
    });
    assert_eq!(ours(&v), [firing("warning"), firing("critical")]);
    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    let line = format!(
        "sockagent_alerts{{alertname=\"NodeFilesystemAlmostOutOfSpace\",alertstate=\"firing\",severity=\"critical\",mountpoint=\"{mp}\"}} 1\n"
    );
    assert!(body.contains(&line), "{line} not in {body}");
}

/// The agent's built-in rules and the packaged PromQL rules for
/// Prometheus fleets say the same names, severities and `for`, in order.
#[test]
fn the_packaged_promql_rules_match_the_built_in_ones() {
    let yml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/prometheus/sockagent-alerts.yml"
    ))
    .unwrap();
    let seconds = |v: &str| -> u32 {
        let (n, unit) = v.split_at(v.len() - 1);
        n.parse::<u32>().unwrap()
            * match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                u => panic!("unit {u:?} in {v:?}"),
            }
    };
    let mut packaged: Vec<(String, u32, String)> = Vec::new();
    for line in yml.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            packaged.push((name.trim().into(), 0, String::new()));
        } else if let (Some(v), Some(last)) = (line.strip_prefix("for: "), packaged.last_mut()) {
            last.1 = seconds(v.trim());
        } else if let (Some(v), Some(last)) = (line.strip_prefix("severity: "), packaged.last_mut())
        {
            last.2 = v.trim().trim_matches('"').into();
        }
    }
    let built_in: Vec<(String, u32, String)> = sockagent::alerts::rules::RULES
        .iter()
        .map(|r| (r.name.into(), r.for_s, r.severity.as_str().into()))
        .collect();
    assert_eq!(packaged, built_in);
}
