//! GPUs and temperatures end to end: the agent with the stand-in NVML
//! (a C library built here, answering for two GPUs), without NVML, and on
//! the hand-made sysfs trees under tests/fixtures, read back by the real
//! `socktop_connector` types.

mod common;
use common::*;
use socktop_connector::{DiskInfo, Metrics};

const H200_VM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/h200-vm");

/// The metrics answer, parsed by the real client's type (which fails on a
/// missing required field or a duplicate GPU key), and as raw JSON.
fn metrics(agent: &Agent) -> (Metrics, serde_json::Value) {
    let mut ws = agent.ws();
    let raw = json(&ask(&mut ws, "get_metrics"));
    let m: Metrics = serde_json::from_value(raw.clone()).expect("connector parses metrics");
    (m, raw)
}

fn no_nvml() -> (&'static str, &'static str) {
    ("SOCKAGENT_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
}

/// The NVML path, through the stand-in library.
#[cfg(feature = "gpu")]
mod nvml {
    use super::*;
    use std::time::{Duration, Instant};

    const MIB: u64 = 1024 * 1024;

    /// Asks for metrics until `ok` holds (the GPU cache is 1.5 s), for at most 10 s.
    fn metrics_until(agent: &Agent, what: &str, ok: impl Fn(&Metrics) -> bool) -> Metrics {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let (m, _) = metrics(agent);
            if ok(&m) {
                return m;
            }
            assert!(Instant::now() < end, "{what}: last answer {m:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The agent's log once it holds `line` (for at most 10 s).
    fn log_with(agent: &Agent, line: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let log = agent.log();
            if log.contains(line) {
                return log;
            }
            assert!(Instant::now() < end, "no {line:?} in the log: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn standin() -> String {
        standin::standin_nvml(
            &std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nvml-standin"),
        )
        .to_string_lossy()
        .into_owned()
    }

    #[test]
    fn standin_nvml_gives_two_gpus_with_v2_memory() {
        let lib = standin();
        // The H200 VM's /proc (no DRM there), NVML answering for an H200 and an A100.
        let agent = Agent::start(
            &[],
            &[("SOCKAGENT_ROOT", H200_VM), ("SOCKAGENT_NVML_LIB", &lib)],
        );
        let (m, raw) = metrics(&agent);
        let gpus = m.gpus.expect("gpus listed");
        assert_eq!(gpus.len(), 2, "{raw}");
        let h200 = &gpus[0];
        assert_eq!(h200.name.as_deref(), Some("NVIDIA H200"));
        assert_eq!(h200.vendor.as_deref(), Some("nvidia"));
        assert_eq!(h200.utilization, Some(0.0));
        assert_eq!(h200.mem_total, Some(143771 * MIB)); // nvidia-smi: 143771 MiB
        assert_eq!(h200.mem_used, Some(0)); // v2: reserved 615 MiB not counted, as nvidia-smi
        assert_eq!(h200.temp, Some(37.0));
        let a100 = &gpus[1];
        assert_eq!(a100.name.as_deref(), Some("NVIDIA A100-SXM4-80GB"));
        assert_eq!(a100.utilization, Some(73.0));
        assert_eq!(a100.mem_total, Some(81920 * MIB));
        assert_eq!(a100.mem_used, Some(4096 * MIB));
        assert_eq!(a100.temp, Some(61.0));
        // the guide's keys carry the same values as the TUI's
        for g in raw["gpus"].as_array().unwrap() {
            assert_eq!(g["usage"], g["utilization"]);
            assert_eq!(g["memory_total"], g["mem_total"]);
            assert_eq!(g["memory_used"], g["mem_used"]);
            assert_eq!(g.as_object().unwrap().len(), 9, "{g}");
        }
        // the rest of metrics is the H200 VM's
        assert_eq!(m.cpu_per_core.len(), 16);
        assert_eq!(m.mem_total, 135148564480);
        assert!(agent.log().contains("NVML loaded from"), "{}", agent.log());
        // and the same GPUs in /metrics
        let r = agent.http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let line = |s: &str| r.lines().find(|l| l.starts_with(s)).map(str::to_string);
        let a100_used = line("sockagent_gpu_memory_used_bytes{gpu=\"1\",name=\"NVIDIA A100-SXM4-80GB\",vendor=\"nvidia\"} ");
        assert_eq!(
            a100_used
                .as_deref()
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok()),
            Some((4096 * MIB) as f64),
            "{r}"
        );
        assert!(line("sockagent_gpu_temperature_celsius{gpu=\"0\",name=\"NVIDIA H200\",vendor=\"nvidia\"} 37").is_some(), "{r}");

        // each GPU's usage and memory in every history sample (issue 18)
        std::thread::sleep(std::time::Duration::from_millis(2500));
        let mut ws = agent.ws();
        let h = json(&ask(&mut ws, r#"{"type":"history"}"#));
        assert_eq!(
            h["gpus"],
            serde_json::json!(["NVIDIA H200", "NVIDIA A100-SXM4-80GB"]),
            "{h}"
        );
        let samples = h["samples"].as_array().unwrap();
        assert!(!samples.is_empty(), "{h}");
        for s in samples {
            assert_eq!(s["gpu_usage"], serde_json::json!([0.0, 73.0]), "{s}");
            assert_eq!(
                s["gpu_memory_used"],
                serde_json::json!([0.0, (4096 * MIB) as f64]),
                "{s}"
            );
            assert_eq!(s["cpu_per_core"].as_array().unwrap().len(), 16, "{s}");
        }
    }

    /// hwtests/gpu-nvidia.sh, run against the stand-in with an nvidia-smi
    /// that prints what a real one would for those two GPUs: the script a
    /// person runs on GPU hardware keeps working.
    #[test]
    fn gpu_nvidia_script_verdicts() {
        let lib = standin();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-smi");
        std::fs::create_dir_all(&dir).unwrap();
        let smi = dir.join("nvidia-smi");
        let tmp = dir.join(format!("nvidia-smi.{}", std::process::id()));
        std::fs::write(
            &tmp,
            "#!/bin/sh\ncase \"$*\" in\n  *driver_version*) echo 550.54.15 ;;\n  \
             *) printf 'NVIDIA H200, 143771, 0, 37\\nNVIDIA A100-SXM4-80GB, 81920, 4096, 61\\n' ;;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &smi).unwrap();
        let run = |extra: &[(&str, &str)]| {
            let mut cmd = std::process::Command::new("bash");
            cmd.arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/hwtests/gpu-nvidia.sh"
            ))
            .arg(env!("CARGO_BIN_EXE_sockagent"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("SOCKAGENT_NVML_LIB", &lib)
            .env_remove("SOCKTOP_TOKEN")
            .env_remove("SOCKTOP_PORT");
            for (k, v) in extra {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("run gpu-nvidia.sh");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (code, out) = run(&[]);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.contains(
                "VERDICT: PASS 2 GPU(s) [NVIDIA H200, NVIDIA A100-SXM4-80GB], driver 550.54.15"
            ),
            "{out}"
        );
        // an agent that reported v1 memory would be caught
        let (code, out) = run(&[("NVML_STANDIN_NO_V2", "1")]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("gpu0 memory.used 615 MiB vs 0"), "{out}");
    }

    #[test]
    fn old_driver_without_v2_memory_falls_back_to_v1() {
        let lib = standin();
        let agent = Agent::start(
            &[],
            &[
                ("SOCKAGENT_ROOT", H200_VM),
                ("SOCKAGENT_NVML_LIB", &lib),
                ("NVML_STANDIN_NO_V2", "1"),
            ],
        );
        let gpus = metrics(&agent).0.gpus.expect("gpus listed");
        // v1 counts the reserved memory as used
        assert_eq!(gpus[0].mem_used, Some(615 * MIB));
        assert_eq!(gpus[1].mem_used, Some((4096 + 512) * MIB));
    }

    #[test]
    fn a_gpu_that_falls_off_the_bus_is_dropped_then_back() {
        let lib = standin();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("nvml-standin");
        let lost = dir.join(format!("lost-{}", std::process::id()));
        let _ = std::fs::remove_file(&lost);
        let lost_s = lost.to_string_lossy().into_owned();
        let agent = Agent::start(
            &[],
            &[
                ("SOCKAGENT_ROOT", H200_VM),
                ("SOCKAGENT_NVML_LIB", &lib),
                ("NVML_STANDIN_LOST_FILE", &lost_s),
            ],
        );
        assert_eq!(metrics(&agent).0.gpus.map(|g| g.len()), Some(2));
        std::fs::write(&lost, b"").unwrap();
        let m = metrics_until(&agent, "GPU 1 dropped", |m| {
            m.gpus.as_ref().is_some_and(|g| g.len() == 1)
        });
        assert_eq!(m.gpus.unwrap()[0].name.as_deref(), Some("NVIDIA H200"));
        // still serving, and said so once
        metrics(&agent);
        std::fs::remove_file(&lost).unwrap();
        metrics_until(&agent, "GPU 1 back", |m| {
            m.gpus.as_ref().is_some_and(|g| g.len() == 2)
        });
        // the log is read by another thread: wait for the line, then count
        let log = log_with(&agent, "NVIDIA GPU 1 answers again");
        assert_eq!(log.matches("NVIDIA GPU 1 left out").count(), 1, "{log}");
    }

    #[test]
    fn driver_not_loaded_is_null_said_once() {
        let lib = standin();
        let agent = Agent::start(
            &[],
            &[
                ("SOCKAGENT_ROOT", H200_VM),
                ("SOCKAGENT_NVML_LIB", &lib),
                ("NVML_STANDIN_INIT_FAIL", "1"),
            ],
        );
        for _ in 0..3 {
            assert!(metrics(&agent).0.gpus.is_none());
        }
        let log = agent.log();
        assert_eq!(log.matches("NVML not loaded").count(), 1, "{log}");
    }

    #[test]
    fn gpu_off_means_null_even_with_nvml() {
        let lib = standin();
        let agent = Agent::start(
            &[],
            &[
                ("SOCKAGENT_ROOT", H200_VM),
                ("SOCKAGENT_NVML_LIB", &lib),
                ("SOCKTOP_AGENT_GPU", "0"),
            ],
        );
        let (m, raw) = metrics(&agent);
        assert!(m.gpus.is_none());
        assert!(raw["gpus"].is_null());
        assert!(!agent.log().contains("NVML loaded"));
    }
}

#[test]
fn missing_nvml_gives_null_gpus_and_intact_metrics() {
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", H200_VM), no_nvml()]);
    for _ in 0..3 {
        let (m, raw) = metrics(&agent);
        assert!(raw["gpus"].is_null(), "{raw}");
        assert!(m.gpus.is_none());
        assert_eq!(m.cpu_per_core.len(), 16);
        assert_eq!(m.mem_total, 135148564480);
        assert!(m.networks.iter().any(|n| n.name == "eth0"));
        assert!(m.cpu_temp_c.is_none());
    }
    // told once at info level, never per request
    #[cfg(feature = "gpu")]
    {
        let log = agent.log();
        assert_eq!(log.matches("NVML not loaded").count(), 1, "{log}");
        assert!(log.contains("/nonexistent/libnvidia-ml.so.1"), "{log}");
    }
}

#[test]
fn amd_host_tree_gpu_cpu_and_disk_temperatures() {
    let agent = Agent::start(&[], &[("SOCKAGENT_ROOT", &fixture("amd-host")), no_nvml()]);
    let (m, _) = metrics(&agent);
    assert_eq!(m.hostname, "amd-host");
    assert_eq!(m.cpu_temp_c, Some(52.25)); // k10temp Tctl
    let gpus = m.gpus.expect("the Radeon is listed");
    assert_eq!(gpus.len(), 1);
    let g = &gpus[0];
    assert_eq!(
        g.name.as_deref(),
        Some("Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]")
    );
    assert_eq!(g.vendor.as_deref(), Some("amd"));
    assert_eq!(g.utilization, Some(37.0));
    assert_eq!(g.mem_total, Some(25753026560));
    assert_eq!(g.mem_used, Some(1073741824));
    assert_eq!(g.temp, Some(45.0));
    let mut ws = agent.ws();
    let disks: Vec<DiskInfo> = serde_json::from_value(json(&ask(&mut ws, "get_disks"))).unwrap();
    let temps: Vec<(&str, Option<f32>)> = disks
        .iter()
        .filter(|d| !d.is_partition)
        .map(|d| (d.name.as_str(), d.temperature))
        .collect();
    assert_eq!(
        temps,
        vec![("nvme0n1", Some(36.85)), ("sda", Some(31.0)), ("sdb", None)]
    );
    assert!(disks
        .iter()
        .filter(|d| d.is_partition)
        .all(|d| d.temperature.is_none()));

    // SOCKTOP_AGENT_TEMP=0: no temperature anywhere, the rest unchanged
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_ROOT", &fixture("amd-host")),
            no_nvml(),
            ("SOCKTOP_AGENT_TEMP", "0"),
        ],
    );
    let (m, _) = metrics(&agent);
    assert_eq!(m.cpu_temp_c, None);
    let g = &m.gpus.expect("still listed")[0];
    assert_eq!((g.temp, g.utilization), (None, Some(37.0)));
    let mut ws = agent.ws();
    let disks: Vec<DiskInfo> = serde_json::from_value(json(&ask(&mut ws, "get_disks"))).unwrap();
    assert!(disks.iter().all(|d| d.temperature.is_none()));
}

/// `sockagent bench` honours every setting the server does: with
/// SOCKTOP_AGENT_GPU=0 it opens no NVIDIA library (glibc's loader names
/// every library it looks for under LD_DEBUG=files,libs); with GPUs on, it does
/// look for the one SOCKAGENT_NVML_LIB names.
#[cfg(feature = "gpu")]
#[test]
fn bench_honours_the_gpu_switch() {
    let lib = "/nonexistent/libnvidia-ml-bench.so.1";
    let run = |gpu: &str| {
        let out = common::agent_command()
            .args(["bench", "-n", "1"])
            .env("SOCKAGENT_ROOT", H200_VM)
            .env("SOCKAGENT_NVML_LIB", lib)
            .env("SOCKTOP_AGENT_GPU", gpu)
            .env("LD_DEBUG", "files,libs")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let on = run("1");
    if common::emulated() {
        return; // qemu-user's loader is not glibc's traced one
    }
    assert!(
        on.contains("libnvidia-ml-bench"),
        "GPUs on: NVML looked for\n{on}"
    );
    let off = run("0");
    assert!(
        !off.contains("nvidia"),
        "GPUs off: no NVIDIA library\n{off}"
    );
}
