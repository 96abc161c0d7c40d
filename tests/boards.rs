//! Board facts on hand-made trees (tests/fixtures, see its README): 64 KiB
//! pages, USER_HZ other than 100, counters past 2^32 on 32-bit builds, a
//! Raspberry Pi's CPU temperature, big.LITTLE cores in number order. CI
//! runs this on aarch64 and armv7 builds under qemu too.

mod common;
use common::*;
use sockagent::collect::fs::Root;
use sockagent::collect::processes::ProcScanner;
use sockagent::collect::{cpu, net, process_detail};

#[test]
fn counters_past_32_bits_survive() {
    let root = Root::new(fixture("rpi4-sensors"));
    let mut buf = Vec::new();
    root.read_into("proc/stat", &mut buf).unwrap();
    let mut s = cpu::StatSample::default();
    cpu::parse_stat(&buf, &mut s).unwrap();
    assert_eq!(
        s.all.total,
        5_000_000_000 + 120 + 3_000_000 + 90_000_000 + 4000 + 2500
    );
    assert_eq!(s.cores.len(), 4);
    root.read_into("proc/net/dev", &mut buf).unwrap();
    let mut nets = Vec::new();
    net::parse_net_dev(&buf, &mut nets);
    let eth0 = nets.iter().find(|n| n.name == "eth0").unwrap();
    assert_eq!(
        (eth0.received, eth0.transmitted),
        (6_442_450_944, 4_294_967_297)
    );
}

#[test]
fn big_little_cores_in_number_order() {
    let buf = std::fs::read(format!("{}/proc/stat", fixture("rk3399"))).unwrap();
    let mut now = cpu::StatSample::default();
    cpu::parse_stat(&buf, &mut now).unwrap();
    let nums: Vec<u32> = now.cores.iter().map(|c| c.0).collect();
    assert_eq!(nums, [0, 1, 2, 3, 4, 5]);
    let mut pct = Vec::new();
    cpu::per_core_pct(
        &now,
        &cpu::StatSample {
            cores: nums
                .iter()
                .map(|&n| (n, cpu::CpuTicks::default()))
                .collect(),
            ..Default::default()
        },
        &mut pct,
    );
    // little cores 150/1150 busy, big cores 1000/3000
    for (i, p) in pct.iter().enumerate() {
        let want = if i < 4 {
            150.0 / 1150.0 * 100.0
        } else {
            1000.0 / 3000.0 * 100.0
        };
        assert!((p - want).abs() < 0.01, "cpu{i}: {p} vs {want}");
    }
}

#[test]
fn sixty_four_kib_pages_and_250_hz() {
    let root = Root::new(fixture("rpi4-sensors"));
    let mut s = ProcScanner::new(8, 65536);
    s.scan(&root, 1, 0).unwrap();
    let init = s.rows.iter().find(|r| r.pid == 1).unwrap();
    assert_eq!(init.name, "systemd");
    assert_eq!(init.mem_bytes, 2500 * 65536);
    let clock = process_detail::Clock {
        ticks_per_sec: 250,
        page_size: 65536,
        btime: 1_700_000_000,
    };
    let (d, ticks) = process_detail::read_detail(&root, 1, &clock, false).unwrap();
    assert_eq!(ticks, 250 + 750);
    assert_eq!(
        d.cpu_time_user, 1_000_000,
        "250 ticks at 250 Hz is one second"
    );
    assert_eq!(d.cpu_time_system, 3_000_000);
    assert_eq!(d.start_time, 1_700_000_000);
    assert_eq!(d.command, "/sbin/init splash");
}

#[test]
fn the_agent_serves_a_raspberry_pi_tree() {
    let agent = Agent::start(
        &[],
        &[
            ("SOCKAGENT_ROOT", &fixture("rpi4-sensors")),
            ("SOCKTOP_AGENT_GPU", "0"),
        ],
    );
    let mut ws = agent.ws();
    let m = json(&ask(&mut ws, "get_metrics"));
    assert_eq!(m["cpu_per_core"].as_array().unwrap().len(), 4);
    assert_eq!(m["mem_total"].as_u64().unwrap(), 3_884_344 * 1024);
    assert!(
        (m["cpu_temp_c"].as_f64().unwrap() - 47.238).abs() < 0.001,
        "{m}"
    );
    let eth0 = m["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "eth0")
        .unwrap()
        .clone();
    assert_eq!(eth0["received"].as_u64().unwrap(), 6_442_450_944);
    let (count, rows) = decode_processes(&binary(&ask(&mut ws, "get_processes")));
    assert_eq!(count, 1);
    assert_eq!(rows[0].name, "systemd");
}
