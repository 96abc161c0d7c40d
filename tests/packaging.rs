//! The packaged Prometheus rules and Grafana dashboard (issue 28, item 5):
//! `promtool check rules` and `promtool test rules` on the files as
//! shipped; the readings the rules need on `/metrics`; and a real
//! Prometheus scraping the agent with the rules loaded, where every rule
//! evaluates without error and every dashboard query returns data (but
//! those of `NEEDS`: hardware or kernel features a machine may lack).
//!
//! Needs Debian's `prometheus` package (`prometheus`, `promtool`); without
//! it these tests fail and say so. `tests/run` installs it.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/prometheus/sockagent-alerts.yml"
);
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/prometheus/sockagent-alerts.test.yml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/grafana/sockagent-dashboard.json"
);

/// Issue 28 item 1: every rule's (name, severity, `for`), in file order;
/// NodeFilesystemAlmostOutOfSpace is two rules (warning, critical).
const ISSUE_28: [(&str, &str, &str); 11] = [
    ("NodeUnderVoltage", "critical", "0m"),
    ("NodeCpuThrottled", "warning", "1m"),
    ("NodeHighTemperature", "warning", "2m"),
    ("NodeFilesystemAlmostOutOfSpace", "warning", "5m"),
    ("NodeFilesystemAlmostOutOfSpace", "critical", "5m"),
    ("NodeFilesystemSpaceFillingUp", "warning", "15m"),
    ("NodeMemoryHighUtilization", "warning", "15m"),
    ("NodeOutOfMemoryKill", "warning", "0m"),
    ("NodeClockNotSynchronising", "warning", "10m"),
    ("NodeNetworkReceiveErrs", "warning", "1h"),
    ("ServiceMemoryNearLimit", "warning", "5m"),
];

/// Dashboard panels that may be empty on a machine without what they
/// show: (title, what it needs, a series the agent exports only where the
/// machine has it). Where Prometheus has that series, the panel must
/// return data like any other; a panel not listed must always.
const NEEDS: [(&str, &str, &str); 16] = [
    (
        "CPU temperature",
        "a CPU temperature sensor",
        "sockagent_cpu_temperature_celsius",
    ),
    (
        "Temperature sensors",
        "hwmon temperature sensors",
        "node_hwmon_temp_celsius",
    ),
    (
        "Throttling now",
        "a throttling source (Raspberry Pi firmware, x86 thermal_throttle)",
        "sockagent_throttling",
    ),
    (
        "CPU frequency",
        "cpufreq (VMs have none)",
        "node_cpu_scaling_frequency_hertz",
    ),
    (
        "Pressure stall",
        "PSI (CONFIG_PSI; Debian's kernels need psi=1)",
        "node_pressure_cpu_waiting_seconds_total",
    ),
    (
        "Cgroup memory of its limit",
        "a cgroup with a memory limit",
        "sockagent_cgroup_memory_max_bytes",
    ),
    (
        "Cgroup CPU",
        "cgroup CPU accounting (v2 cpu.stat, v1 cpuacct)",
        "sockagent_cgroup_cpu_seconds_total",
    ),
    (
        "Cgroup I/O",
        "cgroup I/O accounting (v2 io.stat, v1 blkio)",
        "sockagent_cgroup_io_bytes_total",
    ),
    (
        "Agent's alerts",
        "an alert pending or firing on the agent",
        "sockagent_alerts",
    ),
    (
        "Prometheus alerts",
        "an alert pending or firing in Prometheus",
        "ALERTS",
    ),
    ("GPU busy", "a GPU", "sockagent_gpu_utilization_percent"),
    ("GPU memory", "a GPU", "sockagent_gpu_memory_total_bytes"),
    (
        "GPU temperature",
        "a GPU with a temperature sensor",
        "sockagent_gpu_temperature_celsius",
    ),
    ("Fans", "fans", "node_hwmon_fan_rpm"),
    ("Batteries", "a battery", "node_power_supply_capacity"),
    (
        "CPU package power",
        "RAPL (Intel and AMD hosts, not VMs)",
        "node_rapl_package_joules_total",
    ),
];

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(tool("promtool", "prometheus"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_checks_and_tests_the_packaged_rules() {
    let (ok, out) = promtool(&["check", "rules", RULES]);
    assert!(ok && out.contains("SUCCESS: 11 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", RULE_TESTS]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    // every rule has a test that expects it firing
    let tests = std::fs::read_to_string(RULE_TESTS).unwrap();
    for (name, _, _) in ISSUE_28 {
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "no firing case for {name}"
        );
        assert!(
            tests.contains(&format!("alertname: {name}\n        exp_alerts: []")),
            "no quiet case for {name}"
        );
    }
}

/// The names, severities and `for` durations are issue 28's (the agent's
/// built-in engine has the same), and each rule says what it found.
#[test]
fn the_packaged_rules_are_issue_28s() {
    let text = std::fs::read_to_string(RULES).unwrap();
    let mut found = Vec::new();
    for rule in text.split("      - alert: ").skip(1) {
        let name = rule.lines().next().unwrap().trim();
        let field = |key: &str| {
            rule.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .unwrap_or_else(|| panic!("{name}: no {key}"))
                .trim()
                .to_string()
        };
        let (sev, r#for) = (field("severity:"), field("for:"));
        assert!(field("summary:").contains("$labels.instance"), "{name}");
        assert!(field("description:").contains("$value"), "{name}");
        found.push((name.to_string(), sev, r#for));
    }
    let want: Vec<(String, String, String)> = ISSUE_28
        .iter()
        .map(|(n, s, f)| (n.to_string(), s.to_string(), f.to_string()))
        .collect();
    assert_eq!(found, want);
}

fn scrape(agent: &Agent) -> String {
    let r = agent.http("GET /metrics HTTP/1.1\r\n\r\n");
    r.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string())
}

fn value_of<'a>(body: &'a str, series: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
}

/// The series the rules need that node_exporter's collectors would give:
/// the OOM kills, the clock's sync state, packets, the cgroups' limits.
#[test]
fn the_readings_the_rules_need_are_on_metrics() {
    let pi = Agent::start(&[], &[("SOCKAGENT_ROOT", &fixture("rpi4"))]);
    let body = scrape(&pi);
    assert_eq!(value_of(&body, "node_vmstat_oom_kill"), Some("2"), "{body}");
    let eth0 = |name: &str| value_of(&body, &format!("{name}{{device=\"eth0\"}}"));
    assert_eq!(eth0("node_network_receive_packets_total"), Some("5000000"));
    assert_eq!(eth0("node_network_transmit_packets_total"), Some("3000000"));
    // the clock is the host's: nothing for a captured tree
    assert!(!body.contains("node_timex"), "{body}");

    let cg = Agent::start(&[], &[("SOCKAGENT_ROOT", &fixture("cgroup-v2"))]);
    let body = scrape(&cg);
    let max: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("sockagent_cgroup_memory_max_bytes{"))
        .collect();
    // the container's 512 MiB; nginx.service's memory.max is "max"
    assert_eq!(max.len(), 1, "{max:?}");
    assert!(
        max[0].contains("kind=\"container\"") && max[0].ends_with(" 536870912"),
        "{max:?}"
    );

    let live = Agent::start(&[], &[]);
    let body = scrape(&live);
    let vmstat = std::fs::read_to_string("/proc/vmstat").unwrap();
    let oom = vmstat.lines().find_map(|l| l.strip_prefix("oom_kill "));
    assert_eq!(value_of(&body, "node_vmstat_oom_kill"), oom);
    // SAFETY: a zeroed timex is valid; modes 0 only reads.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    assert!(unsafe { libc::adjtimex(&mut t) } >= 0);
    let synced = if t.status & libc::STA_UNSYNC == 0 {
        "1"
    } else {
        "0"
    };
    assert_eq!(value_of(&body, "node_timex_sync_status"), Some(synced));
    let max_err: f64 = value_of(&body, "node_timex_maxerror_seconds")
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..=16.0).contains(&max_err), "{max_err}");
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap()
}

/// The panels with queries (rows left out).
fn panels(d: &serde_json::Value) -> Vec<&serde_json::Value> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// What Grafana 9+ needs to import it: the schema, the data source and
/// `job`/`instance` variables, every panel on that data source, ids
/// unique, the grid within 24 columns.
#[test]
fn the_dashboard_is_importable() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(!d["uid"].as_str().unwrap().is_empty());
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |n: &str| vars.iter().find(|v| v["name"] == n).unwrap();
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for n in ["job", "instance"] {
        let q = var(n)["query"]["query"].as_str().unwrap();
        assert!(
            q.starts_with("label_values(") && q.ends_with(&format!(", {n})")),
            "{q}"
        );
    }
    let mut ids = std::collections::HashSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "id twice: {p}");
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{}", p["title"]);
    }
    for p in panels(&d) {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
    let titles: Vec<&str> = panels(&d)
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for (t, _, _) in NEEDS {
        assert!(titles.contains(&t), "NEEDS names a panel that is gone: {t}");
    }
}

fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` on Prometheus's API: its `data`, or the error it gave.
fn api(port: u16, path: &str) -> Result<serde_json::Value, String> {
    let (status, body) = http_get(port, path, "").ok_or("no answer")?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status != 200 || v["status"] != "success" {
        return Err(format!("{status} {body}"));
    }
    Ok(v["data"].clone())
}

/// An instant query's result rows.
fn query(port: u16, q: &str) -> Result<Vec<serde_json::Value>, String> {
    let d = api(port, &format!("/api/v1/query?query={}", enc(q)))?;
    match &d["result"] {
        serde_json::Value::Array(rows) => Ok(rows.clone()),
        // a scalar: one value
        v if !v.is_null() => Ok(vec![v.clone()]),
        _ => Err(format!("no result: {d}")),
    }
}

/// Prometheus scraping the agent (started with `env`) every second with
/// the packaged rules loaded, once it has scraped it twice: (its port,
/// the agent, the server, its directory).
fn prometheus_on_agent(env: &[(&str, &str)]) -> (u16, Agent, Reaped, TempDir) {
    let agent = Agent::start(&[], env);
    let dir = TempDir::new("packaging");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: ['{RULES}']\n\
         scrape_configs:\n  - job_name: sockagent\n\
         \x20   static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        agent.port
    );
    let port = free_port();
    let server = start_prometheus(&dir.0, &config, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n = query(port, "count_over_time(up{job=\"sockagent\"}[10m]) >= 2").unwrap_or_default();
        if !n.is_empty() {
            let up = query(port, "min_over_time(up{job=\"sockagent\"}[10m])").unwrap();
            assert_eq!(up[0]["value"][1], "1", "a scrape failed");
            break;
        }
        let plog = std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the agent twice within 90 s:\n{plog}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    (port, agent, server, dir)
}

/// Every rule evaluated by Prometheus without error, and its expression
/// answered by the query API.
fn check_rules(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let rules = loop {
        let d = api(port, "/api/v1/rules").unwrap();
        let rules: Vec<serde_json::Value> = d["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        if rules.len() == 11 && rules.iter().all(|r| r["health"] != "unknown") {
            break rules;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {d}");
        std::thread::sleep(Duration::from_millis(250));
    };
    for r in &rules {
        assert_eq!(r["health"], "ok", "{r}");
        let q = r["query"].as_str().unwrap();
        if let Err(e) = query(port, q) {
            panic!("{}: {q}: {e}", r["name"]);
        }
    }
}

/// A panel's query as Grafana sends it for this agent.
fn concrete(expr: &str, instance: &str) -> String {
    let q = expr
        .replace("$job", "sockagent")
        .replace("$instance", instance)
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h");
    assert!(!q.contains('$'), "a variable the test does not know: {q}");
    q
}

#[test]
fn a_prometheus_scraping_the_agent_answers_every_dashboard_query() {
    let (port, agent, _server, _dir) = prometheus_on_agent(&[]);
    check_rules(port);
    let instance = format!("127.0.0.1:{}", agent.port);
    let d = dashboard();
    // the variables: label_values(selector, label) as Grafana asks
    for (name, want) in [("job", "sockagent"), ("instance", instance.as_str())] {
        let v = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let q = concrete(v["query"]["query"].as_str().unwrap(), &instance);
        let inner = q
            .strip_prefix("label_values(")
            .unwrap()
            .strip_suffix(')')
            .unwrap();
        let (selector, label) = inner.rsplit_once(", ").unwrap();
        let values = api(
            port,
            &format!("/api/v1/label/{label}/values?match[]={}", enc(selector)),
        )
        .unwrap();
        assert_eq!(values, serde_json::json!([want]), "{q}");
    }
    let mut empty = Vec::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap();
        let needs = NEEDS.iter().find(|n| n.0 == title);
        let required = match needs {
            None => true,
            Some((_, _, series)) => {
                let sel = format!("{series}{{job=\"sockagent\",instance=\"{instance}\"}}");
                !query(port, &sel).unwrap().is_empty()
            }
        };
        for t in p["targets"].as_array().unwrap() {
            let q = concrete(t["expr"].as_str().unwrap(), &instance);
            let rows = query(port, &q).unwrap_or_else(|e| panic!("{title}: {q}: {e}"));
            if rows.is_empty() && required {
                empty.push(format!("{title}: {q}"));
            }
        }
        if let (Some((_, what, _)), false) = (needs, required) {
            eprintln!("{title}: may be empty here (needs {what})");
        }
    }
    assert!(empty.is_empty(), "panels without data: {empty:#?}");
}

/// The rules match the series the agent really exports: on the Raspberry
/// Pi tree (under-voltage and throttled now), `NodeUnderVoltage` fires at
/// once with its labels and `NodeCpuThrottled` is at least pending.
#[test]
fn the_packaged_rules_fire_on_the_agents_own_series() {
    let tree = fixture("rpi4");
    let (port, agent, _server, _dir) = prometheus_on_agent(&[("SOCKAGENT_ROOT", &tree)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts = loop {
        let rows = query(port, "ALERTS").unwrap();
        let names: Vec<&str> = rows
            .iter()
            .filter_map(|r| r["metric"]["alertname"].as_str())
            .collect();
        if names.contains(&"NodeUnderVoltage") && names.contains(&"NodeCpuThrottled") {
            break rows;
        }
        assert!(Instant::now() < deadline, "alerts so far: {rows:?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let under = alerts
        .iter()
        .find(|r| r["metric"]["alertname"] == "NodeUnderVoltage")
        .unwrap();
    let m = &under["metric"];
    assert_eq!(m["alertstate"], "firing", "{under}");
    assert_eq!(m["severity"], "critical");
    assert_eq!(m["instance"], format!("127.0.0.1:{}", agent.port).as_str());
    // one throttling alert for the instance, whichever reasons hold
    let throttled: Vec<_> = alerts
        .iter()
        .filter(|r| r["metric"]["alertname"] == "NodeCpuThrottled")
        .collect();
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert!(throttled[0]["metric"]["reason"].is_null(), "{throttled:?}");
}
