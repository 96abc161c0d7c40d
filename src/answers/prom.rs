//! `GET /metrics`: the Prometheus view of the same typed samples the
//! WebSocket answers are encoded from (`Answers::prometheus` makes each
//! fresh, as a client's request would). Every collector describes its own
//! families beside its reader (`families::Family` constants and a
//! `describe`); this module puts them in the order a scrape lists them and
//! adds the agent's own (`sockagent_self_*`, collector timings, the history
//! ring, pushed streams). Any `families::Sink` takes the same description:
//! the text exposition (`protocol::prom::Writer`) is one.

use crate::collect::collector::Timing;
use crate::collect::{self, cgroups, disks, gpu, host, processes, Collectors};
use crate::families::{Family, Sink, Value};
use crate::protocol::prom::Writer;
use crate::protocol::Stream;
use std::time::{Duration, Instant};

/// The previous scrape, for `sockagent_scrape_duration_seconds` and to
/// size the next body's buffer.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    last: Option<Duration>,
    last_len: usize,
}

impl ScrapeStats {
    pub fn done(&mut self, took: Duration, len: usize) {
        self.last = Some(took);
        self.last_len = len;
    }
}

/// What the scrape made fresh, and what it could not.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    /// Top processes to list (0: none, or the scan failed).
    pub top_n: usize,
    /// Whether `sockagent_processes` is shown (`SOCKAGENT_PROM_TOP_N` > 0).
    pub procs_listed: bool,
    /// Whether the disks collection succeeded.
    pub filesystems: bool,
    /// Cgroups to list, the heaviest by CPU (0: none, or no sample).
    pub top_cgroups: usize,
    pub now: Instant,
    /// The history ring's (bytes, samples held); `None` when it is off.
    pub history: Option<(usize, usize)>,
    /// The server's pushed streams.
    pub pushes: PushCounts,
}

/// The pushed streams' counts, by `protocol::Stream as usize` (the server
/// keeps them; `/metrics` shows them).
#[derive(Debug, Clone, Copy, Default)]
pub struct PushCounts {
    /// Connections subscribed to each stream now.
    pub subscribers: [u64; 3],
    /// Frames handed to subscribers.
    pub frames: [u64; 3],
    /// Frames replaced, unsent, by a newer one (a subscriber not reading).
    pub coalesced: [u64; 3],
    /// Frames waiting inside the agent for a subscriber's socket.
    pub pending: u64,
    /// Live push groups (one per stream and period asked for).
    pub groups: u64,
    /// Clients dropped because what waited for them passed their cap.
    pub dropped_queue: u64,
    /// Clients dropped because every client together held over the total.
    pub dropped_total: u64,
}

crate::families::declare! {
    pub BUILD_INFO = gauge("sockagent_build_info", "The agent's version; always 1.");
    pub CPU_TEMPERATURE = gauge("sockagent_cpu_temperature_celsius", "CPU package temperature, the sensor the metrics answer reports.");
    pub SELF_CPU = counter("sockagent_self_cpu_seconds_total", "CPU time the agent itself has used.");
    pub SELF_RSS = gauge("sockagent_self_resident_memory_bytes", "The agent's own resident set size.");
    pub SCRAPE_DURATION = gauge("sockagent_scrape_duration_seconds", "How long the previous /metrics scrape took, collections included.");
    pub HISTORY_BYTES = gauge("sockagent_history_bytes", "Memory of the history ring, sized at start.");
    pub HISTORY_SAMPLES = gauge("sockagent_history_samples", "Samples the history ring holds now.");
    pub PUSH_PENDING = gauge("sockagent_push_pending_frames", "Pushed frames waiting inside the agent for a subscriber's socket (at most one per stream each).");
}

type TimingPick = fn(&Timing) -> Value;

/// Each collection's last run, time in all and runs, by `collector`.
const TIMINGS: [(Family, TimingPick); 3] = [
    (
        Family::gauge(
            "sockagent_collector_duration_seconds",
            "How long the last run of each collection took.",
        ),
        |t| Value::F(t.last.as_secs_f64()),
    ),
    (
        Family::counter(
            "sockagent_collector_seconds_total",
            "Time spent in each collection since the agent started.",
        ),
        |t| Value::F(t.total.as_secs_f64()),
    ),
    (
        Family::counter(
            "sockagent_collector_runs_total",
            "Runs of each collection since the agent started (cache hits are not runs).",
        ),
        |t| Value::U(t.runs),
    ),
];

crate::families::declare! {
    pub PUSH_GROUPS = gauge("sockagent_push_groups", "Live push groups: one per stream and period subscribed to.");
    pub CLIENTS_DROPPED = counter("sockagent_clients_dropped_total", "Clients dropped for holding too much unread output: over their own cap (queue) or the largest when all together were over the total (total).");
}

type PushPick = fn(&PushCounts) -> &[u64; 3];

/// The pushed streams' counts, by `stream`.
const STREAMS: [(Family, PushPick); 3] = [
    (
        Family::gauge(
            "sockagent_subscribers",
            "Connections subscribed to each pushed stream.",
        ),
        |c| &c.subscribers,
    ),
    (
        Family::counter(
            "sockagent_push_frames_total",
            "Frames of each stream handed to subscribers.",
        ),
        |c| &c.frames,
    ),
    (
        Family::counter(
            "sockagent_push_coalesced_total",
            "Frames replaced by a newer one before a slow subscriber took them.",
        ),
        |c| &c.coalesced,
    ),
];

/// The body of one scrape, from the collectors' current samples.
pub fn render(col: &mut Collectors, stats: &ScrapeStats, p: Parts) -> String {
    let mut out = String::with_capacity(stats.last_len + 4096);
    describe(col, stats, &p, &mut Writer::new(&mut out));
    out
}

/// Every family of a scrape, from the collectors' current samples, into `out`.
pub fn describe(col: &mut Collectors, stats: &ScrapeStats, p: &Parts, out: &mut dyn Sink) {
    let rss = col.own_rss();
    describe_samples(col, p, out);
    if let Some(gpus) = col.gpus(p.now) {
        gpu::describe(gpus, out);
    }
    if let Some((user, system)) = collect::own_cpu() {
        SELF_CPU.open(out);
        out.sample(&[("mode", "user")], Value::F(user));
        out.sample(&[("mode", "system")], Value::F(system));
    }
    if let Some(rss) = rss {
        SELF_RSS.single(out, rss);
    }
    let timings = col.kinds().timings();
    for (family, pick) in TIMINGS {
        family.open(out);
        for (name, t) in timings {
            out.sample(&[("collector", name)], pick(t));
        }
    }
    if let Some(d) = stats.last {
        SCRAPE_DURATION.single(out, d.as_secs_f64());
    }
    describe_streams(p, out);
}

/// The collectors' own families, in the order a scrape lists them.
fn describe_samples(col: &Collectors, p: &Parts, out: &mut dyn Sink) {
    let m = col.metrics();
    m.describe(out);
    let filesystems: &[disks::FsRow] = if p.filesystems {
        &col.disks().filesystems
    } else {
        &[]
    };
    disks::describe_filesystems(filesystems, out);
    col.sensors().hwmon.describe(out);
    col.sensors().vmstat.describe(out);
    col.sensors().timex.describe(out);
    host::describe_uname(&m.hostname, out);
    BUILD_INFO.open(out);
    out.sample(&[("version", env!("CARGO_PKG_VERSION"))], Value::U(1));
    if let Some(t) = m.cpu_temp_c {
        CPU_TEMPERATURE.single(out, t);
    }
    let rows: &[processes::ProcRow] = if p.top_n > 0 { col.processes().1 } else { &[] };
    processes::describe(rows, p.procs_listed, p.top_n, out);
    cgroups::describe_top(col.cgroups().1, p.top_cgroups, out);
}

/// The history ring and the pushed streams.
fn describe_streams(p: &Parts, out: &mut dyn Sink) {
    if let Some((bytes, samples)) = p.history {
        HISTORY_BYTES.single(out, bytes as u64);
        HISTORY_SAMPLES.single(out, samples as u64);
    }
    for (family, pick) in STREAMS {
        family.open(out);
        let values = pick(&p.pushes);
        for s in Stream::ALL {
            let v = values.get(s as usize).copied().unwrap_or(0);
            out.sample(&[("stream", s.name())], Value::U(v));
        }
    }
    PUSH_PENDING.single(out, p.pushes.pending);
    PUSH_GROUPS.single(out, p.pushes.groups);
    CLIENTS_DROPPED.open(out);
    out.sample(&[("reason", "queue")], Value::U(p.pushes.dropped_queue));
    out.sample(&[("reason", "total")], Value::U(p.pushes.dropped_total));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::valid_name;

    use crate::answers::{Answers, Ttls};
    use crate::collect::{fs::Root, Settings};

    fn scrape(tree: &str, top_n: usize) -> String {
        let root = Root::fixture(tree);
        let c = Collectors::new(
            Settings {
                root,
                ..Settings::default()
            },
            16,
        );
        Answers::new(c, Ttls::default())
            .with_prom_top_n(top_n)
            .prometheus(Instant::now())
            .unwrap()
    }

    /// The exposition rules a scraper relies on: every sample line is
    /// `name[{k="v",...}] value`, every family has HELP and TYPE before its
    /// samples, a family's samples are together, no series twice.
    fn check_exposition(text: &str) -> Vec<(String, String, String)> {
        let mut samples = Vec::new();
        let mut families: Vec<String> = Vec::new();
        let mut typed: Option<String> = None;
        let mut series = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!families.contains(&name), "family {name} twice");
                families.push(name);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert_eq!(Some(name), families.last().map(String::as_str));
                assert!(kind == "counter" || kind == "gauge", "{line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter {name}");
                }
                typed = Some(name.to_string());
                continue;
            }
            let (series_key, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series_key.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').expect(line)),
                None => (series_key, ""),
            };
            assert!(valid_name(name), "{line}");
            assert_eq!(
                Some(name),
                typed.as_deref(),
                "sample outside its family: {line}"
            );
            assert!(
                value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
                "{line}"
            );
            assert!(
                series.insert(series_key.to_string()),
                "series twice: {line}"
            );
            samples.push((name.to_string(), labels.to_string(), value.to_string()));
        }
        samples
    }

    fn value<'a>(s: &'a [(String, String, String)], name: &str, labels: &str) -> &'a str {
        s.iter()
            .find(|x| x.0 == name && x.1 == labels)
            .map(|x| x.2.as_str())
            .unwrap_or_else(|| panic!("no {name}{{{labels}}}"))
    }

    /// Each `(family, labels, value)` is a sample of `s`.
    fn expect(s: &[(String, String, String)], want: &[(&str, &str, &str)]) {
        for (name, labels, v) in want {
            assert_eq!(value(s, name, labels), *v, "{name}{{{labels}}}");
        }
    }

    #[test]
    fn h200_vm_tree() {
        let text = scrape("h200-vm", 10);
        let s = check_exposition(&text);
        // values read from the fixture's files
        expect(
            &s,
            &[
                ("node_memory_MemTotal_bytes", "", "135148564480"),
                ("node_memory_SwapTotal_bytes", "", "0"),
                ("node_boot_time_seconds", "", "1795665180"),
                ("node_load1", "", "0.07"),
                ("node_load15", "", "0"),
            ],
        );
        let cpu_lines = s.iter().filter(|x| x.0 == "node_cpu_seconds_total").count();
        assert_eq!(cpu_lines, 16 * 8);
        assert!(s
            .iter()
            .any(|x| x.0 == "node_network_receive_bytes_total" && x.1 == "device=\"eth0\""));
        // statvfs of the tree's "/" (a directory on this machine): some size
        let size = value(
            &s,
            "node_filesystem_size_bytes",
            "device=\"/dev/vda\",fstype=\"ext4\",mountpoint=\"/\"",
        );
        assert!(size.parse::<u64>().unwrap() > 0);
        assert_eq!(value(&s, "sockagent_processes", ""), "2");
        assert_eq!(
            s.iter()
                .filter(|x| x.0 == "sockagent_top_process_cpu_percent")
                .count(),
            2
        );
        assert!(!text.contains("node_hwmon"), "no hwmon in that tree");
    }

    #[test]
    fn top_n_is_bounded() {
        let s = check_exposition(&scrape("prometheus-procfs", 1));
        let top: Vec<_> = s
            .iter()
            .filter(|x| x.0 == "sockagent_top_process_resident_memory_bytes")
            .collect();
        assert_eq!(top.len(), 1);
        let s = check_exposition(&scrape("prometheus-procfs", 0));
        assert!(!s.iter().any(|x| x.0.starts_with("sockagent_top_process")));
        // the comm "(a b ) ( c d) " is a label value like any other
        let s = check_exposition(&scrape("prometheus-procfs", 10));
        assert!(s
            .iter()
            .any(|x| x.1 == "name=\"(a b ) ( c d) \",pid=\"584\""));
    }

    #[test]
    fn hwmon_from_node_exporter_tree() {
        let s = check_exposition(&scrape("node-exporter", 10));
        let chip = "chip=\"platform_coretemp_0\"";
        expect(
            &s,
            &[
                (
                    "node_hwmon_temp_celsius",
                    &format!("{chip},sensor=\"temp1\""),
                    "55",
                ),
                (
                    "node_hwmon_chip_names",
                    &format!("{chip},chip_name=\"coretemp\""),
                    "1",
                ),
                (
                    "node_hwmon_sensor_label",
                    &format!("{chip},label=\"Core 0\",sensor=\"temp2\""),
                    "1",
                ),
                ("sockagent_cpu_temperature_celsius", "", "55"),
            ],
        );
    }

    #[test]
    fn cgroups_from_fixture_trees_top_n_bounded() {
        let s = check_exposition(&scrape("cgroup-v2", 10));
        let nginx =
            "cgroup=\"/system.slice/nginx.service\",kind=\"service\",name=\"nginx.service\"";
        let rw = |d: &str| {
            format!("cgroup=\"/system.slice/nginx.service\",direction=\"{d}\",kind=\"service\",name=\"nginx.service\"")
        };
        expect(
            &s,
            &[
                ("sockagent_cgroup_cpu_seconds_total", nginx, "48.213377"),
                ("sockagent_cgroup_memory_bytes", nginx, "25714688"),
                ("sockagent_cgroup_io_bytes_total", &rw("read"), "12582912"),
                ("sockagent_cgroup_io_bytes_total", &rw("write"), "1052672"),
            ],
        );
        let n = |s: &[(String, String, String)]| {
            s.iter()
                .filter(|x| x.0 == "sockagent_cgroup_memory_bytes")
                .count()
        };
        assert_eq!(n(&s), 3);
        let v1 = check_exposition(&scrape("cgroup-v1", 10));
        assert_eq!(n(&v1), 3);
        // sandbox/job-7 has no CPU reading: no CPU series, the others are there
        assert_eq!(
            v1.iter()
                .filter(|x| x.0 == "sockagent_cgroup_cpu_seconds_total")
                .count(),
            2
        );
        // the default 20 here; 1 heaviest by CPU time (all at 0 % in a still tree)
        let root = Root::fixture("cgroup-v2");
        let c = Collectors::new(
            Settings {
                root,
                ..Settings::default()
            },
            16,
        );
        let mut a = Answers::new(c, Ttls::default()).with_prom_top_cgroups(1);
        let one = check_exposition(&a.prometheus(Instant::now()).unwrap());
        let top: Vec<_> = one
            .iter()
            .filter(|x| x.0 == "sockagent_cgroup_cpu_seconds_total")
            .collect();
        assert_eq!(top.len(), 1);
        assert!(top[0].1.contains("session-2.scope"), "{top:?}");
        let mut a = a.with_prom_top_cgroups(0);
        let none = a.prometheus(Instant::now()).unwrap();
        assert!(!none.contains("sockagent_cgroup_"));
        // a tree without cgroups: no cgroup families at all
        assert!(!scrape("h200-vm", 10).contains("sockagent_cgroup_"));
    }

    #[test]
    fn board_families_from_the_hand_made_trees() {
        let s = check_exposition(&scrape("rpi4", 0));
        // 3551234 sectors of 512 bytes; io_ticks 60120 ms
        expect(
            &s,
            &[
                (
                    "node_cpu_scaling_frequency_hertz",
                    "cpu=\"3\"",
                    "1500000000",
                ),
                (
                    "sockagent_throttling",
                    "reason=\"under-voltage\",when=\"now\"",
                    "1",
                ),
                (
                    "sockagent_throttling",
                    "reason=\"soft-temperature-limit\",when=\"since_boot\"",
                    "0",
                ),
                (
                    "node_disk_read_bytes_total",
                    "device=\"mmcblk0\"",
                    "1818231808",
                ),
                (
                    "node_disk_io_time_seconds_total",
                    "device=\"mmcblk0\"",
                    "60.12",
                ),
                ("node_network_receive_errs_total", "device=\"eth0\"", "3"),
                ("node_network_transmit_drop_total", "device=\"eth0\"", "2"),
            ],
        );
        assert!(!s.iter().any(|x| x.1.contains("thermal-throttle")));
        assert!(!s.iter().any(|x| x.1.contains("mmcblk0p")), "no partitions");
        assert!(!s.iter().any(|x| x.0.starts_with("node_pressure")));

        let s = check_exposition(&scrape("laptop", 0));
        expect(
            &s,
            &[
                (
                    "node_hwmon_fan_rpm",
                    "chip=\"platform_thinkpad_hwmon\",sensor=\"fan1\"",
                    "2874",
                ),
                ("node_power_supply_capacity", "power_supply=\"BAT0\"", "81"),
                (
                    "node_rapl_package_joules_total",
                    "index=\"0\",path=\"/sys/class/powercap/intel-rapl:0\"",
                    "240422.366267",
                ),
            ],
        );
        assert_eq!(
            s.iter()
                .filter(|x| x.0 == "node_rapl_package_joules_total")
                .count(),
            1
        );

        let s = check_exposition(&scrape("server", 0));
        expect(
            &s,
            &[
                (
                    "node_pressure_cpu_waiting_seconds_total",
                    "",
                    "123456.789012",
                ),
                (
                    "node_pressure_memory_stalled_seconds_total",
                    "",
                    "12.345678",
                ),
                ("node_pressure_io_stalled_seconds_total", "", "234.56789"),
                (
                    "sockagent_throttling",
                    "reason=\"thermal-throttle\",when=\"since_boot\"",
                    "1",
                ),
                (
                    "sockagent_throttling",
                    "reason=\"thermal-throttle\",when=\"now\"",
                    "0",
                ),
                (
                    "node_disk_written_bytes_total",
                    "device=\"nvme0n1\"",
                    "4487901239808",
                ),
            ],
        );
        assert!(
            !s.iter().any(|x| x.1.contains("loop0")),
            "an idle loop device"
        );
        assert!(!s.iter().any(|x| x.0 == "node_cpu_scaling_frequency_hertz"));
        assert!(s.iter().any(|x| x.0 == "node_time_seconds"));
    }
}
