//! One value each: its parse, and the one-line error naming the flag or
//! variable it came from.

use super::MAX_HISTORY_S;
use super::MAX_TOP_N;
use crate::server::guard::{parse_origin, Origin};
use std::time::Duration;

pub fn parse_port(what: &str, v: &str) -> Result<u16, String> {
    v.trim()
        .parse::<u16>()
        .map_err(|_| format!("{what}: invalid port {v:?} (expected 0-65535)"))
}

pub fn parse_history(name: &str, v: &str) -> Result<u32, String> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= MAX_HISTORY_S)
        .ok_or_else(|| {
            format!("{name}: invalid value {v:?} (expected seconds, 0-{MAX_HISTORY_S}; 0 turns history off)")
        })
}

/// A comma-separated list of origins (one for a flag, many for the variable).
pub fn parse_origins(name: &str, v: &str) -> Result<Vec<Origin>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            parse_origin(o).ok_or_else(|| {
                format!("{name}: invalid origin {o:?} (expected scheme://host[:port], e.g. https://dash.example:8080)")
            })
        })
        .collect()
}

/// The environment, with a typed getter for each kind of variable.
pub struct Env<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    /// Set to `0` (a switch turned off; anything else leaves it on).
    pub fn is_zero(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.trim() == "0")
    }

    /// Milliseconds (0 allowed: off).
    pub fn ms(&self, name: &str, default: Duration) -> Result<Duration, String> {
        match self.get(name) {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{name}: invalid value {v:?} (expected milliseconds)")),
            None => Ok(default),
        }
    }

    /// A positive whole number.
    pub fn count(&self, name: &str, default: usize) -> Result<usize, String> {
        match self.get(name) {
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "{name}: invalid value {v:?} (expected a positive whole number)"
                )),
            },
            None => Ok(default),
        }
    }

    /// How many of the top N `/metrics` lists: 0 to `MAX_TOP_N`.
    pub fn top(&self, name: &str, default: usize) -> Result<usize, String> {
        match self.get(name) {
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n <= MAX_TOP_N => Ok(n),
                _ => Err(format!(
                    "{name}: invalid value {v:?} (expected 0-{MAX_TOP_N})"
                )),
            },
            None => Ok(default),
        }
    }
}
