//! `--alerts FILE` (`SOCKAGENT_ALERTS`): a TOML file that changes any
//! rule's threshold, `for` or severity, or turns it off. With no file the
//! built-in rules apply as they are.
//!
//! ```toml
//! [NodeHighTemperature]
//! threshold = 75        # the rule's own unit (°C, %, hours)
//! for = "5m"            # "90s", "1h30m", or seconds as a number
//! severity = "critical" # info, warning, critical
//!
//! [NodeCpuThrottled]
//! enabled = false
//!
//! [NodeFilesystemAlmostOutOfSpace.critical]   # one of its two instances
//! threshold = 3
//! ```
//!
//! A bad file or value is one line naming the file, the rule and the key.
//! TOML is read by `basic-toml` (dtolnay's; 45 KB of a stripped release
//! build against 107 KB for `toml` with only its `parse` feature) into a
//! `serde_json::Value`, which the agent links anyway, and checked here.

use super::rules::{Cmp, Rule, Severity, N_RULES, RULES};
use serde_json::{Map, Value};
use std::path::Path;

/// The largest alerts file read (a full one is well under 4 KiB).
pub const MAX_FILE: u64 = 64 * 1024;
/// The longest `for`: a week, seconds.
pub const MAX_FOR_S: u32 = 7 * 86_400;
const KEYS: &str = "threshold, for, severity, enabled";

/// One rule instance's changes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Override {
    pub threshold: Option<f64>,
    pub for_s: Option<u32>,
    pub severity: Option<Severity>,
    pub enabled: Option<bool>,
}

/// Every rule instance's changes, by index in `RULES`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides(pub [Override; N_RULES]);

impl Overrides {
    /// Applies the changes to `rules`.
    pub fn apply(&self, rules: &mut [Rule; N_RULES]) {
        for (r, o) in rules.iter_mut().zip(&self.0) {
            r.threshold = o.threshold.or(r.threshold);
            r.for_s = o.for_s.unwrap_or(r.for_s);
            r.severity = o.severity.unwrap_or(r.severity);
            r.enabled = o.enabled.unwrap_or(r.enabled);
        }
    }

    /// Reads and checks `path`; the error is one line naming `flag` (the
    /// flag or variable that gave it) and the file.
    pub fn load(flag: &str, path: &Path) -> Result<Overrides, String> {
        let name = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{flag}: {name}: {e}"))?;
        if meta.len() > MAX_FILE {
            return Err(format!("{flag}: {name}: larger than {MAX_FILE} bytes"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{flag}: {name}: {e}"))?;
        Overrides::parse(&text).map_err(|e| format!("{flag}: {name}: {e}"))
    }

    /// Parses an alerts file's text.
    pub fn parse(text: &str) -> Result<Overrides, String> {
        let doc: Value =
            basic_toml::from_str(text).map_err(|e| e.to_string().replace(['\n', '\r'], " "))?;
        let Value::Object(doc) = doc else {
            return Err("expected a table of rules".into());
        };
        let mut out = Overrides::default();
        for (name, section) in &doc {
            let idx: Vec<usize> = (0..N_RULES)
                .filter(|&i| RULES.get(i).is_some_and(|r| r.name == name))
                .collect();
            if idx.is_empty() {
                return Err(format!(
                    "unknown rule {name:?} (expected one of: {})",
                    rule_names()
                ));
            }
            let Value::Object(section) = section else {
                return Err(format!("{name}: expected a table ([{name}])"));
            };
            out.section(name, &idx, section)?;
        }
        Ok(out)
    }

    /// One `[Rule]` table: keys for all its instances, and for a rule with
    /// several, a sub-table per instance named by its built-in severity.
    fn section(
        &mut self,
        name: &str,
        idx: &[usize],
        section: &Map<String, Value>,
    ) -> Result<(), String> {
        for (key, v) in section {
            let sub = idx.iter().copied().find(|&i| {
                RULES.get(i).is_some_and(|r| r.severity.as_str() == key) && idx.len() > 1
            });
            match (sub, v) {
                (Some(i), Value::Object(m)) => {
                    let at = format!("{name}.{key}");
                    for (k, v) in m {
                        self.key(&at, i, k, v)?;
                    }
                }
                _ => {
                    for &i in idx {
                        self.key(name, i, key, v)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn key(&mut self, at: &str, i: usize, key: &str, v: &Value) -> Result<(), String> {
        let (Some(o), Some(rule)) = (self.0.get_mut(i), RULES.get(i)) else {
            return Ok(());
        };
        let bad = |what: &str| format!("{at}.{key}: {what}");
        match key {
            "threshold" => {
                if rule.cmp == Cmp::Flag {
                    return Err(bad("this rule has no threshold (it is a yes or no)"));
                }
                let t = v
                    .as_f64()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .ok_or_else(|| bad(&format!("expected a number, 0 or more, not {v}")))?;
                o.threshold = Some(t);
            }
            "for" => {
                o.for_s = Some(duration(v).ok_or_else(|| {
                    bad(&format!(
                        "expected a duration like \"90s\", \"5m\", \"1h30m\" (at most 7d), not {v}"
                    ))
                })?)
            }
            "severity" => {
                let s = v.as_str().and_then(Severity::parse).ok_or_else(|| {
                    bad(&format!(
                        "expected \"info\", \"warning\" or \"critical\", not {v}"
                    ))
                })?;
                o.severity = Some(s);
            }
            "enabled" => {
                o.enabled = Some(
                    v.as_bool()
                        .ok_or_else(|| bad(&format!("expected true or false, not {v}")))?,
                );
            }
            _ => return Err(bad(&format!("unknown key (expected {KEYS})"))),
        }
        Ok(())
    }
}

fn rule_names() -> String {
    let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
    names.dedup();
    names.join(", ")
}

/// `for`: seconds as a whole number, or "1h30m", "90s", "0s" (d, h, m, s).
fn duration(v: &Value) -> Option<u32> {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n).ok().filter(|n| *n <= MAX_FOR_S);
    }
    let s = v.as_str()?.trim();
    if s.is_empty() {
        return None;
    }
    let (mut total, mut num) = (0u64, None::<u64>);
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(unit)?)?;
    }
    if num.is_some() {
        return None;
    }
    u32::try_from(total).ok().filter(|n| *n <= MAX_FOR_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> [Rule; N_RULES] {
        let mut r = RULES;
        Overrides::parse(text).unwrap().apply(&mut r);
        r
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(rules(""), RULES);
        assert_eq!(Overrides::parse("").unwrap(), Overrides::default());
    }

    #[test]
    fn changes_and_instances() {
        let r = rules(
            "[NodeHighTemperature]\nthreshold = 75\nfor = \"1h30m\"\nseverity = \"critical\"\n\
             [NodeCpuThrottled]\nenabled = false\n\
             [NodeFilesystemAlmostOutOfSpace]\nfor = 60\n\
             [NodeFilesystemAlmostOutOfSpace.critical]\nthreshold = 3\n",
        );
        assert_eq!(r[2].threshold, Some(75.0));
        assert_eq!(r[2].for_s, 5400);
        assert_eq!(r[2].severity, Severity::Critical);
        assert!(!r[1].enabled);
        assert_eq!((r[3].threshold, r[3].for_s), (Some(10.0), 60));
        assert_eq!((r[4].threshold, r[4].for_s), (Some(3.0), 60));
    }

    #[test]
    fn errors_name_the_rule_and_key() {
        for (text, want) in [
            ("[Nope]\nenabled = true", "unknown rule \"Nope\""),
            (
                "[NodeHighTemperature]\nthreshold = \"hot\"",
                "NodeHighTemperature.threshold: expected a number",
            ),
            (
                "[NodeHighTemperature]\nthreshold = -1",
                "NodeHighTemperature.threshold",
            ),
            (
                "[NodeHighTemperature]\nfor = \"5 minutes\"",
                "NodeHighTemperature.for: expected a duration",
            ),
            (
                "[NodeHighTemperature]\nfor = \"8d\"",
                "NodeHighTemperature.for",
            ),
            (
                "[NodeHighTemperature]\nseverity = \"page\"",
                "NodeHighTemperature.severity: expected",
            ),
            (
                "[NodeHighTemperature]\nenabled = 1",
                "NodeHighTemperature.enabled: expected true or false",
            ),
            (
                "[NodeHighTemperature]\nthreshhold = 1",
                "NodeHighTemperature.threshhold: unknown key",
            ),
            (
                "[NodeUnderVoltage]\nthreshold = 1",
                "NodeUnderVoltage.threshold: this rule has no threshold",
            ),
            (
                "[NodeFilesystemAlmostOutOfSpace.critical]\nthreshold = \"x\"",
                "NodeFilesystemAlmostOutOfSpace.critical.threshold",
            ),
            (
                "NodeHighTemperature = 3",
                "NodeHighTemperature: expected a table",
            ),
            ("[NodeHighTemperature", "expected"),
        ] {
            let e = Overrides::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = crate::scratch::Scratch::new("alerts");
        let f = dir.write("alerts.toml", "[NodeMemoryHighUtilization]\nfor = \"x\"\n");
        let e = Overrides::load("--alerts", &f).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "--alerts: {}: NodeMemoryHighUtilization.for",
                f.display()
            )),
            "{e}"
        );
        let e = Overrides::load("SOCKAGENT_ALERTS", &dir.path().join("missing.toml")).unwrap_err();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
