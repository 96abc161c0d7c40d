//! The rules' state machine, evaluated on the history ring's 1-second tick
//! (no wakeups of its own) over an `Inputs` view the caller fills from the
//! samples it already has.
//!
//! Per rule instance and label set: inactive → pending (the condition
//! holds; since when) → firing (it held for the rule's `for`) → resolved
//! (the condition is gone: the alert is inactive again, but its resolve
//! time is kept, one bit per Alertmanager in `Alert::unacked`, until each
//! has acknowledged it with a 2xx; see `deliver.rs`).
//!
//! Nothing allocates in the steady state: the tables are sized at start
//! (`MAX_FILESYSTEMS`, `MAX_DEVICES`, `MAX_CGROUPS`), each slot's label is
//! a `String` that takes `MAX_LABEL` bytes on the slot's first use and is
//! cleared and refilled when the slot is reused, and the filling-up
//! windows are fixed rings. The tables are 57 KB, the labels up to 25 KB
//! more as slots are first used.

use super::config::Overrides;
use super::rules::{Reads, Rule, NET_WINDOW_S, N_RULES, OOM_HOLD_S, RULES};
use crate::collect::throttle::UNDER_VOLTAGE;

/// A label value's kept length, bytes (a cgroup path of a container scope
/// is about 90); longer values are cut on a character boundary.
pub const MAX_LABEL: usize = 160;
/// Filesystems tracked: boards have a handful, a host with snaps dozens.
pub const MAX_FILESYSTEMS: usize = 64;
/// Network devices tracked (containers' veths included).
pub const MAX_DEVICES: usize = 32;
/// Cgroups tracked for `ServiceMemoryNearLimit` (only those with a finite
/// `memory.max` take a slot: few services and containers set one).
pub const MAX_CGROUPS: usize = 64;
/// The filling-up window: one point a minute, an hour of them
/// (node-mixin predicts from 6 h; the issue asks for the last hour).
pub const WINDOW_STEP_S: u32 = 60;
pub const WINDOW_POINTS: usize = 60;
/// Points needed before a prediction is made (ten minutes).
pub const WINDOW_MIN_POINTS: usize = 10;

/// A moment on both clocks: monotonic (durations) and wall (what is shown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub mono_ms: u64,
    pub epoch_ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FsReading<'a> {
    pub mountpoint: &'a str,
    pub avail: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct NetReading<'a> {
    pub device: &'a str,
    pub rx_errs: u64,
    pub rx_packets: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CgroupReading<'a> {
    pub path: &'a str,
    pub current: u64,
    /// `memory.max`; `None` for "max" (no limit).
    pub max: Option<u64>,
}

/// One evaluation's readings; `None` (or an empty slice) where the machine
/// has no source, and then the rule that reads it holds nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inputs<'a> {
    pub now: Stamp,
    /// `Throttling::now`: reason bits (`collect::throttle::REASONS`).
    pub throttle_now: Option<u8>,
    pub cpu_temp_c: Option<f32>,
    pub filesystems: &'a [FsReading<'a>],
    /// (MemTotal - MemAvailable) / MemTotal, 0 to 1 (`mem_used`).
    pub mem_used: Option<f64>,
    /// `/proc/vmstat`'s `oom_kill` counter.
    pub oom_kill: Option<u64>,
    /// `adjtimex`: `Some(false)` when the kernel says unsynchronised.
    pub clock_synced: Option<bool>,
    pub net: &'a [NetReading<'a>],
    pub cgroups: &'a [CgroupReading<'a>],
}

/// (MemTotal - MemAvailable) / MemTotal.
pub fn mem_used(total: u64, available: u64) -> Option<f64> {
    (total > 0).then(|| total.saturating_sub(available) as f64 / total as f64)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum State {
    #[default]
    Inactive,
    Pending,
    Firing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
        }
    }
}

/// One (rule, label set)'s alert.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alert {
    pub state: State,
    /// When the condition started to hold (pending since).
    pub active_at: Stamp,
    /// When it fired.
    pub fired_at: Stamp,
    /// When it last resolved (meaningful while `unacked` is not 0).
    pub resolved_at: Stamp,
    /// The reading that last met the condition (the description's value).
    pub value: f64,
    /// Alertmanagers (by bit) still to acknowledge the resolve.
    pub unacked: u8,
}

impl Alert {
    /// One evaluation; true when the alert fired or resolved (a change
    /// worth sending at once).
    fn step(&mut self, rule: &Rule, holds: bool, v: f64, now: Stamp, ams: u8) -> bool {
        if holds {
            self.value = v;
        }
        match (self.state, holds) {
            (State::Inactive, true) => {
                self.active_at = now;
                self.state = State::Pending;
                self.fire_if_due(rule, now)
            }
            (State::Pending, true) => self.fire_if_due(rule, now),
            (State::Pending, false) => {
                self.state = State::Inactive;
                false
            }
            (State::Firing, false) => {
                self.state = State::Inactive;
                self.resolved_at = now;
                self.unacked = ams;
                true
            }
            (State::Firing, true) | (State::Inactive, false) => false,
        }
    }

    fn fire_if_due(&mut self, rule: &Rule, now: Stamp) -> bool {
        let held = now.mono_ms.saturating_sub(self.active_at.mono_ms);
        if held >= u64::from(rule.for_s) * 1000 {
            self.state = State::Firing;
            self.fired_at = now;
            self.unacked = 0;
            return true;
        }
        false
    }

    /// Nothing to show or send: the slot may be reused.
    fn idle(&self) -> bool {
        self.state == State::Inactive && self.unacked == 0
    }

    pub fn since(&self) -> Stamp {
        match self.state {
            State::Firing => self.fired_at,
            _ => self.active_at,
        }
    }
}

/// `s` cut to `MAX_LABEL` bytes on a character boundary.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(MAX_LABEL);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or("")
}

/// A labelled slot: the label, whether this evaluation saw it, its data.
#[derive(Debug)]
pub(super) struct Labelled<T> {
    pub(super) label: String,
    pub(super) used: bool,
    seen: bool,
    pub(super) data: T,
}

pub(super) trait Tracked: Default {
    fn idle(&self) -> bool;
}

/// Finds `label`'s slot, or claims a free one (cleared); `None` when the
/// table is full of live labels.
fn slot<'t, T: Tracked>(table: &'t mut [Labelled<T>], label: &str) -> Option<&'t mut Labelled<T>> {
    let label = cut(label);
    let i = table
        .iter()
        .position(|s| s.used && s.label == label)
        .or_else(|| table.iter().position(|s| !s.used))?;
    let s = table.get_mut(i)?;
    if !s.used {
        s.used = true;
        // A slot's label memory is taken once, on its first use, and kept.
        s.label.reserve_exact(MAX_LABEL);
        s.label.clear();
        s.label.push_str(label);
        s.data = T::default();
    }
    s.seen = true;
    Some(s)
}

fn table<T: Tracked>(n: usize) -> Vec<Labelled<T>> {
    (0..n)
        .map(|_| Labelled {
            label: String::new(),
            used: false,
            seen: false,
            data: T::default(),
        })
        .collect()
}

/// A filesystem: its three alerts and its filling-up window.
#[derive(Debug, Default)]
pub(super) struct Fs {
    pub(super) alerts: [Alert; 3],
    window: Window,
}

impl Tracked for Fs {
    fn idle(&self) -> bool {
        self.alerts.iter().all(Alert::idle)
    }
}

/// (seconds, avail bytes) points, one a `WINDOW_STEP_S`, a ring.
#[derive(Debug)]
struct Window {
    pts: [(u32, f32); WINDOW_POINTS],
    len: usize,
    next: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            pts: [(0, 0.0); WINDOW_POINTS],
            len: 0,
            next: 0,
        }
    }
}

impl Window {
    fn last_t(&self) -> Option<u32> {
        let i = self.next.checked_sub(1).unwrap_or(WINDOW_POINTS - 1);
        (self.len > 0)
            .then(|| self.pts.get(i).map(|p| p.0))
            .flatten()
    }

    fn record(&mut self, t: u32, avail: u64) {
        if self
            .last_t()
            .is_some_and(|l| t.saturating_sub(l) < WINDOW_STEP_S)
        {
            return;
        }
        if let Some(p) = self.pts.get_mut(self.next) {
            *p = (t, avail as f32);
        }
        self.next = (self.next + 1) % WINDOW_POINTS;
        self.len = (self.len + 1).min(WINDOW_POINTS);
    }

    /// Hours until `avail` reaches 0 at the window's least-squares rate;
    /// infinite while it is not falling or the window is short.
    fn hours_to_full(&self, avail: u64) -> f64 {
        if self.len < WINDOW_MIN_POINTS {
            return f64::INFINITY;
        }
        let pts = self.pts.get(..self.len).unwrap_or(&[]);
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| f64::from(p.0)).sum::<f64>() / n;
        let my = pts.iter().map(|p| f64::from(p.1)).sum::<f64>() / n;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for p in pts {
            let dx = f64::from(p.0) - mx;
            sxy += dx * (f64::from(p.1) - my);
            sxx += dx * dx;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        if slope >= 0.0 {
            return f64::INFINITY;
        }
        (avail as f64 / -slope / 3600.0).max(0.0)
    }
}

/// A network device: its alert and its window's base counters.
#[derive(Debug, Default)]
pub(super) struct Dev {
    pub(super) alert: Alert,
    /// (ms, errors, packets) at the window's start.
    base: Option<(u64, u64, u64)>,
    /// Errors, % of packets, over the last whole window.
    ratio: Option<f64>,
}

impl Tracked for Dev {
    fn idle(&self) -> bool {
        self.alert.idle()
    }
}

#[derive(Debug, Default)]
pub(super) struct Cg {
    pub(super) alert: Alert,
}

impl Tracked for Cg {
    fn idle(&self) -> bool {
        self.alert.idle()
    }
}

/// Rule instances by index in `RULES`.
pub(super) const R_UNDER: usize = 0;
pub(super) const R_THROTTLED: usize = 1;
pub(super) const R_TEMP: usize = 2;
/// The filesystem rules (two severities of almost-out, then filling-up):
/// `Fs::alerts` in this order.
pub(super) const R_FS: [usize; 3] = [3, 4, 5];
pub(super) const R_MEM: usize = 6;
pub(super) const R_OOM: usize = 7;
pub(super) const R_CLOCK: usize = 8;
pub(super) const R_NET: usize = 9;
pub(super) const R_CG: usize = 10;

/// The alert engine: the rules (overrides applied), every alert's state,
/// and the delivery schedules.
#[derive(Debug)]
pub struct Engine {
    pub(super) rules: [Rule; N_RULES],
    /// The unlabelled rules' alerts, by rule index (labelled ones unused).
    pub(super) single: [Alert; N_RULES],
    pub(super) fs: Vec<Labelled<Fs>>,
    pub(super) net: Vec<Labelled<Dev>>,
    pub(super) cg: Vec<Labelled<Cg>>,
    last_oom: Option<u64>,
    /// Monotonic ms until which `NodeOutOfMemoryKill` holds.
    oom_until: u64,
    /// Labels seen that found no free slot (the tables are full).
    pub overflow: u64,
    pub(super) sched: Vec<super::schedule::Schedule>,
}

impl Engine {
    /// The rules with `overrides` applied, delivering to `alertmanagers`
    /// Alertmanagers (at most `schedule::MAX_ALERTMANAGERS`).
    pub fn new(overrides: &Overrides, alertmanagers: usize) -> Engine {
        let mut rules = RULES;
        overrides.apply(&mut rules);
        let n = alertmanagers.min(super::schedule::MAX_ALERTMANAGERS);
        Engine {
            rules,
            single: [Alert::default(); N_RULES],
            fs: table(MAX_FILESYSTEMS),
            net: table(MAX_DEVICES),
            cg: table(MAX_CGROUPS),
            last_oom: None,
            oom_until: 0,
            overflow: 0,
            sched: vec![super::schedule::Schedule::default(); n],
        }
    }

    pub fn rules(&self) -> &[Rule; N_RULES] {
        &self.rules
    }

    /// Every alert (inactive ones too), with its rule and its own label.
    pub fn alerts(
        &self,
    ) -> impl Iterator<Item = (&Rule, Option<(&'static str, &str)>, &Alert)> + '_ {
        let rule = move |r: usize| self.rules.get(r);
        let singles = [R_UNDER, R_THROTTLED, R_TEMP, R_MEM, R_OOM, R_CLOCK]
            .into_iter()
            .filter_map(move |r| Some((rule(r)?, None, self.single.get(r)?)));
        let fs = self.fs.iter().filter(|s| s.used).flat_map(move |s| {
            let l = Some(("mountpoint", s.label.as_str()));
            (s.data.alerts.iter().zip(R_FS)).filter_map(move |(a, r)| Some((rule(r)?, l, a)))
        });
        let net = self.net.iter().filter(|s| s.used).filter_map(move |s| {
            Some((
                rule(R_NET)?,
                Some(("device", s.label.as_str())),
                &s.data.alert,
            ))
        });
        let cg = self.cg.iter().filter(|s| s.used).filter_map(move |s| {
            Some((
                rule(R_CG)?,
                Some(("cgroup", s.label.as_str())),
                &s.data.alert,
            ))
        });
        singles.chain(fs).chain(net).chain(cg)
    }

    /// Every alert, to change (delivery's acknowledgements).
    pub(super) fn for_each_alert_mut(&mut self, mut f: impl FnMut(&mut Alert)) {
        self.single.iter_mut().for_each(&mut f);
        for s in &mut self.fs {
            s.data.alerts.iter_mut().for_each(&mut f);
        }
        self.net.iter_mut().for_each(|s| f(&mut s.data.alert));
        self.cg.iter_mut().for_each(|s| f(&mut s.data.alert));
    }

    /// The bits of every Alertmanager.
    fn ams(&self) -> u8 {
        ((1u16 << self.sched.len()) - 1) as u8
    }

    /// One evaluation of every rule over `inp`.
    pub fn evaluate(&mut self, inp: &Inputs) {
        let now = inp.now;
        let mut changed = false;
        let throttle = inp.throttle_now.unwrap_or(0);
        let oom = self.oom(inp);
        let singles = [
            (R_UNDER, f64::from(u8::from(throttle & UNDER_VOLTAGE != 0))),
            (
                R_THROTTLED,
                f64::from(u8::from(throttle & !UNDER_VOLTAGE != 0)),
            ),
            (R_TEMP, inp.cpu_temp_c.map_or(f64::NAN, f64::from)),
            (R_MEM, inp.mem_used.map_or(f64::NAN, |u| u * 100.0)),
            (R_OOM, oom),
            (
                R_CLOCK,
                f64::from(u8::from(inp.clock_synced == Some(false))),
            ),
        ];
        let ams = self.ams();
        for (r, v) in singles {
            if let (Some(rule), Some(a)) = (self.rules.get(r), self.single.get_mut(r)) {
                let holds = rule.enabled && !v.is_nan() && rule.holds(v);
                changed |= a.step(rule, holds, v, now, ams);
            }
        }
        changed |= self.eval_fs(inp, ams);
        changed |= self.eval_net(inp, ams);
        changed |= self.eval_cg(inp, ams);
        if changed {
            for s in &mut self.sched {
                s.poke(now.mono_ms);
            }
        }
    }

    /// 1 while `NodeOutOfMemoryKill` holds (`OOM_HOLD_S` after a rise).
    fn oom(&mut self, inp: &Inputs) -> f64 {
        if let (Some(prev), Some(cur)) = (self.last_oom, inp.oom_kill) {
            if cur > prev {
                self.oom_until = inp.now.mono_ms.saturating_add(u64::from(OOM_HOLD_S) * 1000);
            }
        }
        if inp.oom_kill.is_some() {
            self.last_oom = inp.oom_kill;
        }
        f64::from(u8::from(inp.now.mono_ms < self.oom_until))
    }

    fn eval_fs(&mut self, inp: &Inputs, ams: u8) -> bool {
        let now = inp.now;
        let t = (now.mono_ms / 1000) as u32;
        let rules = &self.rules;
        let readings = inp.filesystems.iter().map(|f| (f.mountpoint, f));
        let seen = |fs: &mut Fs, f: &FsReading<'_>| {
            fs.window.record(t, f.avail);
            let pct = if f.size > 0 {
                f.avail as f64 * 100.0 / f.size as f64
            } else {
                f64::NAN
            };
            let hours = fs.window.hours_to_full(f.avail);
            let mut changed = false;
            for (a, r) in fs.alerts.iter_mut().zip(R_FS) {
                let Some(rule) = rules.get(r) else {
                    continue;
                };
                let v = match rule.reads {
                    Reads::FsHoursToFull => hours,
                    _ => pct,
                };
                let holds = rule.enabled && !v.is_nan() && rule.holds(v);
                changed |= a.step(rule, holds, v, now, ams);
            }
            changed
        };
        let gone = |fs: &mut Fs| {
            let mut changed = false;
            for (a, r) in fs.alerts.iter_mut().zip(R_FS) {
                if let Some(rule) = rules.get(r) {
                    changed |= a.step(rule, false, 0.0, now, ams);
                }
            }
            changed
        };
        track(&mut self.fs, &mut self.overflow, readings, seen, gone)
    }

    fn eval_net(&mut self, inp: &Inputs, ams: u8) -> bool {
        let now = inp.now;
        let rule = self.rules.get(R_NET).copied().unwrap_or(RULES[R_NET]);
        let window = u64::from(NET_WINDOW_S) * 1000;
        let readings = inp.net.iter().map(|d| (d.device, d));
        let seen = |dev: &mut Dev, d: &NetReading<'_>| {
            match dev.base {
                Some((t, e, p)) if d.rx_errs >= e && d.rx_packets >= p => {
                    if now.mono_ms.saturating_sub(t) >= window {
                        let dp = d.rx_packets - p;
                        dev.ratio = (dp > 0).then(|| (d.rx_errs - e) as f64 * 100.0 / dp as f64);
                        dev.base = Some((now.mono_ms, d.rx_errs, d.rx_packets));
                    }
                }
                _ => {
                    dev.base = Some((now.mono_ms, d.rx_errs, d.rx_packets));
                    dev.ratio = None;
                }
            }
            let v = dev.ratio.unwrap_or(f64::NAN);
            let holds = rule.enabled && !v.is_nan() && rule.holds(v);
            dev.alert.step(&rule, holds, v, now, ams)
        };
        let gone = |dev: &mut Dev| dev.alert.step(&rule, false, 0.0, now, ams);
        track(&mut self.net, &mut self.overflow, readings, seen, gone)
    }

    fn eval_cg(&mut self, inp: &Inputs, ams: u8) -> bool {
        let now = inp.now;
        let rule = self.rules.get(R_CG).copied().unwrap_or(RULES[R_CG]);
        let readings = inp.cgroups.iter().filter_map(|c| match c.max {
            Some(max) if max > 0 && max < u64::MAX / 2 => {
                Some((c.path, c.current as f64 * 100.0 / max as f64))
            }
            _ => None,
        });
        let seen = |cg: &mut Cg, v: f64| {
            let holds = rule.enabled && rule.holds(v);
            cg.alert.step(&rule, holds, v, now, ams)
        };
        let gone = |cg: &mut Cg| cg.alert.step(&rule, false, 0.0, now, ams);
        track(&mut self.cg, &mut self.overflow, readings, seen, gone)
    }
}

/// One evaluation of a labelled table: `seen` steps each reading's slot (no
/// free slot: `overflow`), `gone` each slot not seen this time, freed once
/// idle. Whether any alert changed.
fn track<'r, T: Tracked, R>(
    table: &mut [Labelled<T>],
    overflow: &mut u64,
    readings: impl Iterator<Item = (&'r str, R)>,
    mut seen: impl FnMut(&mut T, R) -> bool,
    mut gone: impl FnMut(&mut T) -> bool,
) -> bool {
    let mut changed = false;
    for s in table.iter_mut() {
        s.seen = false;
    }
    for (label, r) in readings {
        let Some(s) = slot(table, label) else {
            *overflow += 1;
            continue;
        };
        changed |= seen(&mut s.data, r);
    }
    for s in table.iter_mut().filter(|s| s.used && !s.seen) {
        changed |= gone(&mut s.data);
        s.used = !s.data.idle();
    }
    changed
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
