//! sysfs values, journalctl output lines, and the certificate DER walk.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::collect::{disks, journal, sensors};
use sockagent::server::tls;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = sensors::parse_millideg(&s);
    let _ = disks::parent_from_name(&s);
    let r = journal::build_response(1, data, data, true);
    assert!(r.entries.iter().all(|e| e.timestamp.is_ascii()));
    assert!(serde_json_ok(&r.to_json()));
    let _ = tls::not_after(data);
});

fn serde_json_ok(s: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(s).is_ok()
}
