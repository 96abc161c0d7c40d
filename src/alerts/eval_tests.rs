//! The tests of `eval.rs` (included there under `#[cfg(test)]`).
use super::*;
use crate::alerts::config::Overrides;

const EPOCH: u64 = 1_700_000_000_000;

fn at(s: u64) -> Stamp {
    Stamp {
        mono_ms: s * 1000,
        epoch_ms: EPOCH + s * 1000,
    }
}

fn engine(file: &str) -> Engine {
    Engine::new(&Overrides::parse(file).unwrap(), 1)
}

/// The (name, severity, state, label) of every pending or firing alert.
fn active(e: &Engine) -> Vec<(String, &'static str, State, String)> {
    e.alerts()
        .filter(|(_, _, a)| a.state != State::Inactive)
        .map(|(r, l, a)| {
            let l = l.map_or(String::new(), |l| format!("{}={}", l.0, l.1));
            (r.name.to_string(), r.severity.as_str(), a.state, l)
        })
        .collect()
}

fn state_of(e: &Engine, name: &str) -> State {
    e.alerts()
        .filter(|(r, _, _)| r.name == name)
        .map(|(_, _, a)| a.state)
        .max_by_key(|s| *s as u8)
        .unwrap_or(State::Inactive)
}

/// Runs `e` one tick a second from `from` to `to` (exclusive) with the
/// inputs `f` gives for each second.
fn run<'a>(e: &mut Engine, from: u64, to: u64, f: impl Fn(&mut Inputs<'a>)) {
    for s in from..to {
        let mut i = Inputs {
            now: at(s),
            ..Inputs::default()
        };
        f(&mut i);
        e.evaluate(&i);
    }
}

/// A yes-or-no or single-reading rule: pending until `for`, firing at
/// `for`, resolved (inactive, unacknowledged) when the condition goes.
fn lifecycle(name: &str, for_s: u64, on: impl Fn(&mut Inputs), off: impl Fn(&mut Inputs)) {
    let mut e = engine("");
    run(&mut e, 0, 10, &off);
    assert_eq!(state_of(&e, name), State::Inactive, "{name}");
    run(&mut e, 10, 10 + for_s, &on);
    if for_s > 0 {
        assert_eq!(state_of(&e, name), State::Pending, "{name} before its for");
    }
    run(&mut e, 10 + for_s, 11 + for_s, &on);
    assert_eq!(state_of(&e, name), State::Firing, "{name} at its for");
    let a = e.alerts().find(|(r, _, _)| r.name == name).unwrap().2;
    assert_eq!(a.active_at, at(10));
    assert_eq!(a.fired_at, at(10 + for_s));
    run(&mut e, 11 + for_s, 12 + for_s, &off);
    let a = *e.alerts().find(|(r, _, _)| r.name == name).unwrap().2;
    assert_eq!(a.state, State::Inactive, "{name} resolves");
    assert_eq!((a.resolved_at, a.unacked), (at(11 + for_s), 1), "{name}");
    assert!(active(&e).is_empty(), "{:?}", active(&e));
}

/// Each yes-or-no or single-reading rule through `lifecycle`, a line a
/// rule: its name, its `for` (0: it fires at once) and the inputs that
/// hold and clear it.
#[test]
fn single_reading_rules_pend_fire_and_resolve() {
    let throttle = |bits| move |i: &mut Inputs| i.throttle_now = Some(bits);
    let temp = |c| move |i: &mut Inputs| i.cpu_temp_c = Some(c);
    let avail = |a| move |i: &mut Inputs| i.mem_used = mem_used(1000, a);
    let sync = |yes| move |i: &mut Inputs| i.clock_synced = Some(yes);
    lifecycle("NodeUnderVoltage", 0, throttle(0b0001), throttle(0));
    lifecycle("NodeCpuThrottled", 60, throttle(0b0010), throttle(0));
    // a soft temperature limit, cleared by its source going away
    lifecycle("NodeCpuThrottled", 60, throttle(1 << 4), |_| {});
    lifecycle("NodeHighTemperature", 120, temp(80.0), temp(79.9));
    lifecycle("NodeMemoryHighUtilization", 900, avail(80), avail(100));
    lifecycle("NodeClockNotSynchronising", 600, sync(false), sync(true));
}

#[test]
fn mem_used_is_the_share_not_available() {
    assert_eq!(mem_used(1000, 80), Some(0.92));
    assert_eq!(mem_used(0, 0), None);
}

#[test]
fn no_clock_source_holds_nothing() {
    let mut e = engine("");
    run(&mut e, 0, 700, |_| {});
    assert!(active(&e).is_empty());
}

#[test]
fn oom_kill_fires_on_a_rise_and_holds_five_minutes() {
    let mut e = engine("");
    run(&mut e, 0, 10, |i| i.oom_kill = Some(3));
    assert!(active(&e).is_empty(), "the first reading is a base");
    run(&mut e, 10, 11, |i| i.oom_kill = Some(4));
    assert_eq!(state_of(&e, "NodeOutOfMemoryKill"), State::Firing);
    run(&mut e, 11, 310, |i| i.oom_kill = Some(4));
    assert_eq!(state_of(&e, "NodeOutOfMemoryKill"), State::Firing);
    run(&mut e, 310, 311, |i| i.oom_kill = Some(4));
    assert_eq!(state_of(&e, "NodeOutOfMemoryKill"), State::Inactive);
}

fn fs<'a>(m: &'a str, avail: u64) -> FsReading<'a> {
    FsReading {
        mountpoint: m,
        avail,
        size: 1000,
    }
}

#[test]
fn filesystem_almost_out_of_space_two_severities_per_mountpoint() {
    let mut e = engine("");
    let (low, ok) = (
        [fs("/", 40), fs("/data", 500)],
        [fs("/", 500), fs("/data", 500)],
    );
    run(&mut e, 0, 300, |i| i.filesystems = &low);
    let want = |s| {
        vec![
            (
                "NodeFilesystemAlmostOutOfSpace".into(),
                "warning",
                s,
                "mountpoint=/".into(),
            ),
            (
                "NodeFilesystemAlmostOutOfSpace".into(),
                "critical",
                s,
                "mountpoint=/".into(),
            ),
        ]
    };
    assert_eq!(active(&e), want(State::Pending));
    run(&mut e, 300, 301, |i| i.filesystems = &low);
    assert_eq!(active(&e), want(State::Firing));
    let mid = [fs("/", 70), fs("/data", 500)];
    run(&mut e, 301, 302, |i| i.filesystems = &mid);
    assert_eq!(active(&e).len(), 1, "7%: the warning only");
    assert_eq!(active(&e)[0].1, "warning");
    run(&mut e, 302, 303, |i| i.filesystems = &ok);
    assert!(active(&e).is_empty());
}

#[test]
fn a_vanished_filesystem_resolves_and_its_slot_is_reused() {
    let mut e = engine("[NodeFilesystemAlmostOutOfSpace]\nfor = 0\n");
    let low = [fs("/mnt", 10)];
    run(&mut e, 0, 1, |i| i.filesystems = &low);
    assert_eq!(active(&e).len(), 2);
    run(&mut e, 1, 2, |_| {});
    assert!(active(&e).is_empty());
    let resolved = e.alerts().filter(|(_, _, a)| a.unacked != 0).count();
    assert_eq!(resolved, 2, "kept until acknowledged");
    e.payload(0, at(2), "host", "http://h/", &mut Vec::new());
    e.delivered(0, 2000, true);
    run(&mut e, 3, 4, |_| {});
    assert_eq!(e.alerts().filter(|(_, l, _)| l.is_some()).count(), 0);
}

#[test]
fn filesystem_filling_up() {
    let mut e = engine("");
    // 1000 units fall by 1 a minute: full in 1000 minutes (under 24 h).
    let falling = |i: &mut Inputs| {
        let s = i.now.mono_ms / 1000;
        let f = Box::leak(Box::new([fs("/var", 900 - s / 60)]));
        i.filesystems = &f[..];
    };
    // A point a minute: the tenth (t = 540 s) starts the prediction.
    run(&mut e, 0, 540, falling);
    assert_eq!(
        state_of(&e, "NodeFilesystemSpaceFillingUp"),
        State::Inactive,
        "window short"
    );
    run(&mut e, 540, 1440, falling);
    assert_eq!(state_of(&e, "NodeFilesystemSpaceFillingUp"), State::Pending);
    run(&mut e, 1440, 1441, falling);
    assert_eq!(state_of(&e, "NodeFilesystemSpaceFillingUp"), State::Firing);
    let v = e
        .alerts()
        .find(|(r, _, _)| r.name == "NodeFilesystemSpaceFillingUp")
        .unwrap()
        .2
        .value;
    assert!((v - 876.0 / 60.0).abs() < 0.1, "{v} hours");
    // Flat: no longer predicted full (the window's slope goes to 0).
    let flat = [fs("/var", 875)];
    run(&mut e, 1441, 1441 + 3700, |i| i.filesystems = &flat);
    assert_eq!(
        state_of(&e, "NodeFilesystemSpaceFillingUp"),
        State::Inactive
    );
    // Growing avail never fires.
    let mut e = engine("");
    let growing = |i: &mut Inputs| {
        let s = i.now.mono_ms / 1000;
        let f = Box::leak(Box::new([fs("/var", 10 + s / 60)]));
        i.filesystems = &f[..];
    };
    run(&mut e, 0, 3600, growing);
    assert_eq!(
        state_of(&e, "NodeFilesystemSpaceFillingUp"),
        State::Inactive
    );
}

#[test]
fn network_receive_errors_over_the_window() {
    let mut e = engine("");
    // 2 errors in 100 packets a second: 2%.
    let bad = |i: &mut Inputs| {
        let s = i.now.mono_ms / 1000;
        let d = Box::leak(Box::new([NetReading {
            device: "eth0",
            rx_errs: 2 * s,
            rx_packets: 100 * s,
        }]));
        i.net = &d[..];
    };
    run(&mut e, 0, 120, bad);
    assert!(active(&e).is_empty(), "no whole window yet");
    run(&mut e, 120, 121, bad);
    assert_eq!(
        active(&e),
        [(
            "NodeNetworkReceiveErrs".into(),
            "warning",
            State::Pending,
            "device=eth0".into()
        )]
    );
    run(&mut e, 121, 120 + 3600, bad);
    assert_eq!(state_of(&e, "NodeNetworkReceiveErrs"), State::Pending);
    run(&mut e, 3720, 3721, bad);
    assert_eq!(state_of(&e, "NodeNetworkReceiveErrs"), State::Firing);
    let good = |i: &mut Inputs| {
        let s = i.now.mono_ms / 1000;
        let d = Box::leak(Box::new([NetReading {
            device: "eth0",
            rx_errs: 7442,
            rx_packets: 100 * s,
        }]));
        i.net = &d[..];
    };
    run(&mut e, 3721, 3721 + 240, good);
    assert_eq!(state_of(&e, "NodeNetworkReceiveErrs"), State::Inactive);
}

#[test]
fn service_memory_near_limit() {
    let mut e = engine("");
    let near = [
        CgroupReading {
            path: "/system.slice/a.service",
            current: 95,
            max: Some(100),
        },
        CgroupReading {
            path: "/system.slice/b.service",
            current: 95,
            max: None,
        },
    ];
    run(&mut e, 0, 301, |i| i.cgroups = &near);
    assert_eq!(
        active(&e),
        [(
            "ServiceMemoryNearLimit".into(),
            "warning",
            State::Firing,
            "cgroup=/system.slice/a.service".into()
        )]
    );
    let fine = [CgroupReading {
        path: "/system.slice/a.service",
        current: 89,
        max: Some(100),
    }];
    run(&mut e, 301, 302, |i| i.cgroups = &fine);
    assert!(active(&e).is_empty());
}

#[test]
fn overrides_change_threshold_for_severity_and_turn_off() {
    let mut e = engine(
        "[NodeHighTemperature]\nthreshold = 60\nfor = \"10s\"\nseverity = \"critical\"\n\
         [NodeUnderVoltage]\nenabled = false\n",
    );
    run(&mut e, 0, 10, |i| {
        i.cpu_temp_c = Some(65.0);
        i.throttle_now = Some(1);
    });
    assert_eq!(state_of(&e, "NodeHighTemperature"), State::Pending);
    run(&mut e, 10, 11, |i| i.cpu_temp_c = Some(65.0));
    assert_eq!(
        active(&e),
        [(
            "NodeHighTemperature".into(),
            "critical",
            State::Firing,
            String::new()
        )]
    );
    assert_eq!(state_of(&e, "NodeUnderVoltage"), State::Inactive, "off");
}

#[test]
fn tables_are_bounded() {
    let mut e = engine("[NodeFilesystemAlmostOutOfSpace]\nfor = 0\n");
    let names: Vec<String> = (0..MAX_FILESYSTEMS + 5).map(|n| format!("/m{n}")).collect();
    let many: Vec<FsReading> = names.iter().map(|n| fs(n, 1)).collect();
    run(&mut e, 0, 1, |i| i.filesystems = &many);
    assert_eq!(active(&e).len(), 2 * MAX_FILESYSTEMS);
    assert_eq!(e.overflow, 5);
    let long = "x".repeat(MAX_LABEL + 10);
    let one = [fs(&long, 500)];
    let mut e = engine("");
    run(&mut e, 0, 1, |i| i.filesystems = &one);
    assert_eq!(e.fs.iter().find(|s| s.used).unwrap().label.len(), MAX_LABEL);
}

/// The tables are sized at start; their fixed cost stays small (labels
/// come on top, `MAX_LABEL` per slot once used).
#[test]
fn table_sizes() {
    let e = engine("");
    let b = e.fs.len() * std::mem::size_of::<Labelled<Fs>>()
        + e.net.len() * std::mem::size_of::<Labelled<Dev>>()
        + e.cg.len() * std::mem::size_of::<Labelled<Cg>>();
    assert!(b < 64 * 1024, "{b} bytes");
    assert!(
        e.fs.iter().all(|s| s.label.capacity() == 0),
        "no label memory before use"
    );
}
