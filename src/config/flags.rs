//! The command line (lexopt): what each flag says, before the environment
//! fills in the rest.

use super::values::{parse_history, parse_origins, parse_port};
use crate::server::guard::Origin;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

/// The flags given; `None`/empty where the environment or a default decides.
#[derive(Debug, Default)]
pub struct Flags {
    pub port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub tls: bool,
    /// `--cert` and `--key`, given together or not at all.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    pub client_ca: Option<PathBuf>,
    pub history: Option<u32>,
    /// `--remote-write URL`, checked with the variables (`config::remote`).
    pub remote_write: Option<String>,
    /// `--alerts FILE`: the alert rules' changes (`alerts::config`).
    pub alerts: Option<PathBuf>,
    /// `--alertmanager URL`, each checked (`alerts::deliver::parse_url`).
    pub alertmanagers: Vec<String>,
    pub origins: Vec<Origin>,
    /// `bench [-n N]`: the iterations.
    pub bench: Option<u32>,
}

pub enum Parsed {
    Flags(Box<Flags>),
    Help,
    Version,
}

/// The value of the flag just read, as UTF-8.
fn text(p: &mut lexopt::Parser, flag: &str) -> Result<String, String> {
    p.value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| format!("{flag}: value is not valid UTF-8"))
}

fn path(p: &mut lexopt::Parser) -> Result<PathBuf, String> {
    p.value().map(PathBuf::from).map_err(|e| e.to_string())
}

/// The value of the flag just read, a path that must not be empty.
fn some_path(p: &mut lexopt::Parser, flag: &str) -> Result<PathBuf, String> {
    let v = path(p)?;
    if v.as_os_str().is_empty() {
        return Err(format!("{flag}: empty path"));
    }
    Ok(v)
}

/// Parses `args` (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut f = Flags::default();
    let (mut cert, mut key) = (None, None);
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('p') | Long("port") => {
                f.port = Some(parse_port("--port", &text(&mut p, "--port")?)?)
            }
            Long("bind") => {
                let v = text(&mut p, "--bind")?;
                f.bind = Some(v.trim().parse::<IpAddr>().map_err(|_| {
                    format!("--bind: invalid address {v:?} (expected an IP, e.g. 127.0.0.1)")
                })?);
            }
            Long("enableSSL") => f.tls = true,
            Long("cert") => cert = Some(path(&mut p)?),
            Long("key") => key = Some(path(&mut p)?),
            Long("client-ca") => f.client_ca = Some(some_path(&mut p, "--client-ca")?),
            Long("allow-origin") => {
                let v = text(&mut p, "--allow-origin")?;
                if v.contains(',') || v.trim().is_empty() {
                    return Err(format!(
                        "--allow-origin: invalid origin {v:?} (one scheme://host[:port] per flag)"
                    ));
                }
                f.origins.extend(parse_origins("--allow-origin", &v)?);
            }
            Long("remote-write") => f.remote_write = Some(text(&mut p, "--remote-write")?),
            Long("alerts") => f.alerts = Some(some_path(&mut p, "--alerts")?),
            Long("alertmanager") => {
                let v = text(&mut p, "--alertmanager")?;
                f.alertmanagers
                    .push(crate::alerts::deliver::parse_url("--alertmanager", &v)?);
            }
            Long("history") => {
                f.history = Some(parse_history("--history", &text(&mut p, "--history")?)?)
            }
            Value(v) if v == "bench" && f.bench.is_none() => f.bench = Some(200),
            Short('n') | Long("iterations") if f.bench.is_some() => {
                let v = text(&mut p, "--iterations")?;
                f.bench = Some(v.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(
                    || {
                        format!(
                            "--iterations: invalid value {v:?} (expected a positive whole number)"
                        )
                    },
                )?);
            }
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Short('h') | Long("help") => return Ok(Parsed::Help),
            other => return Err(format!("{} (see --help)", other.unexpected())),
        }
    }
    f.cert_key = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err("--cert and --key go together".into()),
    };
    Ok(Parsed::Flags(Box::new(f)))
}
