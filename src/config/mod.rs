//! Flags and environment → `Config`, validated in one place: the one
//! module that reads either. Each setting's default is its owner's
//! (`server::Limits`, `answers::Ttls`, `collect::Settings`, the constants
//! here), written once; `Config` holds those same structs, filled in, and
//! `main` hands each to its owner whole.
//!
//! The reference agent's flags and variables work the same way here; where
//! it silently falls back to a default on a bad value, we stop with one
//! line naming the flag or variable (exit status 2).

mod flags;
mod help;
mod remote;
mod values;

use crate::answers::{Ttls, PROM_TOP_CGROUPS, PROM_TOP_N};
use crate::collect::{fs::Root, Settings};
use crate::server::guard::Origin;
use crate::server::Limits;
use flags::Flags;
pub use help::help;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use values::{parse_history, parse_origins, parse_port, Env};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Most processes `SOCKAGENT_PROM_TOP_N` may ask for: each is two series.
pub const MAX_TOP_N: usize = 1000;
/// The history ring's default length, seconds (15 minutes at one sample a second).
pub const DEFAULT_HISTORY_S: u32 = 900;
/// The longest history `--history` may ask for: a day (a few MiB on a many-core host).
pub const MAX_HISTORY_S: u32 = 86_400;
/// The port without TLS, and with it (`--enableSSL`), as the reference's.
pub const DEFAULT_PORT: u16 = 3000;
pub const DEFAULT_TLS_PORT: u16 = 8443;
/// The journal reader run for `journal_entries`.
pub const DEFAULT_JOURNALCTL: &str = "journalctl";

/// TLS: whether it is on, and where its certificate comes from.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// The user's certificate and key (`--cert`/`--key`); `None`: the
    /// self-signed one kept in `dir`.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// Client certificates required, signed by a CA in this PEM file.
    pub client_ca: Option<PathBuf>,
    /// Where the self-signed certificate is kept (as the reference keeps it).
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub token: Option<String>,
    pub tls: TlsConfig,
    /// `SOCKTOP_AGENT_EXTRA_SANS`: more names for the certificate, and
    /// names a browser may reach the agent by.
    pub extra_sans: String,
    /// Web origins whose pages may open `/ws` without the token.
    pub allowed_origins: Vec<Origin>,
    /// What the collectors read and how (root, temperatures, GPUs).
    pub collect: Settings,
    pub ttls: Ttls,
    pub limits: Limits,
    /// The journal reader run for `journal_entries`.
    pub journal_cmd: OsString,
    /// Processes listed by `/metrics` (the top N by CPU).
    pub prom_top_n: usize,
    /// Cgroups listed by `/metrics` (the top N by CPU).
    pub prom_top_cgroups: usize,
    /// Seconds of history kept, one sample a second (0: none).
    pub history_s: u32,
    /// `--remote-write`: where and how to push.
    pub remote_write: Option<crate::remote::Settings>,
    /// The alert rules' changes from `--alerts` (default: none).
    pub alerts: crate::alerts::Overrides,
    /// Alertmanager base URLs (`--alertmanager`), checked: http or https.
    pub alertmanagers: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Action {
    Run(Box<Config>),
    /// `sockagent bench [-n N]`: time every collector on this machine.
    Bench {
        iterations: u32,
        config: Box<Config>,
    },
    Help,
    Version,
}

/// Parses `args` (without the program name) and an environment lookup.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Action, String> {
    let mut f = match flags::parse(args)? {
        flags::Parsed::Help => return Ok(Action::Help),
        flags::Parsed::Version => return Ok(Action::Version),
        flags::Parsed::Flags(f) => *f,
    };
    let env = Env(&env);
    let bench = f.bench;
    let tls = tls_config(&f, &env)?;
    let remote_write = remote::parse(f.remote_write.take(), &env)?;
    let (alerts, alertmanagers) = alerts_config(&mut f, &env)?;
    let config = Box::new(Config {
        port: match f.port {
            Some(p) => p,
            None => match env.get("SOCKTOP_PORT") {
                Some(v) => parse_port("SOCKTOP_PORT", &v)?,
                None if tls.enabled => DEFAULT_TLS_PORT,
                None => DEFAULT_PORT,
            },
        },
        bind: f.bind.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        token: env.get("SOCKTOP_TOKEN").filter(|t| !t.is_empty()),
        tls,
        extra_sans: env.get("SOCKTOP_AGENT_EXTRA_SANS").unwrap_or_default(),
        allowed_origins: match (f.origins.is_empty(), env.get("SOCKAGENT_ALLOWED_ORIGINS")) {
            (true, Some(v)) => parse_origins("SOCKAGENT_ALLOWED_ORIGINS", &v)?,
            _ => f.origins,
        },
        collect: collect_settings(&env),
        ttls: ttls(&env)?,
        limits: limits(&env)?,
        journal_cmd: env
            .get("SOCKAGENT_JOURNALCTL")
            .unwrap_or_else(|| DEFAULT_JOURNALCTL.into())
            .into(),
        prom_top_n: env.top("SOCKAGENT_PROM_TOP_N", PROM_TOP_N)?,
        prom_top_cgroups: env.top("SOCKAGENT_PROM_TOP_CGROUPS", PROM_TOP_CGROUPS)?,
        history_s: match f.history {
            Some(h) => h,
            None => match env.get("SOCKAGENT_HISTORY") {
                Some(v) => parse_history("SOCKAGENT_HISTORY", &v)?,
                None => DEFAULT_HISTORY_S,
            },
        },
        remote_write,
        alerts,
        alertmanagers,
    });
    Ok(match bench {
        Some(iterations) => Action::Bench { iterations, config },
        None => Action::Run(config),
    })
}

/// `--alerts` / `SOCKAGENT_ALERTS` (the file read and checked here, so a
/// bad one stops the agent at start) and the Alertmanagers: the flags, else
/// `SOCKAGENT_ALERTMANAGERS` (comma-separated), at most
/// `deliver::MAX_ALERTMANAGERS`.
fn alerts_config(
    f: &mut Flags,
    env: &Env,
) -> Result<(crate::alerts::Overrides, Vec<String>), String> {
    use crate::alerts::deliver::{parse_url, MAX_ALERTMANAGERS};
    let file = f.alerts.take().map(|p| ("--alerts", p)).or_else(|| {
        env.get("SOCKAGENT_ALERTS")
            .filter(|v| !v.is_empty())
            .map(|v| ("SOCKAGENT_ALERTS", PathBuf::from(v)))
    });
    let overrides = match file {
        Some((name, path)) => crate::alerts::Overrides::load(name, &path)?,
        None => crate::alerts::Overrides::default(),
    };
    let mut urls = std::mem::take(&mut f.alertmanagers);
    let mut what = "--alertmanager";
    if urls.is_empty() {
        what = "SOCKAGENT_ALERTMANAGERS";
        for v in env.get(what).iter().flat_map(|v| v.split(',')) {
            if !v.trim().is_empty() {
                urls.push(parse_url(what, v)?);
            }
        }
    }
    if urls.len() > MAX_ALERTMANAGERS {
        return Err(format!("{what}: at most {MAX_ALERTMANAGERS} Alertmanagers"));
    }
    Ok((overrides, urls))
}

/// TLS from the flags and `SOCKTOP_ENABLE_SSL` / `SOCKAGENT_CLIENT_CA`.
fn tls_config(f: &Flags, env: &Env) -> Result<TlsConfig, String> {
    let enabled = f.tls
        || f.cert_key.is_some()
        || env
            .get("SOCKTOP_ENABLE_SSL")
            .is_some_and(|v| v.trim() == "1");
    let client_ca = f.client_ca.clone().map(|p| ("--client-ca", p)).or_else(|| {
        env.get("SOCKAGENT_CLIENT_CA")
            .filter(|v| !v.is_empty())
            .map(|v| ("SOCKAGENT_CLIENT_CA", PathBuf::from(v)))
    });
    if let (Some((name, _)), false) = (&client_ca, enabled) {
        return Err(format!("{name} needs TLS (--enableSSL)"));
    }
    Ok(TlsConfig {
        enabled,
        cert_key: f.cert_key.clone(),
        client_ca: client_ca.map(|(_, path)| path),
        dir: cert_dir(env),
    })
}

/// Where the reference agent keeps its certificate, so a user switching
/// agents keeps the certificate their TUI pins:
/// `$XDG_CONFIG_HOME/socktop_agent/tls` or `~/.config/socktop_agent/tls`.
fn cert_dir(env: &Env) -> PathBuf {
    env.get("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("socktop_agent")
        .join("tls")
}

fn collect_settings(env: &Env) -> Settings {
    Settings {
        root: Root::new(env.get("SOCKAGENT_ROOT").unwrap_or_else(|| "/".into())),
        temp_enabled: !env.is_zero("SOCKTOP_AGENT_TEMP"),
        gpu_enabled: !env.is_zero("SOCKTOP_AGENT_GPU"),
        nvml_lib: env
            .get("SOCKAGENT_NVML_LIB")
            .filter(|v| !v.trim().is_empty())
            .map(OsString::from),
        ..Settings::default()
    }
}

fn ttls(env: &Env) -> Result<Ttls, String> {
    let d = Ttls::default();
    Ok(Ttls {
        metrics: env.ms("SOCKTOP_AGENT_METRICS_TTL_MS", d.metrics)?,
        disks: env.ms("SOCKTOP_AGENT_DISKS_TTL_MS", d.disks)?,
        processes: env.ms("SOCKTOP_AGENT_PROCESSES_TTL_MS", d.processes)?,
    })
}

fn limits(env: &Env) -> Result<Limits, String> {
    let d = Limits::default();
    let idle = env.ms(
        "SOCKAGENT_IDLE_TIMEOUT_MS",
        d.idle_timeout.unwrap_or_default(),
    )?;
    Ok(Limits {
        max_connections: env.count("SOCKAGENT_MAX_CONNECTIONS", d.max_connections)?,
        max_queued_output: env.count("SOCKAGENT_MAX_QUEUED_BYTES", d.max_queued_output)?,
        max_queued_total: env.count("SOCKAGENT_MAX_QUEUED_TOTAL", d.max_queued_total)?,
        handshake_timeout: env.ms("SOCKAGENT_HANDSHAKE_TIMEOUT_MS", d.handshake_timeout)?,
        idle_timeout: Some(idle).filter(|d| !d.is_zero()),
        ..d
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(args.iter().map(OsString::from), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })? {
            Action::Run(c) => Ok(*c),
            a => Err(format!("{a:?}")),
        }
    }

    /// Why `run` refuses these flags and variables.
    fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
        run(args, env).unwrap_err()
    }

    /// The config with one variable set.
    fn with_env(name: &str, value: &str) -> Config {
        run(&[], &[(name, value)]).unwrap()
    }

    #[test]
    fn defaults_and_precedence() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        assert_eq!(c.ttls.metrics, Duration::from_millis(250));
        assert_eq!(c.prom_top_n, 10);
        assert_eq!(c.prom_top_cgroups, 20);
        assert_eq!(
            with_env("SOCKAGENT_PROM_TOP_CGROUPS", "0").prom_top_cgroups,
            0
        );
        assert_eq!(with_env("SOCKAGENT_PROM_TOP_N", "0").prom_top_n, 0);
        assert_eq!(
            run(&["-p", "4000"], &[("SOCKTOP_PORT", "5000")])
                .unwrap()
                .port,
            4000
        );
        assert_eq!(run(&["--port=4001"], &[]).unwrap().port, 4001);
        assert_eq!(with_env("SOCKTOP_PORT", "5000").port, 5000);
        assert_eq!(run(&["--enableSSL"], &[]).unwrap().port, 8443);
        assert_eq!(with_env("SOCKTOP_ENABLE_SSL", "1").port, 8443);
        assert!(!with_env("SOCKTOP_AGENT_TEMP", "0").collect.temp_enabled);
        assert!(with_env("SOCKTOP_AGENT_TEMP", "1").collect.temp_enabled);
        assert_eq!(
            with_env("SOCKTOP_AGENT_DISKS_TTL_MS", "0").ttls.disks,
            Duration::ZERO
        );
        assert!(run(&[], &[("SOCKTOP_WORKER_THREADS", "8")]).is_ok());
        assert!(run(&[], &[]).unwrap().collect.gpu_enabled);
        assert!(!with_env("SOCKTOP_AGENT_GPU", "0").collect.gpu_enabled);
        assert_eq!(
            with_env("SOCKAGENT_NVML_LIB", "/opt/x/libnvidia-ml.so.1")
                .collect
                .nvml_lib,
            Some(OsString::from("/opt/x/libnvidia-ml.so.1"))
        );
        assert_eq!(run(&[], &[]).unwrap().collect.nvml_lib, None);
        assert_eq!(with_env("SOCKTOP_TOKEN", "s3").token.as_deref(), Some("s3"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert!(refused(&["--port", "70000"], &[]).contains("--port"));
        assert!(refused(&["--port"], &[]).contains("--port"));
        assert!(refused(&[], &[("SOCKTOP_PORT", "abc")]).contains("SOCKTOP_PORT"));
        assert!(refused(&["--bind", "nowhere"], &[]).contains("--bind"));
        assert!(refused(&["--frobnicate"], &[]).contains("--frobnicate"));
        assert!(refused(&["stray"], &[]).contains("stray"));
        assert!(refused(&[], &[("SOCKTOP_AGENT_METRICS_TTL_MS", "-1")])
            .contains("SOCKTOP_AGENT_METRICS_TTL_MS"));
        assert!(run(&["--cert", "a"], &[]).is_err());
        assert!(refused(&[], &[("SOCKAGENT_PROM_TOP_N", "1001")]).contains("SOCKAGENT_PROM_TOP_N"));
        assert!(run(&[], &[("SOCKAGENT_PROM_TOP_N", "-1")]).is_err());
        assert!(refused(&[], &[("SOCKAGENT_PROM_TOP_CGROUPS", "1001")])
            .contains("SOCKAGENT_PROM_TOP_CGROUPS"));
        for bad in ["0", "-1", "32M", ""] {
            let e = run(&[], &[("SOCKAGENT_MAX_QUEUED_TOTAL", bad)]).unwrap_err();
            assert!(
                e.contains("SOCKAGENT_MAX_QUEUED_TOTAL") && !e.contains('\n'),
                "{e}"
            );
        }
    }

    #[test]
    fn the_total_output_budget_defaults_to_32_mib() {
        assert_eq!(run(&[], &[]).unwrap().limits.max_queued_total, 32 << 20);
        let c = run(&[], &[("SOCKAGENT_MAX_QUEUED_TOTAL", "1000000")]).unwrap();
        assert_eq!(c.limits.max_queued_total, 1_000_000);
    }

    #[test]
    fn cert_and_key_go_together_and_turn_tls_on() {
        for half in [["--cert", "c"], ["--key", "k"]] {
            assert_eq!(run(&half, &[]).unwrap_err(), "--cert and --key go together");
        }
        let c = run(&["--key", "k", "--cert", "c"], &[]).unwrap();
        assert!(c.tls.enabled);
        assert_eq!(c.tls.cert_key, Some(("c".into(), "k".into())));
        assert_eq!(run(&["--enableSSL"], &[]).unwrap().tls.cert_key, None);
    }

    #[test]
    fn client_ca_needs_tls_and_the_flag_wins() {
        let ca = |c: Config| c.tls.client_ca.map(|p| p.to_string_lossy().into_owned());
        assert_eq!(ca(run(&[], &[]).unwrap()), None);
        assert_eq!(
            ca(run(&["--enableSSL", "--client-ca", "/a.pem"], &[]).unwrap()).as_deref(),
            Some("/a.pem")
        );
        assert_eq!(
            ca(run(&["--enableSSL"], &[("SOCKAGENT_CLIENT_CA", "/b.pem")]).unwrap()).as_deref(),
            Some("/b.pem")
        );
        assert_eq!(
            ca(run(
                &["--enableSSL", "--client-ca=/a.pem"],
                &[("SOCKAGENT_CLIENT_CA", "/b.pem")]
            )
            .unwrap())
            .as_deref(),
            Some("/a.pem")
        );
        assert_eq!(
            ca(run(&["--cert", "c", "--key", "k", "--client-ca", "/a.pem"], &[]).unwrap())
                .as_deref(),
            Some("/a.pem"),
            "--cert implies TLS"
        );
        assert_eq!(
            ca(run(&["--client-ca", "/a.pem"], &[("SOCKTOP_ENABLE_SSL", "1")]).unwrap()).as_deref(),
            Some("/a.pem")
        );
        assert_eq!(
            run(&["--client-ca", "/a.pem"], &[]).unwrap_err(),
            "--client-ca needs TLS (--enableSSL)"
        );
        assert_eq!(
            refused(&[], &[("SOCKAGENT_CLIENT_CA", "/b.pem")]),
            "SOCKAGENT_CLIENT_CA needs TLS (--enableSSL)"
        );
        assert_eq!(
            ca(with_env("SOCKAGENT_CLIENT_CA", "")),
            None,
            "an empty variable is unset"
        );
        assert!(run(&["--enableSSL", "--client-ca", ""], &[])
            .unwrap_err()
            .contains("--client-ca"));
        assert!(run(&["--enableSSL", "--client-ca"], &[])
            .unwrap_err()
            .contains("--client-ca"));
    }

    #[test]
    fn history_flag_and_variable() {
        assert_eq!(run(&[], &[]).unwrap().history_s, 900);
        assert_eq!(run(&["--history", "0"], &[]).unwrap().history_s, 0);
        assert_eq!(
            run(&["--history=60"], &[("SOCKAGENT_HISTORY", "30")])
                .unwrap()
                .history_s,
            60
        );
        assert_eq!(with_env("SOCKAGENT_HISTORY", "30").history_s, 30);
        assert!(run(&["--history", "86401"], &[])
            .unwrap_err()
            .contains("--history"));
        assert!(run(&["--history", "-1"], &[]).is_err());
        assert!(refused(&[], &[("SOCKAGENT_HISTORY", "x")]).contains("SOCKAGENT_HISTORY"));
    }

    #[test]
    fn remote_write_flag_and_variables() {
        assert_eq!(run(&[], &[]).unwrap().remote_write, None);
        let r = run(&["--remote-write", "http://p:9090/api/v1/write"], &[])
            .unwrap()
            .remote_write
            .unwrap();
        assert_eq!((r.target.port, r.interval.as_millis()), (9090, 15000));
        let env = [
            ("SOCKAGENT_REMOTE_WRITE_URL", "https://x/w"),
            ("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "1000"),
            ("SOCKAGENT_REMOTE_WRITE_INSTANCE", "board7"),
            ("SOCKAGENT_REMOTE_WRITE_BEARER_FILE", "/t"),
        ];
        let r = run(&[], &env).unwrap().remote_write.unwrap();
        assert!(r.target.https);
        assert_eq!(r.instance.as_deref(), Some("board7"));
        assert_eq!(r.auth, Some(crate::remote::Auth::Bearer("/t".into())));
        assert!(run(&["--remote-write", "ftp://x/"], &[])
            .unwrap_err()
            .starts_with("--remote-write: "));
        assert!(run(&[], &[("SOCKAGENT_REMOTE_WRITE_URL", "x:1")])
            .unwrap_err()
            .starts_with("SOCKAGENT_REMOTE_WRITE_URL: "));
        let bad = [
            ("SOCKAGENT_REMOTE_WRITE_URL", "http://x/"),
            ("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS", "5"),
        ];
        assert!(run(&[], &bad)
            .unwrap_err()
            .contains("SOCKAGENT_REMOTE_WRITE_INTERVAL_MS"));
        let both = [
            ("SOCKAGENT_REMOTE_WRITE_URL", "http://x/"),
            ("SOCKAGENT_REMOTE_WRITE_BEARER_FILE", "/a"),
            ("SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE", "/b"),
        ];
        assert!(run(&[], &both).is_err());
    }

    #[test]
    fn bench_subcommand() {
        let a = parse(["bench", "-n", "5"].map(OsString::from), |_| None).unwrap();
        assert!(matches!(a, Action::Bench { iterations: 5, .. }));
        assert!(matches!(
            parse([OsString::from("bench")], |_| None),
            Ok(Action::Bench {
                iterations: 200,
                ..
            })
        ));
        assert!(parse(["bench", "-n", "0"].map(OsString::from), |_| None).is_err());
        assert!(parse(["-n", "3"].map(OsString::from), |_| None).is_err());
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(
            parse([OsString::from("-V")], |_| None),
            Ok(Action::Version)
        ));
        assert!(matches!(
            parse([OsString::from("--help")], |_| None),
            Ok(Action::Help)
        ));
    }

    #[test]
    fn allowed_origins_flag_and_variable() {
        let shown = |c: &Config| {
            c.allowed_origins
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert!(run(&[], &[]).unwrap().allowed_origins.is_empty());
        let c = run(
            &[
                "--allow-origin",
                "https://Dash.example",
                "--allow-origin",
                "http://10.0.0.2:8080/",
            ],
            &[("SOCKAGENT_ALLOWED_ORIGINS", "http://ignored")],
        )
        .unwrap();
        assert_eq!(
            shown(&c),
            ["https://dash.example:443", "http://10.0.0.2:8080"]
        );
        let c = run(
            &[],
            &[("SOCKAGENT_ALLOWED_ORIGINS", " http://a:1, https://b ,")],
        )
        .unwrap();
        assert_eq!(shown(&c), ["http://a:1", "https://b:443"]);
        for bad in [
            "dash.example",
            "null",
            "https://x/path",
            "http://a,http://b",
            "",
        ] {
            let e = run(&["--allow-origin", bad], &[]).unwrap_err();
            assert!(e.starts_with("--allow-origin: invalid origin"), "{e}");
        }
        let e = refused(&[], &[("SOCKAGENT_ALLOWED_ORIGINS", "http://a, b")]);
        assert!(
            e.starts_with("SOCKAGENT_ALLOWED_ORIGINS: invalid origin \"b\""),
            "{e}"
        );
        assert!(help().contains("--allow-origin") && help().contains("SOCKAGENT_ALLOWED_ORIGINS"));
    }

    #[test]
    fn alerts_file_and_alertmanagers() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c.alerts, crate::alerts::Overrides::default());
        assert!(c.alertmanagers.is_empty());
        let dir = crate::scratch::Scratch::new("cfg-alerts");
        let good = dir.write("good.toml", "[NodeHighTemperature]\nthreshold = 70\n");
        let bad = dir.write("bad.toml", "[NodeHighTemperature]\nfor = \"soon\"\n");
        let g = good.to_str().unwrap();
        let c = run(&["--alerts", g], &[]).unwrap();
        assert_eq!(c.alerts.0[2].threshold, Some(70.0));
        let c = run(&[], &[("SOCKAGENT_ALERTS", g)]).unwrap();
        assert_eq!(c.alerts.0[2].threshold, Some(70.0));
        let e = run(&["--alerts", bad.to_str().unwrap()], &[]).unwrap_err();
        assert!(
            e.starts_with("--alerts: ") && e.contains("bad.toml: NodeHighTemperature.for"),
            "{e}"
        );
        let e = run(&[], &[("SOCKAGENT_ALERTS", "/nonexistent/a.toml")]).unwrap_err();
        assert!(
            e.starts_with("SOCKAGENT_ALERTS: /nonexistent/a.toml: "),
            "{e}"
        );
        drop(dir);

        let c = run(
            &[
                "--alertmanager",
                "http://a:9093/",
                "--alertmanager",
                "https://b",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.alertmanagers, ["http://a:9093", "https://b"]);
        let env = [("SOCKAGENT_ALERTMANAGERS", "http://a:9093, http://b:9093,")];
        assert_eq!(
            run(&[], &env).unwrap().alertmanagers,
            ["http://a:9093", "http://b:9093"]
        );
        let flag = run(&["--alertmanager", "http://c"], &env).unwrap();
        assert_eq!(flag.alertmanagers, ["http://c"], "the flag wins");
        let e = run(&["--alertmanager", "ftp://a"], &[]).unwrap_err();
        assert!(
            e.starts_with("--alertmanager: invalid URL \"ftp://a\""),
            "{e}"
        );
        let e = run(&[], &[("SOCKAGENT_ALERTMANAGERS", "http://a,b")]).unwrap_err();
        assert!(
            e.starts_with("SOCKAGENT_ALERTMANAGERS: invalid URL \"b\""),
            "{e}"
        );
        let nine = ["http://a"; 9].join(",");
        let e = run(&[], &[("SOCKAGENT_ALERTMANAGERS", &nine)]).unwrap_err();
        assert!(e.contains("at most 8"), "{e}");
    }
}
