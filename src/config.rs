//! Flags and environment → `Config`, validated in one place.
//!
//! The reference agent's flags and variables work the same way here; where
//! it silently falls back to a default on a bad value, we stop with one
//! line naming the flag or variable (exit status 2).

use crate::collect::fs::Root;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Most processes `SOCKAGENT_PROM_TOP_N` may ask for: each is two series.
pub const MAX_TOP_N: usize = 1000;

/// The history ring's default length, seconds (15 minutes at one sample a second).
pub const DEFAULT_HISTORY_S: u32 = 900;
/// The longest history `--history` may ask for: a day (a few MiB on a many-core host).
pub const MAX_HISTORY_S: u32 = 86_400;

pub const HELP: &str = "\
sockagent: a light Linux metrics agent speaking the socktop WebSocket API

Usage: sockagent [OPTIONS]
       sockagent bench [-n N]   time each collector N times (default 200) and exit

Options:
  -p, --port N        listening port (default 3000; 8443 with --enableSSL) [SOCKTOP_PORT]
      --bind ADDR     address to listen on (default 0.0.0.0; e.g. 127.0.0.1, ::)
      --enableSSL     serve wss:// (TLS) [SOCKTOP_ENABLE_SSL=1]
      --cert PATH     TLS certificate chain (PEM), with --key
      --key PATH      TLS private key (PEM), with --cert
      --client-ca PATH
                      with TLS, admit only clients whose certificate is signed by
                      a CA in this PEM file [SOCKAGENT_CLIENT_CA]
      --history SECONDS
                      keep one sample a second for this long, for the history
                      request (default 900; 0 = off, no wakeups while idle;
                      at most 86400) [SOCKAGENT_HISTORY]
      --remote-write URL
                      push /metrics and the history's seconds to this Prometheus
                      remote-write endpoint (http:// or https://)
                      [SOCKAGENT_REMOTE_WRITE_URL]
  -V, --version       print the version and exit
  -h, --help          print this help and exit

Environment:
  SOCKTOP_TOKEN                   require ?token=<value> on /ws
  SOCKTOP_AGENT_TEMP=0            no temperatures
  SOCKTOP_AGENT_GPU=0             no GPU probing
  SOCKAGENT_NVML_LIB              NVIDIA's NVML library to load (default libnvidia-ml.so.1)
  SOCKTOP_AGENT_METRICS_TTL_MS    metrics cache window (250; 0 = off)
  SOCKTOP_AGENT_DISKS_TTL_MS      disks cache window (1000; 0 = off)
  SOCKTOP_AGENT_PROCESSES_TTL_MS  processes cache window (1500; 0 = off)
  SOCKTOP_WORKER_THREADS          accepted and ignored (one thread by design)
  SOCKAGENT_ROOT                  read /proc and /sys under this directory (default /)
  SOCKAGENT_JOURNALCTL            journal reader for journal_entries (default journalctl)
  SOCKAGENT_MAX_CONNECTIONS       open connections before new ones get 503 (1024)
  SOCKAGENT_MAX_QUEUED_BYTES      output queued for a client that does not read before it is dropped (4194304)
  SOCKAGENT_HANDSHAKE_TIMEOUT_MS  time to finish the TLS handshake and send the request head (5000)
  SOCKAGENT_IDLE_TIMEOUT_MS       close a WebSocket client silent this long (0 = never, the default)
  SOCKAGENT_PROM_TOP_N            processes listed by /metrics, the top N by CPU (10; 0-1000)
  SOCKAGENT_PROM_TOP_CGROUPS      cgroups listed by /metrics, the top N by CPU (20; 0-1000)
  SOCKTOP_AGENT_EXTRA_SANS        extra DNS names / IPs for the self-signed certificate (comma-separated)
  SOCKAGENT_REMOTE_WRITE_INTERVAL_MS     push period with --remote-write (15000; at least 100)
  SOCKAGENT_REMOTE_WRITE_INSTANCE        the pushed `instance` label (default the host name)
  SOCKAGENT_REMOTE_WRITE_BEARER_FILE     file holding a bearer token for the endpoint
  SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE file holding user:password for the endpoint
  SOCKAGENT_REMOTE_WRITE_CA              CAs (PEM) the https endpoint is checked against
                                         (default SSL_CERT_FILE, else the system's bundle)
  RUST_LOG                        log level: error, warn, info (default), debug, trace
";

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: IpAddr,
    pub token: Option<String>,
    pub tls: bool,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Client certificates required, signed by a CA in this PEM file.
    pub client_ca: Option<PathBuf>,
    pub temp_enabled: bool,
    pub gpu_enabled: bool,
    /// The NVML library to load instead of `libnvidia-ml.so.1`.
    pub nvml_lib: Option<OsString>,
    pub metrics_ttl: Duration,
    pub disks_ttl: Duration,
    pub processes_ttl: Duration,
    pub root: Root,
    /// The journal reader run for `journal_entries`.
    pub journal_cmd: OsString,
    pub max_connections: usize,
    pub max_queued_output: usize,
    pub handshake_timeout: Duration,
    /// 0: WebSocket clients may stay silent forever.
    pub idle_timeout: Duration,
    /// Processes listed by `/metrics` (the top N by CPU).
    pub prom_top_n: usize,
    /// Cgroups listed by `/metrics` (the top N by CPU).
    pub prom_top_cgroups: usize,
    /// Seconds of history kept, one sample a second (0: none).
    pub history_s: u32,
    /// `--remote-write`: where and how to push.
    pub remote_write: Option<crate::remote::Settings>,
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

fn parse_port(what: &str, v: &str) -> Result<u16, String> {
    v.trim()
        .parse::<u16>()
        .map_err(|_| format!("{what}: invalid port {v:?} (expected 0-65535)"))
}

fn parse_history(name: &str, v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= MAX_HISTORY_S)
        .ok_or_else(|| {
            format!("{name}: invalid value {v:?} (expected seconds, 0-{MAX_HISTORY_S}; 0 turns history off)")
        })
}

fn parse_ms(name: &str, v: &str) -> Result<Duration, String> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            format!("{name}: invalid value {v:?} (expected milliseconds, 0 turns the cache off)")
        })
}

/// `--remote-write` and its variables; `url` is the flag's value, if given.
fn parse_remote(
    url: Option<String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<crate::remote::Settings>, String> {
    use crate::remote::{target, Auth, Settings, Target};
    let (name, url) = match url {
        Some(u) => ("--remote-write", u),
        None => match env("SOCKAGENT_REMOTE_WRITE_URL").filter(|v| !v.trim().is_empty()) {
            Some(u) => ("SOCKAGENT_REMOTE_WRITE_URL", u),
            None => return Ok(None),
        },
    };
    let target = Target::parse(url.trim()).map_err(|e| format!("{name}: {e} ({url:?})"))?;
    let path = |var: &str| env(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    let var = "SOCKAGENT_REMOTE_WRITE_INTERVAL_MS";
    let interval = match env(var) {
        None => target::DEFAULT_INTERVAL,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_millis)
            .filter(|d| *d >= target::MIN_INTERVAL)
            .ok_or_else(|| {
                format!(
                    "{var}: invalid value {v:?} (expected milliseconds, at least {})",
                    target::MIN_INTERVAL.as_millis()
                )
            })?,
    };
    let auth = match (
        path("SOCKAGENT_REMOTE_WRITE_BEARER_FILE"),
        path("SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE"),
    ) {
        (Some(_), Some(_)) => return Err("SOCKAGENT_REMOTE_WRITE_BEARER_FILE and SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE: one or the other".into()),
        (Some(b), None) => Some(Auth::Bearer(b)),
        (None, Some(b)) => Some(Auth::Basic(b)),
        (None, None) => None,
    };
    Ok(Some(Settings {
        target,
        interval,
        instance: env("SOCKAGENT_REMOTE_WRITE_INSTANCE").filter(|v| !v.trim().is_empty()),
        auth,
        ca: path("SOCKAGENT_REMOTE_WRITE_CA"),
    }))
}

/// Parses `args` (without the program name) and an environment lookup.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Action, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let (mut port, mut bind, mut tls, mut cert, mut key) = (None, None, false, None, None);
    let mut client_ca = None;
    let mut history = None;
    let mut remote_write = None;
    let mut bench: Option<u32> = None;
    let str_of = |v: OsString, flag: &str| {
        v.into_string()
            .map_err(|_| format!("{flag}: value is not valid UTF-8"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('p') | Long("port") => {
                let v = str_of(p.value().map_err(|e| e.to_string())?, "--port")?;
                port = Some(parse_port("--port", &v)?);
            }
            Long("bind") => {
                let v = str_of(p.value().map_err(|e| e.to_string())?, "--bind")?;
                bind = Some(v.trim().parse::<IpAddr>().map_err(|_| {
                    format!("--bind: invalid address {v:?} (expected an IP, e.g. 127.0.0.1)")
                })?);
            }
            Long("enableSSL") => tls = true,
            Long("cert") => cert = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?)),
            Long("key") => key = Some(PathBuf::from(p.value().map_err(|e| e.to_string())?)),
            Long("client-ca") => {
                let v = p.value().map_err(|e| e.to_string())?;
                if v.is_empty() {
                    return Err("--client-ca: empty path".into());
                }
                client_ca = Some(("--client-ca", PathBuf::from(v)));
            }
            Long("remote-write") => {
                remote_write = Some(str_of(
                    p.value().map_err(|e| e.to_string())?,
                    "--remote-write",
                )?);
            }
            Long("history") => {
                let v = str_of(p.value().map_err(|e| e.to_string())?, "--history")?;
                history = Some(parse_history("--history", &v)?);
            }
            Value(v) if v == "bench" && bench.is_none() => bench = Some(200),
            Short('n') | Long("iterations") if bench.is_some() => {
                let v = str_of(p.value().map_err(|e| e.to_string())?, "--iterations")?;
                bench = Some(
                    v.trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--iterations: invalid value {v:?} (expected a positive whole number)"))?,
                );
            }
            Short('V') | Long("version") => return Ok(Action::Version),
            Short('h') | Long("help") => return Ok(Action::Help),
            other => return Err(format!("{} (see --help)", other.unexpected())),
        }
    }
    if let Some(v) = env("SOCKTOP_ENABLE_SSL") {
        if v.trim() == "1" {
            tls = true;
        }
    }
    if cert.is_some() != key.is_some() {
        return Err("--cert and --key go together".into());
    }
    if cert.is_some() {
        tls = true;
    }
    let client_ca = client_ca.or_else(|| {
        env("SOCKAGENT_CLIENT_CA")
            .filter(|v| !v.is_empty())
            .map(|v| ("SOCKAGENT_CLIENT_CA", PathBuf::from(v)))
    });
    if let Some((name, _)) = &client_ca {
        if !tls {
            return Err(format!("{name} needs TLS (--enableSSL)"));
        }
    }
    let client_ca = client_ca.map(|(_, path)| path);
    let port = match port {
        Some(p) => p,
        None => match env("SOCKTOP_PORT") {
            Some(v) => parse_port("SOCKTOP_PORT", &v)?,
            None if tls => 8443,
            None => 3000,
        },
    };
    let ttl = |name: &str, default: u64| match env(name) {
        Some(v) => parse_ms(name, &v),
        None => Ok(Duration::from_millis(default)),
    };
    let count = |name: &str, default: usize| match env(name) {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{name}: invalid value {v:?} (expected a positive whole number)"
            )),
        },
        None => Ok(default),
    };
    let top = |name: &str, default: usize| match env(name) {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= MAX_TOP_N => Ok(n),
            _ => Err(format!(
                "{name}: invalid value {v:?} (expected 0-{MAX_TOP_N})"
            )),
        },
        None => Ok(default),
    };
    let prom_top_n = top("SOCKAGENT_PROM_TOP_N", 10)?;
    let prom_top_cgroups = top(
        "SOCKAGENT_PROM_TOP_CGROUPS",
        crate::answers::PROM_TOP_CGROUPS,
    )?;
    let token = env("SOCKTOP_TOKEN").filter(|t| !t.is_empty());
    let history_s = match history {
        Some(h) => h,
        None => match env("SOCKAGENT_HISTORY") {
            Some(v) => parse_history("SOCKAGENT_HISTORY", &v)?,
            None => DEFAULT_HISTORY_S,
        },
    };
    let config = Box::new(Config {
        port,
        bind: bind.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        token,
        tls,
        cert,
        key,
        client_ca,
        temp_enabled: env("SOCKTOP_AGENT_TEMP").is_none_or(|v| v.trim() != "0"),
        gpu_enabled: env("SOCKTOP_AGENT_GPU").is_none_or(|v| v.trim() != "0"),
        nvml_lib: env("SOCKAGENT_NVML_LIB")
            .filter(|v| !v.trim().is_empty())
            .map(OsString::from),
        metrics_ttl: ttl("SOCKTOP_AGENT_METRICS_TTL_MS", 250)?,
        disks_ttl: ttl("SOCKTOP_AGENT_DISKS_TTL_MS", 1000)?,
        processes_ttl: ttl("SOCKTOP_AGENT_PROCESSES_TTL_MS", 1500)?,
        root: Root::new(env("SOCKAGENT_ROOT").unwrap_or_else(|| "/".into())),
        journal_cmd: env("SOCKAGENT_JOURNALCTL")
            .unwrap_or_else(|| "journalctl".into())
            .into(),
        max_connections: count("SOCKAGENT_MAX_CONNECTIONS", 1024)?,
        max_queued_output: count("SOCKAGENT_MAX_QUEUED_BYTES", 4 << 20)?,
        handshake_timeout: ttl("SOCKAGENT_HANDSHAKE_TIMEOUT_MS", 5000)?,
        idle_timeout: ttl("SOCKAGENT_IDLE_TIMEOUT_MS", 0)?,
        prom_top_n,
        prom_top_cgroups,
        history_s,
        remote_write: parse_remote(remote_write, &env)?,
    });
    Ok(match bench {
        Some(iterations) => Action::Bench { iterations, config },
        None => Action::Run(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn defaults_and_precedence() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        assert_eq!(c.metrics_ttl, Duration::from_millis(250));
        assert_eq!(c.prom_top_n, 10);
        assert_eq!(c.prom_top_cgroups, 20);
        assert_eq!(
            run(&[], &[("SOCKAGENT_PROM_TOP_CGROUPS", "0")])
                .unwrap()
                .prom_top_cgroups,
            0
        );
        assert_eq!(
            run(&[], &[("SOCKAGENT_PROM_TOP_N", "0")])
                .unwrap()
                .prom_top_n,
            0
        );
        assert_eq!(
            run(&["-p", "4000"], &[("SOCKTOP_PORT", "5000")])
                .unwrap()
                .port,
            4000
        );
        assert_eq!(run(&["--port=4001"], &[]).unwrap().port, 4001);
        assert_eq!(run(&[], &[("SOCKTOP_PORT", "5000")]).unwrap().port, 5000);
        assert_eq!(run(&["--enableSSL"], &[]).unwrap().port, 8443);
        assert_eq!(run(&[], &[("SOCKTOP_ENABLE_SSL", "1")]).unwrap().port, 8443);
        assert!(
            !run(&[], &[("SOCKTOP_AGENT_TEMP", "0")])
                .unwrap()
                .temp_enabled
        );
        assert!(
            run(&[], &[("SOCKTOP_AGENT_TEMP", "1")])
                .unwrap()
                .temp_enabled
        );
        assert_eq!(
            run(&[], &[("SOCKTOP_AGENT_DISKS_TTL_MS", "0")])
                .unwrap()
                .disks_ttl,
            Duration::ZERO
        );
        assert!(run(&[], &[("SOCKTOP_WORKER_THREADS", "8")]).is_ok());
        assert!(run(&[], &[]).unwrap().gpu_enabled);
        assert!(!run(&[], &[("SOCKTOP_AGENT_GPU", "0")]).unwrap().gpu_enabled);
        assert_eq!(
            run(&[], &[("SOCKAGENT_NVML_LIB", "/opt/x/libnvidia-ml.so.1")])
                .unwrap()
                .nvml_lib,
            Some(OsString::from("/opt/x/libnvidia-ml.so.1"))
        );
        assert_eq!(run(&[], &[]).unwrap().nvml_lib, None);
        assert_eq!(
            run(&[], &[("SOCKTOP_TOKEN", "s3")])
                .unwrap()
                .token
                .as_deref(),
            Some("s3")
        );
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert!(run(&["--port", "70000"], &[])
            .unwrap_err()
            .contains("--port"));
        assert!(run(&["--port"], &[]).unwrap_err().contains("--port"));
        assert!(run(&[], &[("SOCKTOP_PORT", "abc")])
            .unwrap_err()
            .contains("SOCKTOP_PORT"));
        assert!(run(&["--bind", "nowhere"], &[])
            .unwrap_err()
            .contains("--bind"));
        assert!(run(&["--frobnicate"], &[])
            .unwrap_err()
            .contains("--frobnicate"));
        assert!(run(&["stray"], &[]).unwrap_err().contains("stray"));
        assert!(run(&[], &[("SOCKTOP_AGENT_METRICS_TTL_MS", "-1")])
            .unwrap_err()
            .contains("SOCKTOP_AGENT_METRICS_TTL_MS"));
        assert!(run(&["--cert", "a"], &[]).is_err());
        assert!(run(&[], &[("SOCKAGENT_PROM_TOP_N", "1001")])
            .unwrap_err()
            .contains("SOCKAGENT_PROM_TOP_N"));
        assert!(run(&[], &[("SOCKAGENT_PROM_TOP_N", "-1")]).is_err());
        assert!(run(&[], &[("SOCKAGENT_PROM_TOP_CGROUPS", "1001")])
            .unwrap_err()
            .contains("SOCKAGENT_PROM_TOP_CGROUPS"));
    }

    #[test]
    fn client_ca_needs_tls_and_the_flag_wins() {
        let ca = |c: Config| c.client_ca.map(|p| p.to_string_lossy().into_owned());
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
            run(&[], &[("SOCKAGENT_CLIENT_CA", "/b.pem")]).unwrap_err(),
            "SOCKAGENT_CLIENT_CA needs TLS (--enableSSL)"
        );
        assert_eq!(
            ca(run(&[], &[("SOCKAGENT_CLIENT_CA", "")]).unwrap()),
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
        assert_eq!(
            run(&[], &[("SOCKAGENT_HISTORY", "30")]).unwrap().history_s,
            30
        );
        assert!(run(&["--history", "86401"], &[])
            .unwrap_err()
            .contains("--history"));
        assert!(run(&["--history", "-1"], &[]).is_err());
        assert!(run(&[], &[("SOCKAGENT_HISTORY", "x")])
            .unwrap_err()
            .contains("SOCKAGENT_HISTORY"));
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
}
