//! `GET /metrics`: the Prometheus view of the same typed samples the
//! WebSocket answers are encoded from (`Answers::prometheus` makes each
//! fresh, as a client's request would, then this renders them). Names and
//! labels are node_exporter's wherever the meaning is the same, so its
//! dashboards work; the rest is `sockagent_*`.

use crate::collect::{
    self, cgroups::CgroupRow, cpu, disks, gpu, processes::ProcRow, Collection, Collectors,
};
use crate::protocol::prom::{valid_name, Kind, Writer};
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

/// node_exporter's name for a meminfo key: `Active(anon)` → `Active_anon`,
/// any other character a metric name cannot hold → `_`.
pub fn meminfo_metric(key: &[u8], kb: bool) -> String {
    let mut name = String::from("node_memory_");
    for &b in key {
        match b {
            b'(' => name.push('_'),
            b')' => {}
            b if b.is_ascii_alphanumeric() || b == b'_' => name.push(b as char),
            _ => name.push('_'),
        }
    }
    if kb {
        name.push_str("_bytes");
    }
    name
}

/// The body of one scrape, from the collectors' current samples.
pub fn render(col: &mut Collectors, stats: &ScrapeStats, p: Parts) -> String {
    use Kind::{Counter, Gauge};
    let mut out = String::with_capacity(stats.last_len + 4096);
    let w = &mut Writer { out: &mut out };
    let rss = col.own_rss();
    let hz = collect::clock_ticks() as f64;
    {
        let m = col.metrics();
        let sensors = col.sensors();
        let filesystems: &[disks::FsRow] = if p.filesystems {
            &col.disks().filesystems
        } else {
            &[]
        };
        let rows: &[ProcRow] = if p.top_n > 0 { col.processes().1 } else { &[] };
        let counters = m.stat.counters;

        w.family(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            Counter,
        );
        for c in &m.stat.modes {
            let n = c.cpu.to_string();
            for (mode, ticks) in cpu::MODES.iter().zip(c.ticks) {
                w.sample(
                    "node_cpu_seconds_total",
                    &[("cpu", n.as_str()), ("mode", mode)],
                    ticks as f64 / hz,
                );
            }
        }
        w.single(
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            Gauge,
            counters.btime,
        );
        w.single(
            "node_context_switches_total",
            "Total number of context switches.",
            Counter,
            counters.ctxt,
        );
        w.single(
            "node_forks_total",
            "Total number of forks.",
            Counter,
            counters.forks,
        );
        w.single(
            "node_intr_total",
            "Total number of interrupts serviced.",
            Counter,
            counters.intr,
        );
        w.single(
            "node_procs_running",
            "Number of processes in runnable state.",
            Gauge,
            counters.procs_running,
        );
        w.single(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            Gauge,
            counters.procs_blocked,
        );
        if let Some([l1, l5, l15]) = m.board.load_avg {
            w.single("node_load1", "1m load average.", Gauge, l1);
            w.single("node_load5", "5m load average.", Gauge, l5);
            w.single("node_load15", "15m load average.", Gauge, l15);
        }

        let mut seen: Vec<String> = Vec::new();
        for f in &m.mem_fields {
            let (key, v, kb) = (f.key.as_bytes(), f.value, f.kb);
            let name = meminfo_metric(key, kb);
            // A name twice (a kernel oddity) would be a duplicate family.
            if !valid_name(&name) || seen.contains(&name) {
                continue;
            }
            let help = format!(
                "Memory information field {}.",
                name.trim_start_matches("node_memory_")
            );
            w.single(&name, &help, Gauge, v);
            seen.push(name);
        }

        w.family(
            "node_network_receive_bytes_total",
            "Network device statistic receive_bytes.",
            Counter,
        );
        for n in &m.nets {
            w.sample(
                "node_network_receive_bytes_total",
                &[("device", &n.name)],
                n.received,
            );
        }
        w.family(
            "node_network_transmit_bytes_total",
            "Network device statistic transmit_bytes.",
            Counter,
        );
        for n in &m.nets {
            w.sample(
                "node_network_transmit_bytes_total",
                &[("device", &n.name)],
                n.transmitted,
            );
        }

        render_board(w, m);

        type Pick = fn(&disks::Space) -> u64;
        let fs_families: [(&str, &str, Pick); 3] = [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                |s| s.total,
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                |s| s.avail,
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                |s| s.free,
            ),
        ];
        for (name, help, pick) in fs_families {
            w.family(name, help, Gauge);
            for f in filesystems {
                w.sample(
                    name,
                    &[
                        ("device", &f.device),
                        ("fstype", &f.fstype),
                        ("mountpoint", &f.mountpoint),
                    ],
                    pick(&f.space),
                );
            }
        }

        let temps = &sensors.hwmon.temps;
        if !temps.is_empty() {
            w.family(
                "node_hwmon_chip_names",
                "Annotation metric for human-readable chip names",
                Gauge,
            );
            let mut last = None;
            for t in temps {
                if let Some(cn) = &t.chip_name {
                    if last != Some(&t.chip) {
                        w.sample(
                            "node_hwmon_chip_names",
                            &[("chip", &t.chip), ("chip_name", cn)],
                            1u64,
                        );
                    }
                }
                last = Some(&t.chip);
            }
            w.family(
                "node_hwmon_sensor_label",
                "Label for given chip and sensor",
                Gauge,
            );
            for t in temps {
                if let Some(l) = &t.label {
                    w.sample(
                        "node_hwmon_sensor_label",
                        &[("chip", &t.chip), ("label", l), ("sensor", &t.sensor)],
                        1u64,
                    );
                }
            }
            w.family(
                "node_hwmon_temp_celsius",
                "Hardware monitor for temperature (input)",
                Gauge,
            );
            for t in temps {
                if let Some(c) = t.celsius {
                    w.sample(
                        "node_hwmon_temp_celsius",
                        &[("chip", &t.chip), ("sensor", &t.sensor)],
                        c,
                    );
                }
            }
        }

        if let Some([sysname, release, version, machine, domainname]) = collect::uname() {
            w.family(
                "node_uname_info",
                "Labeled system information as provided by the uname system call.",
                Gauge,
            );
            w.sample(
                "node_uname_info",
                &[
                    ("domainname", &domainname),
                    ("machine", &machine),
                    ("nodename", &m.hostname),
                    ("release", &release),
                    ("sysname", &sysname),
                    ("version", &version),
                ],
                1u64,
            );
        }

        // sockagent_*: what node_exporter has no name for.
        w.family(
            "sockagent_build_info",
            "The agent's version; always 1.",
            Gauge,
        );
        w.sample(
            "sockagent_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1u64,
        );
        if let Some(t) = m.cpu_temp_c {
            w.single(
                "sockagent_cpu_temperature_celsius",
                "CPU package temperature, the sensor the metrics answer reports.",
                Gauge,
                t,
            );
        }
        if p.procs_listed {
            w.single(
                "sockagent_processes",
                "Processes seen by the last process scan.",
                Gauge,
                rows.len() as u64,
            );
        }
        let n = p.top_n.min(rows.len());
        let mut top: Vec<&ProcRow> = rows.iter().collect();
        let by_cpu = |a: &&ProcRow, b: &&ProcRow| {
            b.cpu_usage
                .total_cmp(&a.cpu_usage)
                .then(b.mem_bytes.cmp(&a.mem_bytes))
                .then(a.pid.cmp(&b.pid))
        };
        if n > 0 && n < top.len() {
            top.select_nth_unstable_by(n - 1, by_cpu);
        }
        top.truncate(n);
        top.sort_unstable_by(by_cpu);
        w.family(
        "sockagent_top_process_cpu_percent",
        "Share of all CPUs used since the previous process scan, 0-100, by the top processes by CPU (SOCKAGENT_PROM_TOP_N).",
        Gauge,
    );
        let pids: Vec<String> = top.iter().map(|r| r.pid.to_string()).collect();
        for (r, pid) in top.iter().zip(&pids) {
            w.sample(
                "sockagent_top_process_cpu_percent",
                &[("name", &r.name), ("pid", pid)],
                r.cpu_usage,
            );
        }
        w.family(
            "sockagent_top_process_resident_memory_bytes",
            "Resident set size of the same top processes.",
            Gauge,
        );
        for (r, pid) in top.iter().zip(&pids) {
            w.sample(
                "sockagent_top_process_resident_memory_bytes",
                &[("name", &r.name), ("pid", pid)],
                r.mem_bytes,
            );
        }
        if p.top_cgroups > 0 {
            render_cgroups(w, col.cgroups().1, p.top_cgroups);
        }
    }
    render_gpus(w, col.gpus(p.now));
    if let Some((user, system)) = collect::own_cpu() {
        w.family(
            "sockagent_self_cpu_seconds_total",
            "CPU time the agent itself has used.",
            Counter,
        );
        w.sample(
            "sockagent_self_cpu_seconds_total",
            &[("mode", "user")],
            user,
        );
        w.sample(
            "sockagent_self_cpu_seconds_total",
            &[("mode", "system")],
            system,
        );
    }
    if let Some(rss) = rss {
        w.single(
            "sockagent_self_resident_memory_bytes",
            "The agent's own resident set size.",
            Gauge,
            rss,
        );
    }
    let timings = *col.timings();
    let names = Collection::ALL.map(Collection::name);
    w.family(
        "sockagent_collector_duration_seconds",
        "How long the last run of each collection took.",
        Gauge,
    );
    for (name, t) in names.iter().zip(&timings) {
        w.sample(
            "sockagent_collector_duration_seconds",
            &[("collector", name)],
            t.last.as_secs_f64(),
        );
    }
    w.family(
        "sockagent_collector_seconds_total",
        "Time spent in each collection since the agent started.",
        Counter,
    );
    for (name, t) in names.iter().zip(&timings) {
        w.sample(
            "sockagent_collector_seconds_total",
            &[("collector", name)],
            t.total.as_secs_f64(),
        );
    }
    w.family(
        "sockagent_collector_runs_total",
        "Runs of each collection since the agent started (cache hits are not runs).",
        Counter,
    );
    for (name, t) in names.iter().zip(&timings) {
        w.sample(
            "sockagent_collector_runs_total",
            &[("collector", name)],
            t.runs,
        );
    }
    if let Some(d) = stats.last {
        w.single(
            "sockagent_scrape_duration_seconds",
            "How long the previous /metrics scrape took, collections included.",
            Gauge,
            d.as_secs_f64(),
        );
    }
    render_streams(w, &p);
    out
}

/// The history ring and the pushed streams.
fn render_streams(w: &mut Writer, p: &Parts) {
    use crate::protocol::Stream;
    use Kind::{Counter, Gauge};
    if let Some((bytes, samples)) = p.history {
        w.single(
            "sockagent_history_bytes",
            "Memory of the history ring, sized at start.",
            Gauge,
            bytes as u64,
        );
        w.single(
            "sockagent_history_samples",
            "Samples the history ring holds now.",
            Gauge,
            samples as u64,
        );
    }
    let c = &p.pushes;
    for (name, help, kind, values) in [
        (
            "sockagent_subscribers",
            "Connections subscribed to each pushed stream.",
            Gauge,
            &c.subscribers,
        ),
        (
            "sockagent_push_frames_total",
            "Frames of each stream handed to subscribers.",
            Counter,
            &c.frames,
        ),
        (
            "sockagent_push_coalesced_total",
            "Frames replaced by a newer one before a slow subscriber took them.",
            Counter,
            &c.coalesced,
        ),
    ] {
        w.family(name, help, kind);
        for s in Stream::ALL {
            let v = values.get(s as usize).copied().unwrap_or(0);
            w.sample(name, &[("stream", s.name())], v);
        }
    }
    w.single(
        "sockagent_push_pending_frames",
        "Pushed frames waiting inside the agent for a subscriber's socket (at most one per stream each).",
        Gauge,
        c.pending,
    );
    w.single(
        "sockagent_push_groups",
        "Live push groups: one per stream and period subscribed to.",
        Gauge,
        c.groups,
    );
    let name = "sockagent_clients_dropped_total";
    w.family(
        name,
        "Clients dropped for holding too much unread output: over their own cap (queue) or the largest when all together were over the total (total).",
        Counter,
    );
    w.sample(name, &[("reason", "queue")], c.dropped_queue);
    w.sample(name, &[("reason", "total")], c.dropped_total);
}

/// The `n` cgroups that used most CPU since the previous sample (then
/// most CPU time in all), labelled `cgroup` (its path), `kind` and `name`
/// as in the `cgroups` answer. Nothing where the host has no cgroups.
fn render_cgroups(w: &mut Writer, rows: &[CgroupRow], n: usize) {
    use Kind::{Counter, Gauge};
    if rows.is_empty() {
        return;
    }
    let mut top: Vec<&CgroupRow> = rows.iter().collect();
    let by_cpu = |a: &&CgroupRow, b: &&CgroupRow| {
        let pct = |r: &CgroupRow| r.cpu_pct.unwrap_or(-1.0);
        pct(b)
            .total_cmp(&pct(a))
            .then(b.cpu_ns.cmp(&a.cpu_ns))
            .then(a.path.cmp(&b.path))
    };
    let n = n.min(top.len());
    if n > 0 && n < top.len() {
        top.select_nth_unstable_by(n - 1, by_cpu);
    }
    top.truncate(n);
    top.sort_unstable_by(by_cpu);
    fn labels(r: &CgroupRow) -> [(&'static str, &str); 3] {
        [
            ("cgroup", r.path.as_str()),
            ("kind", r.kind.as_str()),
            ("name", r.name.as_str()),
        ]
    }
    w.family(
        "sockagent_cgroup_cpu_seconds_total",
        "CPU time used by the cgroup and its descendants, the top cgroups by CPU since the previous sample (SOCKAGENT_PROM_TOP_CGROUPS).",
        Counter,
    );
    for r in &top {
        if let Some(ns) = r.cpu_ns {
            w.sample(
                "sockagent_cgroup_cpu_seconds_total",
                &labels(r),
                ns as f64 / 1e9,
            );
        }
    }
    w.family(
        "sockagent_cgroup_memory_bytes",
        "Memory charged to the same cgroups (v2 memory.current, v1 memory.usage_in_bytes).",
        Gauge,
    );
    for r in &top {
        if let Some(b) = r.mem_bytes {
            w.sample("sockagent_cgroup_memory_bytes", &labels(r), b);
        }
    }
    w.family(
        "sockagent_cgroup_io_bytes_total",
        "Bytes the same cgroups read and wrote on block devices.",
        Counter,
    );
    for r in &top {
        let [c, k, nm] = labels(r);
        for (dir, v) in [("read", r.io_read_bytes), ("write", r.io_write_bytes)] {
            if let Some(v) = v {
                w.sample(
                    "sockagent_cgroup_io_bytes_total",
                    &[c, ("direction", dir), k, nm],
                    v,
                );
            }
        }
    }
}

/// The board readings of the metrics sample, under node_exporter's names
/// (its cpufreq, pressure, diskstats, netdev, hwmon, powersupplyclass,
/// rapl and time collectors) and `sockagent_throttling`.
fn render_board(w: &mut Writer, m: &collect::MetricsSample) {
    use Kind::{Counter, Gauge};
    let b = &m.board;
    if b.cpufreq.any() {
        w.family(
            "node_cpu_scaling_frequency_hertz",
            "Current scaled CPU thread frequency in hertz.",
            Gauge,
        );
        for c in &b.cpufreq.cores {
            if let Some(khz) = c.khz {
                let cpu = c.cpu.to_string();
                w.sample(
                    "node_cpu_scaling_frequency_hertz",
                    &[("cpu", &cpu)],
                    khz.saturating_mul(1000),
                );
            }
        }
    }
    if let Some(p) = &b.pressure {
        type Line = Option<collect::pressure::PsiLine>;
        let some = |x: Option<collect::pressure::Psi>| -> Line { x.and_then(|x| x.some) };
        let full = |x: Option<collect::pressure::Psi>| -> Line { x.and_then(|x| x.full) };
        let series: [(&str, &str, Line); 5] = [
            (
                "node_pressure_cpu_waiting_seconds_total",
                "Total time in seconds that processes have waited for CPU time",
                some(p.cpu),
            ),
            (
                "node_pressure_io_stalled_seconds_total",
                "Total time in seconds no process could make progress due to IO congestion",
                full(p.io),
            ),
            (
                "node_pressure_io_waiting_seconds_total",
                "Total time in seconds that processes have waited due to IO congestion",
                some(p.io),
            ),
            (
                "node_pressure_memory_stalled_seconds_total",
                "Total time in seconds no process could make progress due to memory congestion",
                full(p.memory),
            ),
            (
                "node_pressure_memory_waiting_seconds_total",
                "Total time in seconds that processes have waited for memory",
                some(p.memory),
            ),
        ];
        for (name, help, line) in series {
            if let Some(l) = line {
                w.single(name, help, Counter, l.total_us as f64 / 1e6);
            }
        }
    }
    if m.disk_io.ok && !m.disk_io.rows.is_empty() {
        type Pick = fn(&collect::diskstats::DiskIo) -> f64;
        let series: [(&str, &str, Pick); 3] = [
            (
                "node_disk_io_time_seconds_total",
                "Total seconds spent doing I/Os.",
                |d| d.io_ms as f64 / 1000.0,
            ),
            (
                "node_disk_read_bytes_total",
                "The total number of bytes read successfully.",
                |d| d.read_bytes as f64,
            ),
            (
                "node_disk_written_bytes_total",
                "The total number of bytes written successfully.",
                |d| d.written_bytes as f64,
            ),
        ];
        for (name, help, pick) in series {
            w.family(name, help, Counter);
            for d in &m.disk_io.rows {
                w.sample(name, &[("device", &d.name)], pick(d));
            }
        }
    }
    type NetPick = fn(&collect::net::NetDev) -> u64;
    let net: [(&str, &str, NetPick); 4] = [
        (
            "node_network_receive_drop_total",
            "Network device statistic receive_drop.",
            |n| n.rx_dropped,
        ),
        (
            "node_network_receive_errs_total",
            "Network device statistic receive_errs.",
            |n| n.rx_errors,
        ),
        (
            "node_network_transmit_drop_total",
            "Network device statistic transmit_drop.",
            |n| n.tx_dropped,
        ),
        (
            "node_network_transmit_errs_total",
            "Network device statistic transmit_errs.",
            |n| n.tx_errors,
        ),
    ];
    for (name, help, pick) in net {
        w.family(name, help, Counter);
        for n in &m.nets {
            w.sample(name, &[("device", &n.name)], pick(n));
        }
    }
    if !b.fans.fans.is_empty() {
        w.family(
            "node_hwmon_fan_rpm",
            "Hardware monitor for fan revolutions per minute (input)",
            Gauge,
        );
        for f in &b.fans.fans {
            if let Some(rpm) = f.rpm {
                w.sample(
                    "node_hwmon_fan_rpm",
                    &[("chip", &f.chip), ("sensor", &f.sensor)],
                    rpm,
                );
            }
        }
    }
    let bats = &b.power.batteries;
    if bats.iter().any(|b| b.capacity_pct.is_some()) {
        w.family(
            "node_power_supply_capacity",
            "capacity value of /sys/class/power_supply/<power_supply>.",
            Gauge,
        );
        for bat in bats {
            if let Some(c) = bat.capacity_pct {
                w.sample(
                    "node_power_supply_capacity",
                    &[("power_supply", &bat.name)],
                    c,
                );
            }
        }
    }
    let zones = &b.power.rapl;
    if zones.iter().any(|z| z.energy_uj.is_some()) {
        w.family(
            "node_rapl_package_joules_total",
            "Current Raw energy value in joules",
            Counter,
        );
        for z in zones {
            if let Some(uj) = z.energy_uj {
                let index = z.index.to_string();
                w.sample(
                    "node_rapl_package_joules_total",
                    &[("index", &index), ("path", &z.path)],
                    uj as f64 / 1e6,
                );
            }
        }
    }
    if let Some(t) = b.throttle.sample {
        w.family(
            "sockagent_throttling",
            "1 while the board or CPU is throttled for this reason (when=now), or if it was since boot (when=since_boot); only reasons this machine has a source for.",
            Gauge,
        );
        for (i, reason) in collect::throttle::REASONS.iter().enumerate() {
            let bit = 1u8 << i;
            if t.known & bit == 0 {
                continue;
            }
            for (when, bits) in [("now", t.now), ("since_boot", t.since_boot)] {
                w.sample(
                    "sockagent_throttling",
                    &[("reason", reason), ("when", when)],
                    u64::from(bits & bit != 0),
                );
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    w.single(
        "node_time_seconds",
        "System time in seconds since epoch (1970).",
        Gauge,
        now,
    );
}

/// One series per GPU and reading, labelled `gpu` (its index), `name`
/// and `vendor`; a reading the driver does not give is left out.
fn render_gpus(w: &mut Writer, gpus: Option<&[gpu::Gpu]>) {
    let Some(gpus) = gpus else {
        return;
    };
    type Pick = fn(&gpu::Gpu) -> Option<f64>;
    let series: [(&str, &str, Pick); 4] = [
        (
            "sockagent_gpu_utilization_percent",
            "GPU busy %, 0-100.",
            |g| g.usage.map(f64::from),
        ),
        (
            "sockagent_gpu_memory_total_bytes",
            "GPU memory in total.",
            |g| g.memory_total.map(|v| v as f64),
        ),
        (
            "sockagent_gpu_memory_used_bytes",
            "GPU memory in use (NVIDIA: without driver-reserved memory).",
            |g| g.memory_used.map(|v| v as f64),
        ),
        (
            "sockagent_gpu_temperature_celsius",
            "GPU temperature.",
            |g| g.temp_c.map(f64::from),
        ),
    ];
    let idx: Vec<String> = (0..gpus.len()).map(|i| i.to_string()).collect();
    for (name, help, pick) in series {
        if !gpus.iter().any(|g| pick(g).is_some()) {
            continue;
        }
        w.family(name, help, Kind::Gauge);
        for (g, i) in gpus.iter().zip(&idx) {
            if let Some(v) = pick(g) {
                w.sample(
                    name,
                    &[("gpu", i), ("name", &g.name), ("vendor", g.vendor)],
                    v,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::answers::{Answers, Ttls};
    use crate::collect::{fs::Root, Settings};

    fn scrape(tree: &str, top_n: usize) -> String {
        let root = Root::new(format!(
            "{}/tests/fixtures/{tree}",
            env!("CARGO_MANIFEST_DIR")
        ));
        let c = Collectors::new(
            Settings {
                root,
                ..Settings::default()
            },
            16,
        );
        Answers::new(c, Ttls::default())
            .prometheus(Instant::now(), top_n)
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

    #[test]
    fn h200_vm_tree() {
        let text = scrape("h200-vm", 10);
        let s = check_exposition(&text);
        // values read from the fixture's files
        assert_eq!(value(&s, "node_memory_MemTotal_bytes", ""), "135148564480");
        assert_eq!(value(&s, "node_memory_SwapTotal_bytes", ""), "0");
        assert_eq!(value(&s, "node_boot_time_seconds", ""), "1795665180");
        assert_eq!(value(&s, "node_load1", ""), "0.07");
        assert_eq!(value(&s, "node_load15", ""), "0");
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
        assert_eq!(
            value(
                &s,
                "node_hwmon_temp_celsius",
                "chip=\"platform_coretemp_0\",sensor=\"temp1\""
            ),
            "55"
        );
        assert_eq!(
            value(
                &s,
                "node_hwmon_chip_names",
                "chip=\"platform_coretemp_0\",chip_name=\"coretemp\""
            ),
            "1"
        );
        assert_eq!(
            value(
                &s,
                "node_hwmon_sensor_label",
                "chip=\"platform_coretemp_0\",label=\"Core 0\",sensor=\"temp2\""
            ),
            "1"
        );
        assert_eq!(value(&s, "sockagent_cpu_temperature_celsius", ""), "55");
    }

    #[test]
    fn cgroups_from_fixture_trees_top_n_bounded() {
        let s = check_exposition(&scrape("cgroup-v2", 10));
        let nginx =
            "cgroup=\"/system.slice/nginx.service\",kind=\"service\",name=\"nginx.service\"";
        assert_eq!(
            value(&s, "sockagent_cgroup_cpu_seconds_total", nginx),
            "48.213377"
        );
        assert_eq!(
            value(&s, "sockagent_cgroup_memory_bytes", nginx),
            "25714688"
        );
        let rw = |d: &str| {
            format!("cgroup=\"/system.slice/nginx.service\",direction=\"{d}\",kind=\"service\",name=\"nginx.service\"")
        };
        assert_eq!(
            value(&s, "sockagent_cgroup_io_bytes_total", &rw("read")),
            "12582912"
        );
        assert_eq!(
            value(&s, "sockagent_cgroup_io_bytes_total", &rw("write")),
            "1052672"
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
        let root = Root::new(format!(
            "{}/tests/fixtures/cgroup-v2",
            env!("CARGO_MANIFEST_DIR")
        ));
        let c = Collectors::new(
            Settings {
                root,
                ..Settings::default()
            },
            16,
        );
        let mut a = Answers::new(c, Ttls::default()).with_prom_top_cgroups(1);
        let one = check_exposition(&a.prometheus(Instant::now(), 10).unwrap());
        let top: Vec<_> = one
            .iter()
            .filter(|x| x.0 == "sockagent_cgroup_cpu_seconds_total")
            .collect();
        assert_eq!(top.len(), 1);
        assert!(top[0].1.contains("session-2.scope"), "{top:?}");
        let mut a = a.with_prom_top_cgroups(0);
        let none = a.prometheus(Instant::now(), 10).unwrap();
        assert!(!none.contains("sockagent_cgroup_"));
        // a tree without cgroups: no cgroup families at all
        assert!(!scrape("h200-vm", 10).contains("sockagent_cgroup_"));
    }

    #[test]
    fn board_families_from_the_hand_made_trees() {
        let s = check_exposition(&scrape("rpi4", 0));
        assert_eq!(
            value(&s, "node_cpu_scaling_frequency_hertz", "cpu=\"3\""),
            "1500000000"
        );
        assert_eq!(
            value(
                &s,
                "sockagent_throttling",
                "reason=\"under-voltage\",when=\"now\""
            ),
            "1"
        );
        assert_eq!(
            value(
                &s,
                "sockagent_throttling",
                "reason=\"soft-temperature-limit\",when=\"since_boot\""
            ),
            "0"
        );
        assert!(!s.iter().any(|x| x.1.contains("thermal-throttle")));
        // 3551234 sectors of 512 bytes; io_ticks 60120 ms
        assert_eq!(
            value(&s, "node_disk_read_bytes_total", "device=\"mmcblk0\""),
            "1818231808"
        );
        assert_eq!(
            value(&s, "node_disk_io_time_seconds_total", "device=\"mmcblk0\""),
            "60.12"
        );
        assert!(!s.iter().any(|x| x.1.contains("mmcblk0p")), "no partitions");
        assert_eq!(
            value(&s, "node_network_receive_errs_total", "device=\"eth0\""),
            "3"
        );
        assert_eq!(
            value(&s, "node_network_transmit_drop_total", "device=\"eth0\""),
            "2"
        );
        assert!(!s.iter().any(|x| x.0.starts_with("node_pressure")));

        let s = check_exposition(&scrape("laptop", 0));
        assert_eq!(
            value(
                &s,
                "node_hwmon_fan_rpm",
                "chip=\"platform_thinkpad_hwmon\",sensor=\"fan1\""
            ),
            "2874"
        );
        assert_eq!(
            value(&s, "node_power_supply_capacity", "power_supply=\"BAT0\""),
            "81"
        );
        assert_eq!(
            value(
                &s,
                "node_rapl_package_joules_total",
                "index=\"0\",path=\"/sys/class/powercap/intel-rapl:0\""
            ),
            "240422.366267"
        );
        assert_eq!(
            s.iter()
                .filter(|x| x.0 == "node_rapl_package_joules_total")
                .count(),
            1
        );

        let s = check_exposition(&scrape("server", 0));
        assert_eq!(
            value(&s, "node_pressure_cpu_waiting_seconds_total", ""),
            "123456.789012"
        );
        assert_eq!(
            value(&s, "node_pressure_memory_stalled_seconds_total", ""),
            "12.345678"
        );
        assert_eq!(
            value(&s, "node_pressure_io_stalled_seconds_total", ""),
            "234.56789"
        );
        assert_eq!(
            value(
                &s,
                "sockagent_throttling",
                "reason=\"thermal-throttle\",when=\"since_boot\""
            ),
            "1"
        );
        assert_eq!(
            value(
                &s,
                "sockagent_throttling",
                "reason=\"thermal-throttle\",when=\"now\""
            ),
            "0"
        );
        assert_eq!(
            value(&s, "node_disk_written_bytes_total", "device=\"nvme0n1\""),
            "4487901239808"
        );
        assert!(
            !s.iter().any(|x| x.1.contains("loop0")),
            "an idle loop device"
        );
        assert!(!s.iter().any(|x| x.0 == "node_cpu_scaling_frequency_hertz"));
        assert!(s.iter().any(|x| x.0 == "node_time_seconds"));
    }

    #[test]
    fn meminfo_names_are_node_exporters() {
        assert_eq!(
            meminfo_metric(b"MemTotal", true),
            "node_memory_MemTotal_bytes"
        );
        assert_eq!(
            meminfo_metric(b"Active(anon)", true),
            "node_memory_Active_anon_bytes"
        );
        assert_eq!(
            meminfo_metric(b"HugePages_Total", false),
            "node_memory_HugePages_Total"
        );
        assert_eq!(meminfo_metric(b"We-ird", true), "node_memory_We_ird_bytes");
    }
}
