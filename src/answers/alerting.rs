//! The alert engine on the history tick: `Answers` owns it (`with_alerts`),
//! fills its `Inputs` from the metrics sample the tick just recorded, and
//! answers `alerts` and the `sockagent_alerts` family from it.
//!
//! What the tick fills today: throttling now (`NodeUnderVoltage`,
//! `NodeCpuThrottled`), the CPU temperature and memory used from the
//! sample, the clock's sync state (one `adjtimex` call, the host's: none
//! under another root), and the
//! filesystems from the disks sample, which the tick refreshes every
//! `DISKS_PERIOD` (a `statvfs` per mount) unless a client just did, and
//! `/proc/vmstat`'s `oom_kill`, read on the same cadence; each interface's
//! receive errors and packets from the sample's `/proc/net/dev`. The
//! cgroups with a memory limit come from the cgroups sample (requests and
//! scrapes take it; the tick only when none did for `CGROUPS_RELIST`, so
//! it moves no client's CPU window); on the disks' cadence the tick reads
//! again only their `memory.current` and `memory.max`.

use super::Answers;
use crate::alerts::eval::{mem_used, MAX_CGROUPS, MAX_DEVICES, MAX_FILESYSTEMS};
use crate::alerts::{CgroupReading, Engine, FsReading, Inputs, NetReading, Overrides, Stamp};
use crate::collect::{cgroups::CgroupRow, disks::FsRow, timex, vmstat, MetricsSample};
use crate::protocol::Answer;
use std::time::{Duration, Instant};

/// How often the tick refreshes the filesystems' space and reads
/// `oom_kill` for the rules: their `for` is minutes, and a `statvfs` per
/// mount each second is not worth it.
pub const DISKS_PERIOD: Duration = Duration::from_secs(10);
/// The `alerts` answer's error before the first tick, and always with
/// `--history 0`.
pub const NOT_EVALUATED: &str =
    "alerts are not evaluated yet (they ride the history tick: --history 0 turns them off)";
/// Filesystems older than this are left out (a disks collection that keeps
/// failing): their alerts resolve rather than fire on stale space.
pub const DISKS_MAX_AGE: Duration = Duration::from_secs(30);
/// The tick lists the cgroups itself (a whole sample) only when no
/// request or scrape did for this long: a client asking that rarely has
/// no CPU window worth keeping, and a service started since is watched
/// within it. Between, only the listed ones' memory is read again.
pub const CGROUPS_RELIST: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct Alerting {
    pub engine: Engine,
    /// The monotonic clock's zero for `Stamp::mono_ms`.
    start: Instant,
    /// Whether a tick has evaluated the rules yet.
    pub evaluated: bool,
    /// When the tick last asked for the filesystems' space.
    disks_at: Option<Instant>,
    /// `/proc/vmstat`'s `oom_kill`, read on the disks' cadence (its own
    /// kept file; the scrape's is the sensors sample's).
    vmstat: vmstat::VmStat,
    vmstat_buf: Vec<u8>,
    /// `adjtimex`, read every tick (the host's clock only: `None` under
    /// another root).
    clock_synced: Option<bool>,
}

impl Alerting {
    pub fn new(overrides: &Overrides, alertmanagers: usize) -> Self {
        Alerting {
            engine: Engine::new(overrides, alertmanagers),
            start: Instant::now(),
            evaluated: false,
            disks_at: None,
            vmstat: vmstat::VmStat::default(),
            vmstat_buf: Vec::new(),
            clock_synced: None,
        }
    }

    /// Whether this tick refreshes the disks sample (and notes it did).
    pub fn disks_due(&mut self, now: Instant) -> bool {
        let due = self
            .disks_at
            .is_none_or(|at| now.saturating_duration_since(at) >= DISKS_PERIOD);
        if due {
            self.disks_at = Some(now);
        }
        due
    }

    /// One evaluation over the tick's sample, the filesystems and the
    /// cgroups.
    pub fn tick(
        &mut self,
        m: &MetricsSample,
        filesystems: &[FsRow],
        cgroups: &[CgroupRow],
        now: Instant,
    ) {
        let (fs, n) = first::<_, MAX_FILESYSTEMS>(filesystems.iter().map(|row| FsReading {
            mountpoint: &row.mountpoint,
            avail: row.space.avail,
            size: row.space.total,
        }));
        let (net, k) = first::<_, MAX_DEVICES>(m.nets.iter().map(|d| NetReading {
            device: &d.name,
            rx_errs: d.rx_errors,
            rx_packets: d.rx_packets,
        }));
        let limited = cgroups.iter().filter_map(|r| Some((r, r.mem_max_bytes?)));
        let (cg, c) = first::<_, MAX_CGROUPS>(limited.map(|(row, max)| CgroupReading {
            path: &row.path,
            current: row.mem_bytes.unwrap_or(0),
            max: Some(max),
        }));
        let mono = now.saturating_duration_since(self.start).as_millis();
        let inputs = Inputs {
            now: Stamp {
                mono_ms: u64::try_from(mono).unwrap_or(u64::MAX),
                epoch_ms: m.sampled_at_ms,
            },
            throttle_now: m.board.throttle.sample.map(|t| t.now),
            cpu_temp_c: m.cpu_temp_c,
            mem_used: mem_used(
                m.mem.mem_total,
                m.mem.mem_total.saturating_sub(m.mem.mem_used),
            ),
            clock_synced: self.clock_synced,
            filesystems: fs.get(..n).unwrap_or(&[]),
            oom_kill: self.vmstat.oom_kill,
            net: net.get(..k).unwrap_or(&[]),
            cgroups: cg.get(..c).unwrap_or(&[]),
        };
        self.engine.evaluate(&inputs);
        self.evaluated = true;
    }
}

/// The first `N` of `items` in an array (the tick allocates nothing), and
/// how many there were.
fn first<T: Copy + Default, const N: usize>(items: impl Iterator<Item = T>) -> ([T; N], usize) {
    let mut out = [T::default(); N];
    let mut n = 0;
    for (slot, x) in out.iter_mut().zip(items) {
        *slot = x;
        n += 1;
    }
    (out, n)
}

impl Answers {
    /// The history tick's evaluation, over the sample it just recorded.
    pub(super) fn alerts_tick(&mut self, now: Instant) {
        if self.alerts.as_mut().is_some_and(|a| a.disks_due(now)) {
            if let Err(e) = self.disks_sample(now) {
                log::debug!("alerts: no filesystems: {e}");
            }
            if let Some(a) = &mut self.alerts {
                a.vmstat
                    .refresh(&self.col.settings().root, &mut a.vmstat_buf);
            }
            // the cgroups: listed when nobody did for CGROUPS_RELIST,
            // else only their memory read again (no CPU window moved)
            let listed = self.col.cgroups().0;
            if listed.is_none_or(|at| now.saturating_duration_since(at) >= CGROUPS_RELIST) {
                if let Err(e) = self.cgroups_sample(now) {
                    log::debug!("alerts: no cgroups: {e}");
                }
            } else {
                self.col.refresh_cgroup_memory();
            }
        }
        if let Some(a) = &mut self.alerts {
            a.clock_synced = timex::read(&self.col.settings().root).map(|c| c.synced);
            let disks = self.col.disks();
            let fs = match disks.at {
                Some(at) if now.saturating_duration_since(at) <= DISKS_MAX_AGE => {
                    &disks.filesystems[..]
                }
                _ => &[],
            };
            a.tick(self.col.metrics(), fs, self.col.cgroups().1, now);
        }
    }

    /// Evaluates the alert rules (with the alerts file's changes) on the
    /// history tick, delivering to `alertmanagers` Alertmanagers; after
    /// `with_history`, and only when the history is on.
    pub fn with_alerts(
        mut self,
        overrides: &crate::alerts::Overrides,
        alertmanagers: usize,
    ) -> Self {
        // Without the tick nothing would evaluate them: no tables then.
        if self.history.is_some() {
            self.alerts = Some(Alerting::new(overrides, alertmanagers));
        }
        self
    }

    /// The alert engine, once wired (`with_alerts`): delivery's caller
    /// drives `due`, `payload` and `delivered` through it.
    pub fn alert_engine(&mut self) -> Option<&mut crate::alerts::Engine> {
        self.alerts.as_mut().map(|a| &mut a.engine)
    }

    /// The alert engine and `now` on its clocks (the monotonic one from the
    /// engine's start, the wall clock), for delivery's `due`, `payload` and
    /// `delivered`.
    pub fn alert_engine_at(&mut self, now: Instant) -> Option<(&mut Engine, Stamp)> {
        let a = self.alerts.as_mut()?;
        let mono = now.saturating_duration_since(a.start).as_millis();
        let stamp = Stamp {
            mono_ms: u64::try_from(mono).unwrap_or(u64::MAX),
            epoch_ms: crate::collect::epoch_ms(),
        };
        Some((&mut a.engine, stamp))
    }

    /// The `alerts` answer: the pending and firing alerts, or the error
    /// object before the first evaluation (`NOT_EVALUATED`).
    pub(super) fn alerts_answer(&mut self, text: &str) -> Answer {
        let Some(a) = self.alerts.as_ref().filter(|a| a.evaluated) else {
            return Answer::text(crate::protocol::error_json(NOT_EVALUATED, text, None));
        };
        a.engine.answer_json(&mut self.x.json);
        Answer::text(String::from_utf8_lossy(&self.x.json).into_owned())
    }

    /// `sockagent_alerts`, once the rules have been evaluated.
    pub(super) fn alerts_family(&self, out: &mut dyn crate::families::Sink) {
        if let Some(a) = self.alerts.as_ref().filter(|a| a.evaluated) {
            a.engine.describe(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::net::NetDev;

    /// The sample's interfaces reach the engine: 2 % receive errors over
    /// the window fire `NodeNetworkReceiveErrs` (its `for` made 0).
    #[test]
    fn receive_errors_from_the_sample() {
        let o = Overrides::parse("[NodeNetworkReceiveErrs]\nfor = 0\n").unwrap();
        let mut a = Alerting::new(&o, 0);
        let mut m = MetricsSample::default();
        let t0 = Instant::now();
        for (s, errs, packets) in [(0, 0, 0), (121, 200, 10_000)] {
            m.nets = vec![NetDev {
                name: "eth0".into(),
                rx_errors: errs,
                rx_packets: packets,
                ..NetDev::default()
            }];
            a.tick(&m, &[], &[], t0 + Duration::from_secs(s));
        }
        let firing: Vec<_> = a
            .engine
            .alerts()
            .filter(|x| x.2.state == crate::alerts::State::Firing)
            .map(|x| (x.0.name, x.1))
            .collect();
        assert_eq!(
            firing,
            [("NodeNetworkReceiveErrs", Some(("device", "eth0")))]
        );
    }
}
