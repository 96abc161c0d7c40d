//! `--remote-write URL` and its variables (`remote::Settings`): the URL
//! taken apart, the push period, the instance label, the auth and CA files
//! (named here; read at start by `remote::setup`).

use super::values::Env;
use crate::remote::{target, Auth, Settings, Target};
use std::path::PathBuf;
use std::time::Duration;

/// `url` is the flag's value, if given; else `SOCKAGENT_REMOTE_WRITE_URL`.
pub fn parse(url: Option<String>, env: &Env) -> Result<Option<Settings>, String> {
    let (name, url) = match url {
        Some(u) => ("--remote-write", u),
        None => match env
            .get("SOCKAGENT_REMOTE_WRITE_URL")
            .filter(|v| !v.trim().is_empty())
        {
            Some(u) => ("SOCKAGENT_REMOTE_WRITE_URL", u),
            None => return Ok(None),
        },
    };
    let target = Target::parse(url.trim()).map_err(|e| format!("{name}: {e} ({url:?})"))?;
    let path = |var: &str| env.get(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    let var = "SOCKAGENT_REMOTE_WRITE_INTERVAL_MS";
    let interval = match env.get(var) {
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
        (Some(_), Some(_)) => return Err(
            "SOCKAGENT_REMOTE_WRITE_BEARER_FILE, SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE: set one, not both"
                .into(),
        ),
        (Some(b), None) => Some(Auth::Bearer(b)),
        (None, Some(b)) => Some(Auth::Basic(b)),
        (None, None) => None,
    };
    Ok(Some(Settings {
        target,
        interval,
        instance: env
            .get("SOCKAGENT_REMOTE_WRITE_INSTANCE")
            .filter(|v| !v.trim().is_empty()),
        auth,
        ca: path("SOCKAGENT_REMOTE_WRITE_CA"),
    }))
}
