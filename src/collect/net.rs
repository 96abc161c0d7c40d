//! Per-interface counters from `/proc/net/dev` (one read for all): bytes,
//! packets, errors and drops, and the byte rates since the previous sample.

use super::num::{fields, lines, parse_u64};
use super::rate::{Rate, Step};
use crate::families::{Family, Sink, Value};
use serde::Serialize;

/// One interface: the `networks[]` row of the metrics answer (its serde
/// keys are the row's keys) and the counters `/metrics` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetDev {
    pub name: String,
    pub received: u64,
    pub transmitted: u64,
    /// Bytes per second since the previous sample; null on the first.
    #[serde(serialize_with = "per_s")]
    pub rx_bytes_per_s: Rate,
    #[serde(serialize_with = "per_s")]
    pub tx_bytes_per_s: Rate,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    /// Packets, for `/metrics` only (the answer's row has no such key).
    #[serde(skip)]
    pub rx_packets: u64,
    #[serde(skip)]
    pub tx_packets: u64,
}

type Pick = fn(&NetDev) -> u64;

/// node_exporter's byte counters, per interface.
pub const BYTES: [(Family, Pick); 2] = [
    (
        Family::counter(
            "node_network_receive_bytes_total",
            "Network device statistic receive_bytes.",
        ),
        |n| n.received,
    ),
    (
        Family::counter(
            "node_network_transmit_bytes_total",
            "Network device statistic transmit_bytes.",
        ),
        |n| n.transmitted,
    ),
];

/// node_exporter's packet counters, per interface (`NodeNetworkReceiveErrs`
/// divides the receive errors by them).
pub const PACKETS: [(Family, Pick); 2] = [
    (
        Family::counter(
            "node_network_receive_packets_total",
            "Network device statistic receive_packets.",
        ),
        |n| n.rx_packets,
    ),
    (
        Family::counter(
            "node_network_transmit_packets_total",
            "Network device statistic transmit_packets.",
        ),
        |n| n.tx_packets,
    ),
];

/// node_exporter's drop and error counters, per interface.
pub const ERRORS: [(Family, Pick); 4] = [
    (
        Family::counter(
            "node_network_receive_drop_total",
            "Network device statistic receive_drop.",
        ),
        |n| n.rx_dropped,
    ),
    (
        Family::counter(
            "node_network_receive_errs_total",
            "Network device statistic receive_errs.",
        ),
        |n| n.rx_errors,
    ),
    (
        Family::counter(
            "node_network_transmit_drop_total",
            "Network device statistic transmit_drop.",
        ),
        |n| n.tx_dropped,
    ),
    (
        Family::counter(
            "node_network_transmit_errs_total",
            "Network device statistic transmit_errs.",
        ),
        |n| n.tx_errors,
    ),
];

/// `families` over every interface, labelled `device`.
pub fn describe(devs: &[NetDev], families: &[(Family, Pick)], out: &mut dyn Sink) {
    for (family, pick) in families {
        family.open(out);
        for n in devs {
            out.sample(&[("device", &n.name)], Value::U(pick(n)));
        }
    }
}

/// A rate's wire form: its per-second value, or null.
pub(crate) fn per_s<S: serde::Serializer>(r: &Rate, s: S) -> Result<S::Ok, S::Error> {
    r.per_s.serialize(s)
}

/// Parses into `out`, reusing its rows (and their name buffers); rates
/// start over (no previous sample).
pub fn parse_net_dev(buf: &[u8], out: &mut Vec<NetDev>) {
    parse_net_dev_step(buf, out, Step::Start);
}

/// Parses into `out`, reusing its rows; a row that holds the same
/// interface as before gets its rates by `step` (see `rate`), a new one
/// a null rate.
pub fn parse_net_dev_step(buf: &[u8], out: &mut Vec<NetDev>, step: Step) {
    let mut n = 0;
    for line in lines(buf) {
        // "  eth0: 123 4 ..." ; the two header lines have no ':' before data.
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, rest) = line.split_at(colon);
        let name = name.trim_ascii();
        // rx: bytes packets errs drop fifo frame compressed multicast,
        // tx: bytes packets errs drop fifo colls carrier compressed
        let mut v = [0u64; 12];
        let mut got = 0;
        for (slot, f) in v.iter_mut().zip(fields(rest.get(1..).unwrap_or_default())) {
            let Some(x) = parse_u64(f) else { break };
            *slot = x;
            got += 1;
        }
        // bytes only (an old or hand-made file) is enough for a row
        if got < 9 || name.is_empty() {
            continue;
        }
        let [rx, rx_pkts, rx_errs, rx_drop, _, _, _, _, tx, tx_pkts, tx_errs, tx_drop] = v;
        if out.len() <= n {
            out.push(NetDev::default());
        }
        if let Some(row) = out.get_mut(n) {
            let same = row.name.as_bytes() == name;
            if !same {
                row.name.clear();
                row.name.push_str(&String::from_utf8_lossy(name));
            }
            row.received = rx;
            row.transmitted = tx;
            row.rx_bytes_per_s.apply(step, rx, !same);
            row.tx_bytes_per_s.apply(step, tx, !same);
            row.rx_errors = rx_errs;
            row.tx_errors = tx_errs;
            row.rx_dropped = rx_drop;
            row.tx_dropped = tx_drop;
            row.rx_packets = rx_pkts;
            row.tx_packets = tx_pkts;
        }
        n += 1;
    }
    out.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fs::Root;

    /// `/proc/net/dev` of a fixture tree, parsed.
    fn net_dev_of(tree: &str) -> Vec<NetDev> {
        let buf = std::fs::read(Root::fixture(tree).path("proc/net/dev")).unwrap();
        let mut v = Vec::new();
        parse_net_dev(&buf, &mut v);
        v
    }

    #[test]
    fn fixture_h200_vm() {
        let v = net_dev_of("h200-vm");
        let names: Vec<&str> = v.iter().map(|d| d.name.as_str()).collect();
        assert!(
            names.contains(&"eth0") && names.contains(&"lo"),
            "{names:?}"
        );
        assert!(v
            .iter()
            .all(|d| d.received > 0 || d.name.starts_with("ifb")));
    }

    #[test]
    fn fixture_prometheus_procfs() {
        let v = net_dev_of("prometheus-procfs");
        let eth0 = v.iter().find(|d| d.name == "eth0").unwrap();
        assert_eq!(eth0.received, 874354587);
        assert_eq!(eth0.transmitted, 563352563);
        assert_eq!(eth0.rx_bytes_per_s.per_s, None);
    }

    #[test]
    fn errors_and_drops() {
        let mut v = Vec::new();
        parse_net_dev(b" eth0: 100 5 1 2 0 0 0 0 200 6 3 4 0 0 0 0\n", &mut v);
        let d = &v[0];
        assert_eq!((d.received, d.transmitted), (100, 200));
        assert_eq!((d.rx_errors, d.rx_dropped), (1, 2));
        assert_eq!((d.tx_errors, d.tx_dropped), (3, 4));
        assert_eq!((d.rx_packets, d.tx_packets), (5, 6));
        // the answer's row keeps its keys: packets are /metrics's
        let json = serde_json::to_value(d).unwrap();
        assert!(json.get("rx_packets").is_none(), "{json}");
    }

    #[test]
    fn rates_over_two_buffers() {
        let mut v = Vec::new();
        let a =
            b" eth0: 1000 0 0 0 0 0 0 0 500 0 0 0 0 0 0 0\n lo: 7 0 0 0 0 0 0 0 7 0 0 0 0 0 0 0\n";
        let b =
            b" eth0: 3000 0 0 0 0 0 0 0 1500 0 0 0 0 0 0 0\n lo: 7 0 0 0 0 0 0 0 7 0 0 0 0 0 0 0\n";
        parse_net_dev_step(a, &mut v, Step::Start);
        assert_eq!(v[0].rx_bytes_per_s.per_s, None);
        parse_net_dev_step(b, &mut v, Step::Due(0.5));
        assert_eq!(v[0].rx_bytes_per_s.per_s, Some(4000.0));
        assert_eq!(v[0].tx_bytes_per_s.per_s, Some(2000.0));
        assert_eq!(v[1].rx_bytes_per_s.per_s, Some(0.0));
        let json = serde_json::to_value(&v[0]).unwrap();
        assert_eq!(json["rx_bytes_per_s"], 4000.0);
        assert_eq!(json["received"], 3000);
        assert_eq!(json["rx_errors"], 0);
        // counters reset (the interface was re-created): null, not huge
        parse_net_dev_step(a, &mut v, Step::Due(1.0));
        assert_eq!(v[0].rx_bytes_per_s.per_s, None);
        // an interface in another row: no rate from someone else's base
        let c = b" lo: 9 0 0 0 0 0 0 0 9 0 0 0 0 0 0 0\n";
        parse_net_dev_step(c, &mut v, Step::Due(1.0));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].rx_bytes_per_s.per_s, None);
    }

    #[test]
    fn reuses_rows_and_shrinks() {
        let mut v = Vec::new();
        parse_net_dev(
            b"h\nh\n a: 1 0 0 0 0 0 0 0 2 0\n b: 3 0 0 0 0 0 0 0 4\n",
            &mut v,
        );
        assert_eq!(v.len(), 2);
        parse_net_dev(b" c: 5 0 0 0 0 0 0 0 6\n", &mut v);
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].name.as_str(), v[0].received, v[0].transmitted),
            ("c", 5, 6)
        );
        parse_net_dev(b" bad: x\n", &mut v);
        assert!(v.is_empty());
    }
}
