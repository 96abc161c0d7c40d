//! The alert engine allocates nothing in the steady state: after warm-up,
//! thousands of evaluations over full tables (every filesystem, device and
//! cgroup slot in use, alerts firing and resolving, labels coming and
//! going so slots are reused with new label strings), the Alertmanager
//! payload and the `alerts` answer written into reused buffers, make no
//! heap allocation; nor does reading Alertmanager's (or a remote-write
//! endpoint's) answer to each send.

use sockagent::alerts::eval::{MAX_CGROUPS, MAX_DEVICES, MAX_FILESYSTEMS};
use sockagent::alerts::{
    CgroupReading, Engine, FsReading, Inputs, NetReading, Overrides, Stamp, State,
};

#[path = "common/counting.rs"]
mod counting;
use counting::count;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Readings per evaluation: half the slots, so the old half's resolved
/// alerts (kept until acknowledged) and the new half fill every slot.
const FS: usize = MAX_FILESYSTEMS / 2;
const DEV: usize = MAX_DEVICES / 2;
const CG: usize = MAX_CGROUPS / 2;

struct Names {
    fs: Vec<String>,
    dev: Vec<String>,
    cg: Vec<String>,
}

impl Names {
    /// Twice as many names as are read at once: the second half replaces the first
    /// every so often (an unmount and a mount, a container restarted).
    fn new() -> Names {
        let n = |p: &str, k: usize| (0..2 * k).map(|i| format!("{p}{i}")).collect();
        Names {
            fs: n("/srv/volume-", FS),
            dev: n("veth", DEV),
            cg: n("/system.slice/docker-0123456789abcdef.scope/", CG),
        }
    }
}

/// Second `s`'s inputs: conditions flip every 700 s, the label half every
/// 1300 s.
fn tick(e: &mut Engine, names: &Names, s: u64) {
    let hot = (s / 700) % 2 == 0;
    let half = ((s / 1300) % 2) as usize;
    let pick = |v: &[String], k: usize, i: usize| -> usize { (i + half * k) % v.len() };
    let fs: [FsReading; FS] = std::array::from_fn(|i| FsReading {
        mountpoint: &names.fs[pick(&names.fs, FS, i)],
        avail: if hot { 30 } else { 900 - s % 600 },
        size: 1000,
    });
    let net: [NetReading; DEV] = std::array::from_fn(|i| NetReading {
        device: &names.dev[pick(&names.dev, DEV, i)],
        rx_errs: if hot { 5 * s } else { 0 },
        rx_packets: 100 * s,
    });
    let cg: [CgroupReading; CG] = std::array::from_fn(|i| CgroupReading {
        path: &names.cg[pick(&names.cg, CG, i)],
        current: if hot { 95 } else { 50 },
        max: Some(100),
    });
    e.evaluate(&Inputs {
        now: Stamp {
            mono_ms: s * 1000,
            epoch_ms: 1_700_000_000_000 + s * 1000,
        },
        throttle_now: Some(if hot { 0b0101 } else { 0 }),
        cpu_temp_c: Some(if hot { 85.0 } else { 50.0 }),
        filesystems: &fs,
        mem_used: Some(if hot { 0.95 } else { 0.5 }),
        oom_kill: Some(s / 400),
        clock_synced: Some(!hot),
        net: &net,
        cgroups: &cg,
    });
}

#[test]
fn evaluation_payload_and_answer_allocate_nothing_once_warm() {
    let names = Names::new();
    let short = Overrides::parse(
        "[NodeNetworkReceiveErrs]\nfor = \"5m\"\n[NodeMemoryHighUtilization]\nfor = \"1m\"\n",
    )
    .unwrap();
    let mut e = Engine::new(&short, 2);
    let (mut body, mut answer) = (Vec::new(), Vec::new());
    let mut peak = 0;
    let mut run = |e: &mut Engine, from: u64, to: u64| {
        for s in from..to {
            tick(e, &names, s);
            for am in 0..2 {
                if e.due(am, s * 1000) {
                    let now = Stamp {
                        mono_ms: s * 1000,
                        epoch_ms: s * 1000,
                    };
                    e.payload(am, now, "board:3000", "http://board:3000/", &mut body);
                    // The first Alertmanager fails every third send.
                    e.delivered(am, s * 1000, am == 1 || s % 3 != 0);
                }
            }
            e.answer_json(&mut answer);
            let firing = e.alerts().filter(|a| a.2.state == State::Firing).count();
            peak = peak.max(firing);
        }
    };
    // Warm-up: two whole cycles of conditions and label halves, so every
    // buffer has met its largest content.
    run(&mut e, 0, 5300);
    let n = count(|| run(&mut e, 5300, 10_500));
    assert_eq!(n, 0, "allocations in 5200 evaluations after warm-up");
    assert!(peak > 100, "at most {peak} alerts fired at once");
    assert_eq!(e.overflow, 0, "no label was refused a slot");
}

/// The outgoing client reads each answer into the buffer it kept from the
/// last: an Alertmanager's `200`, a remote-write endpoint's `204`, with an
/// interim `100 Continue` before them, cut into reads anywhere.
#[test]
fn reading_answers_allocates_nothing_once_warm() {
    use sockagent::remote::client::{Done, Response};
    let answers: [&[u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ];
    let mut r = Response::default();
    let read = |r: &mut Response| {
        let mut ok = 0;
        for (i, a) in answers.iter().enumerate() {
            for cut in [1, 7, 20, a.len()] {
                r.clear();
                let mut got = Ok(None);
                for piece in a.chunks(cut + i) {
                    got = r.take(piece);
                }
                ok += usize::from(matches!(
                    got,
                    Ok(Some(Done::Status {
                        code: 200 | 204,
                        ..
                    }))
                ));
            }
        }
        ok
    };
    assert_eq!(read(&mut r), 12, "every answer read as a success");
    let n = count(|| {
        for _ in 0..1000 {
            read(&mut r);
        }
    });
    assert_eq!(n, 0, "allocations in 12 000 answers read after warm-up");
}
