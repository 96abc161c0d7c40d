//! The built-in rules as data: on with no configuration, each with a
//! severity, a threshold and a `for` duration (how long the condition must
//! hold before the alert fires; it is pending until then). Names are
//! node-mixin's where node-mixin has the rule (`mixin`), so a fleet's
//! routes and silences keyed on them work unchanged.
//!
//! `NodeFilesystemAlmostOutOfSpace` has two severities; as in node-mixin it
//! is two rule instances with one name, each with its own `severity` label,
//! threshold and `for` (an alerts file addresses them as
//! `[NodeFilesystemAlmostOutOfSpace.warning]` and `.critical`, or both at
//! once through `[NodeFilesystemAlmostOutOfSpace]`). So the ten rules are
//! eleven instances, `RULES`.
//!
//! The packaged PromQL (`packaging/prometheus/sockagent-alerts.yml`) says
//! the same names, thresholds and `for`.

/// How bad an alert is: its `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What a rule reads, and so which label tells its instances apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// `Inputs::throttle_now`'s under-voltage bit.
    UnderVoltage,
    /// `Inputs::throttle_now`'s other bits (capped, throttled, soft limit,
    /// thermal throttle).
    Throttled,
    /// `Inputs::cpu_temp_c`, °C.
    CpuTemp,
    /// Per mountpoint: available space, % of size.
    FsAvailPercent,
    /// Per mountpoint: hours until full at the window's rate.
    FsHoursToFull,
    /// `Inputs::mem_used`, % of MemTotal.
    MemUsedPercent,
    /// `Inputs::oom_kill` rose (the alert holds `OOM_HOLD` after).
    OomKill,
    /// `Inputs::clock_synced` is false.
    ClockUnsynced,
    /// Per device: receive errors, % of packets over `NET_WINDOW`.
    NetRxErrPercent,
    /// Per cgroup: memory.current, % of a finite memory.max.
    CgroupMemPercent,
}

impl Reads {
    /// The label that tells this rule's instances apart, if any.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Reads::FsAvailPercent | Reads::FsHoursToFull => Some("mountpoint"),
            Reads::NetRxErrPercent => Some("device"),
            Reads::CgroupMemPercent => Some("cgroup"),
            _ => None,
        }
    }
}

/// How the reading compares with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// Fires at or above.
    AtLeast,
    /// Fires strictly above.
    Above,
    /// Fires strictly below.
    Below,
    /// No threshold: the reading is a yes or no.
    Flag,
}

/// One built-in rule instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub name: &'static str,
    pub severity: Severity,
    /// `None` for a yes-or-no rule (`Cmp::Flag`).
    pub threshold: Option<f64>,
    pub cmp: Cmp,
    /// Seconds the condition must hold before firing.
    pub for_s: u32,
    /// Node-mixin's name for the same rule, where it has one.
    pub mixin: Option<&'static str>,
    pub reads: Reads,
    /// The `summary` annotation.
    pub summary: &'static str,
    pub enabled: bool,
}

/// How long `NodeOutOfMemoryKill` stays firing after `oom_kill` rose
/// (node-mixin's `increase(...[5m])`): seconds.
pub const OOM_HOLD_S: u32 = 300;
/// The window receive errors are measured over: node-mixin's
/// `rate(...[2m])`, seconds.
pub const NET_WINDOW_S: u32 = 120;

const fn rule(
    name: &'static str,
    severity: Severity,
    threshold: Option<(Cmp, f64)>,
    for_s: u32,
    mixin: bool,
    reads: Reads,
    summary: &'static str,
) -> Rule {
    let (cmp, threshold) = match threshold {
        Some((c, t)) => (c, Some(t)),
        None => (Cmp::Flag, None),
    };
    Rule {
        name,
        severity,
        threshold,
        cmp,
        for_s,
        mixin: if mixin { Some(name) } else { None },
        reads,
        summary,
        enabled: true,
    }
}

/// How many rule instances there are.
pub const N_RULES: usize = 11;

use Severity::{Critical, Warning};

/// The built-in rules, in the order their alerts are listed.
pub const RULES: [Rule; N_RULES] = [
    rule(
        "NodeUnderVoltage",
        Critical,
        None,
        0,
        false,
        Reads::UnderVoltage,
        "The board's supply voltage is too low.",
    ),
    rule(
        "NodeCpuThrottled",
        Warning,
        None,
        60,
        false,
        Reads::Throttled,
        "The CPU is throttled or frequency-capped.",
    ),
    rule(
        "NodeHighTemperature",
        Warning,
        Some((Cmp::AtLeast, 80.0)),
        120,
        false,
        Reads::CpuTemp,
        "The CPU is running hot.",
    ),
    rule(
        "NodeFilesystemAlmostOutOfSpace",
        Warning,
        Some((Cmp::Below, 10.0)),
        300,
        true,
        Reads::FsAvailPercent,
        "Filesystem is almost out of space.",
    ),
    rule(
        "NodeFilesystemAlmostOutOfSpace",
        Critical,
        Some((Cmp::Below, 5.0)),
        300,
        true,
        Reads::FsAvailPercent,
        "Filesystem is almost out of space.",
    ),
    rule(
        "NodeFilesystemSpaceFillingUp",
        Warning,
        Some((Cmp::Below, 24.0)),
        900,
        true,
        Reads::FsHoursToFull,
        "Filesystem is predicted to run out of space soon.",
    ),
    rule(
        "NodeMemoryHighUtilization",
        Warning,
        Some((Cmp::Above, 90.0)),
        900,
        true,
        Reads::MemUsedPercent,
        "Host is running out of memory.",
    ),
    rule(
        "NodeOutOfMemoryKill",
        Warning,
        None,
        0,
        false,
        Reads::OomKill,
        "The kernel killed a process for lack of memory.",
    ),
    rule(
        "NodeClockNotSynchronising",
        Warning,
        None,
        600,
        true,
        Reads::ClockUnsynced,
        "Clock is not synchronising.",
    ),
    rule(
        "NodeNetworkReceiveErrs",
        Warning,
        Some((Cmp::Above, 1.0)),
        3600,
        true,
        Reads::NetRxErrPercent,
        "Network interface is reporting many receive errors.",
    ),
    rule(
        "ServiceMemoryNearLimit",
        Warning,
        Some((Cmp::AtLeast, 90.0)),
        300,
        false,
        Reads::CgroupMemPercent,
        "A service is near its memory limit.",
    ),
];

impl Rule {
    /// Whether `v` meets the condition (a flag rule: `v` is 1 or 0).
    pub fn holds(&self, v: f64) -> bool {
        let t = self.threshold.unwrap_or(0.5);
        match self.cmp {
            Cmp::AtLeast => v >= t,
            Cmp::Above => v > t,
            Cmp::Below => v < t,
            Cmp::Flag => v > 0.5,
        }
    }

    /// The `description` annotation's text for reading `v` of the
    /// instance labelled `label` ("" for none).
    pub fn describe(
        &self,
        label: &str,
        v: f64,
        f: &mut std::fmt::Formatter<'_>,
    ) -> std::fmt::Result {
        match self.reads {
            Reads::UnderVoltage => f.write_str("The firmware reports under-voltage now."),
            Reads::Throttled => f.write_str("The firmware or CPU reports throttling now."),
            Reads::CpuTemp => write!(f, "CPU temperature is {v:.1} °C."),
            Reads::FsAvailPercent => {
                write!(f, "Filesystem at {label} has {v:.2}% available space left.")
            }
            Reads::FsHoursToFull => write!(
                f,
                "Filesystem at {label} is predicted to be full in {v:.1} hours."
            ),
            Reads::MemUsedPercent => write!(f, "Memory is {v:.2}% used."),
            Reads::OomKill => f.write_str("An OOM kill was detected in the last 5 minutes."),
            Reads::ClockUnsynced => f.write_str("The clock is not synchronised (adjtimex)."),
            Reads::NetRxErrPercent => write!(
                f,
                "{label} has {v:.2}% receive errors in the last two minutes."
            ),
            Reads::CgroupMemPercent => {
                write!(f, "{label} uses {v:.1}% of its memory.max.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_rules() {
        let names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        let mut distinct = names.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 10, "{names:?}");
        let fs: Vec<_> = RULES
            .iter()
            .filter(|r| r.name == "NodeFilesystemAlmostOutOfSpace")
            .map(|r| (r.severity, r.threshold, r.for_s))
            .collect();
        assert_eq!(fs, [(Warning, Some(10.0), 300), (Critical, Some(5.0), 300)]);
        let under = &RULES[0];
        assert_eq!((under.severity, under.for_s), (Critical, 0));
        assert!(RULES.iter().all(|r| r.enabled));
        assert!(RULES
            .iter()
            .all(|r| (r.cmp == Cmp::Flag) == r.threshold.is_none()));
    }

    #[test]
    fn comparisons() {
        let temp = &RULES[2];
        assert!(!temp.holds(79.9) && temp.holds(80.0));
        let mem = &RULES[6];
        assert!(!mem.holds(90.0) && mem.holds(90.1));
        let fs = &RULES[3];
        assert!(fs.holds(9.9) && !fs.holds(10.0));
        assert!(RULES[0].holds(1.0) && !RULES[0].holds(0.0));
    }
}
