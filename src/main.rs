#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
use sockagent::answers::Answers;
use sockagent::collect::{Collectors, MIN_CPU_WINDOW};
use sockagent::config::{self, Action, Config};
use sockagent::server::{guard, Options, Server};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

/// Raises the soft open-files limit to the hard limit and returns it.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: raised is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    // rlim_t is 32 bits on armv7.
    #[allow(clippy::unnecessary_cast)]
    let cur = lim.rlim_cur as u64;
    cur
}

/// The certificate: the user's (--cert/--key) or the self-signed one.
/// Not inlined: its stack frame (certificate, rustls) is only entered with TLS on.
#[cfg(feature = "tls")]
#[inline(never)]
fn tls_config(cfg: &Config) -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
    use sockagent::server::tls;
    let (cert, key) = match &cfg.tls.cert_key {
        Some(cert_key) => cert_key.clone(),
        None => {
            let host = sockagent::collect::hostname(&cfg.collect.root);
            tls::ensure_self_signed(&cfg.tls.dir, &host, &cfg.extra_sans)?
        }
    };
    log::info!("TLS certificate {}", cert.display());
    if let Some(ca) = &cfg.tls.client_ca {
        log::info!("client certificates required, signed by {}", ca.display());
    }
    tls::server_config(&cert, &key, cfg.tls.client_ca.as_deref())
}

/// A client CA file that cannot be used is a bad value like any other:
/// one line and exit 2, before anything is logged.
#[cfg(feature = "tls")]
fn check_client_ca(cfg: &Config) -> Result<(), String> {
    match &cfg.tls.client_ca {
        Some(ca) => sockagent::server::tls::client_roots(ca).map(drop),
        None => Ok(()),
    }
}

#[cfg(not(feature = "tls"))]
fn check_client_ca(_: &Config) -> Result<(), String> {
    Ok(())
}

/// The names a browser may reach this agent by (Origin and Host checks):
/// localhost, the host name, SOCKTOP_AGENT_EXTRA_SANS (as the certificate
/// takes them), on the port it listens on; and the allowed origins.
fn names(cfg: &Config, port: u16) -> guard::Names {
    let host = sockagent::collect::hostname(&cfg.collect.root);
    guard::Names::new(port, &host, &cfg.extra_sans, cfg.allowed_origins.clone())
}

/// The remote-write pusher's files and TLS, read at start (an error is
/// exit status 2, like a bad flag).
#[cfg(feature = "remote-write")]
fn remote_setup(cfg: &Config) -> Result<Option<sockagent::remote::Setup>, String> {
    let Some(s) = cfg.remote_write.clone() else {
        return Ok(None);
    };
    let host = sockagent::collect::hostname(&cfg.collect.root);
    sockagent::remote::setup(s, &host).map(Some)
}

#[cfg(not(feature = "remote-write"))]
fn remote_setup(cfg: &Config) -> Result<Option<()>, String> {
    if !cfg.alertmanagers.is_empty() {
        return Err("--alertmanager: this build cannot deliver alerts (built without the `remote-write` feature, its HTTP client)".into());
    }
    match cfg.remote_write {
        Some(_) => Err("--remote-write: this build has no remote-write (built without the `remote-write` feature)".into()),
        None => Ok(None),
    }
}

/// The Alertmanager senders' setup: the `instance` label is the host
/// name, `generatorURL` the agent's page; https ones trust the system's
/// roots (or `SSL_CERT_FILE`).
#[cfg(feature = "remote-write")]
fn alertmanagers(
    cfg: &Config,
    port: u16,
) -> Result<Option<sockagent::remote::alertmanager::Setup>, String> {
    if cfg.alertmanagers.is_empty() {
        return Ok(None);
    }
    if cfg.history_s == 0 {
        log::warn!("--alertmanager: nothing will be sent: the alert rules ride the history tick, and --history 0 turns it off");
    }
    let host = sockagent::collect::hostname(&cfg.collect.root);
    let scheme = if cfg.tls.enabled { "https" } else { "http" };
    #[cfg(feature = "tls")]
    let tls = match cfg.alertmanagers.iter().any(|u| u.starts_with("https:")) {
        true => Some(sockagent::remote::tls::client_config(None)?),
        false => None,
    };
    Ok(Some(sockagent::remote::alertmanager::Setup {
        urls: cfg.alertmanagers.clone(),
        generator_url: format!("{scheme}://{host}:{port}/"),
        instance: host,
        #[cfg(feature = "tls")]
        tls,
    }))
}

#[cfg(feature = "remote-write")]
type Remote = Option<sockagent::remote::Setup>;
#[cfg(not(feature = "remote-write"))]
type Remote = Option<()>;

fn run(cfg: Config, remote: Remote) -> Result<(), String> {
    #[cfg(not(feature = "remote-write"))]
    let _ = remote;
    #[cfg(feature = "tls")]
    let tls = if cfg.tls.enabled {
        Some(tls_config(&cfg)?)
    } else {
        None
    };
    #[cfg(not(feature = "tls"))]
    if cfg.tls.client_ca.is_some() {
        return Err("--client-ca / SOCKAGENT_CLIENT_CA: this build has no TLS (built without the `tls` feature)".into());
    }
    #[cfg(not(feature = "tls"))]
    if cfg.tls.enabled {
        return Err("--enableSSL: this build has no TLS (built without the `tls` feature)".into());
    }
    let addr = SocketAddr::new(cfg.bind, cfg.port);
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let nofile = raise_nofile();
    // Keep half of what is left after the connections for kept /proc files.
    let fd_budget = (nofile.saturating_sub(cfg.limits.max_connections as u64 + 64) / 2) as usize;
    let primed = Instant::now();
    let names = names(&cfg, local.port());
    #[cfg(feature = "remote-write")]
    let am = alertmanagers(&cfg, local.port())?;
    let answers = Answers::new(Collectors::new(cfg.collect, fd_budget), cfg.ttls)
        .with_prom_top_n(cfg.prom_top_n)
        .with_prom_top_cgroups(cfg.prom_top_cgroups)
        .with_history(cfg.history_s)
        .with_alerts(&cfg.alerts, cfg.alertmanagers.len());
    let opts = Options {
        token: cfg.token.clone(),
        limits: cfg.limits,
        journal_cmd: cfg.journal_cmd,
        names,
        #[cfg(feature = "tls")]
        tls,
        #[cfg(feature = "remote-write")]
        remote,
        #[cfg(feature = "remote-write")]
        alertmanagers: am,
    };
    let mut server = Server::new(listener, answers, opts).map_err(|e| e.to_string())?;
    log::info!(
        "listening on {}://{local}/ws (token {})",
        if cfg.tls.enabled { "wss" } else { "ws" },
        if cfg.token.is_some() {
            "required"
        } else {
            "not required"
        }
    );
    // The first answer's CPU figures need a real window behind them.
    if let Some(rest) = MIN_CPU_WINDOW.checked_sub(primed.elapsed()) {
        std::thread::sleep(rest);
    }
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

/// `sockagent bench`; not inlined, so serving never touches its stack frame.
#[inline(never)]
fn bench(cfg: Config, iterations: u32) -> ExitCode {
    match sockagent::bench::run(cfg.collect, iterations) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sockagent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let action = match config::parse(std::env::args_os().skip(1), env) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sockagent: {e}");
            return ExitCode::from(2);
        }
    };
    match action {
        Action::Help => {
            print!("{}", config::help());
            ExitCode::SUCCESS
        }
        Action::Version => {
            println!(
                "sockagent {} (socktop_agent 1.60.1 compatible)",
                config::VERSION
            );
            ExitCode::SUCCESS
        }
        Action::Bench {
            iterations,
            config: cfg,
        } => bench(*cfg, iterations),
        Action::Run(cfg) => {
            if let Err(e) = check_client_ca(&cfg) {
                eprintln!("sockagent: {e}");
                return ExitCode::from(2);
            }
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                .format_timestamp_millis()
                .init();
            if std::env::var_os("SOCKTOP_WORKER_THREADS").is_some() {
                log::debug!(
                    "SOCKTOP_WORKER_THREADS is ignored: sockagent runs one thread by design"
                );
            }
            // remote-write's files, read at start: a bad one is a bad setting
            let remote = match remote_setup(&cfg) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sockagent: {e}");
                    return ExitCode::from(2);
                }
            };
            match run(*cfg, remote) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sockagent: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
