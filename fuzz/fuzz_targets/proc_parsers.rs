//! Every /proc parser on the same arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::collect::{
    board, cgroups, cpu, cpufreq, disks, diskstats, memory, net, power, pressure, process_detail,
    processes, rate, throttle,
};

fuzz_target!(|data: &[u8]| {
    let mut s = cpu::StatSample::default();
    if cpu::parse_stat(data, &mut s).is_ok() {
        let mut out = Vec::new();
        cpu::per_core_pct(&s, &cpu::StatSample::default(), &mut out);
        assert!(out.iter().all(|p| (0.0..=100.0).contains(p)));
        let pct = s.all.busy_pct_since(&cpu::CpuTicks::default());
        assert!((0.0..=100.0).contains(&pct));
    }
    let _ = memory::parse_meminfo(data, &mut Vec::new());
    let mut nets = Vec::new();
    net::parse_net_dev(data, &mut nets);
    // the same bytes twice, a window apart: no rate is negative or NaN
    net::parse_net_dev_step(data, &mut nets, rate::Step::Due(0.5));
    for n in &nets {
        assert!(n.rx_bytes_per_s.per_s.is_none_or(|r| r >= 0.0));
    }
    let mut io = Vec::new();
    diskstats::parse_diskstats(data, |_| true, &mut io, rate::Step::Start);
    diskstats::parse_diskstats(data, |_| true, &mut io, rate::Step::Due(1.0));
    for d in &io {
        assert!(d.busy_pct.is_none_or(|b| (0.0..=100.0).contains(&b)));
    }
    let _ = pressure::parse_pressure(data);
    let _ = board::parse_uptime(data);
    let _ = cpufreq::parse_khz(data);
    let _ = power::parse_int(data);
    if let Some(v) = throttle::parse_throttled(data) {
        let (now, since) = throttle::firmware_bits(v);
        assert_eq!(now & !since, 0);
    }
    let mounts = disks::parse_mountinfo(data);
    let rows = disks::build_rows(
        &mounts,
        |m| disks::DevInfo { kernel_name: m.source.clone(), parent: disks::parent_from_name(&m.source) },
        |_| Some((100, 50)),
        |_| None,
    );
    assert!(rows.len() <= mounts.len() * 2);
    if let Some(st) = processes::parse_pid_stat(data) {
        assert!(st.comm.len() < data.len());
    }
    let _ = process_detail::parse_io(data);
    let _ = process_detail::parse_cmdline(data);
    // cgroup files, and a cgroup path from the same bytes
    let _ = cgroups::parse_cpu_stat(data);
    let _ = cgroups::parse_single(data);
    let _ = cgroups::parse_memory_max(data);
    let _ = cgroups::parse_memory_limit_v1(data);
    let _ = cgroups::parse_io_stat(data);
    let _ = cgroups::parse_blkio_service_bytes(data);
    if let Ok(path) = std::str::from_utf8(data) {
        let (_, name) = cgroups::classify(path);
        assert!(name.len() <= path.len());
    }
});
