//! The agent's own alerts (issue 28), seen as a user sees them: the
//! `alerts` request and the `sockagent_alerts` family of `/metrics`, on a
//! copy of the hand-made Raspberry Pi 4 tree whose firmware reports
//! under-voltage now (`get_throttled` 0x50005, `in0_lcrit_alarm` 1); then
//! the payload the engine builds, posted to Debian's real Alertmanager,
//! reaching a webhook served here as firing, then as resolved.

mod common;
use common::*;
use serde_json::Value;

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
    let deadline = Instant::now() + Duration::from_secs(20);
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

fn firing(v: &Value, name: &str) -> bool {
    v.as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["name"] == name && x["state"] == "firing")
    })
}

#[test]
fn under_voltage_fires_then_resolves_on_a_pi_tree() {
    let tree = TempDir::new("alerts-rpi4");
    copy_tree(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rpi4")),
        &tree.0,
    );
    let root = tree.0.to_str().unwrap();
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", root), ("SOCKTOP_AGENT_GPU", "0")]);
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        firing(v, "NodeUnderVoltage")
    });
    let under = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "NodeUnderVoltage")
        .unwrap();
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
    let throttled = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "NodeCpuThrottled");
    assert_eq!(throttled.unwrap()["state"], "pending", "{v}");

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
    let fw = tree.0.join("sys/devices/platform/soc/soc:firmware");
    std::fs::write(fw.join("get_throttled"), "50000\n").unwrap();
    std::fs::write(
        fw.join("raspberrypi-hwmon/hwmon/hwmon1/in0_lcrit_alarm"),
        "0\n",
    )
    .unwrap();
    let v = ask_until(&agent, r#"{"type":"alerts"}"#, |v| {
        v.as_array().is_some_and(|a| a.is_empty())
    });
    assert_eq!(v, serde_json::json!([]));
    let (_, body) = http_get(agent.port, "/metrics", "").unwrap();
    assert!(!body.contains("sockagent_alerts{"), "{body}");
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
