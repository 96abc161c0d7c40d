//! Cumulative bytes per interface from `/proc/net/dev` (one read for all).

use super::num::{fields, lines, parse_u64};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetDev {
    pub name: String,
    pub received: u64,
    pub transmitted: u64,
}

/// Parses into `out`, reusing its rows (and their name buffers).
pub fn parse_net_dev(buf: &[u8], out: &mut Vec<NetDev>) {
    let mut n = 0;
    for line in lines(buf) {
        // "  eth0: 123 4 ..." ; the two header lines have no ':' before data.
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, rest) = line.split_at(colon);
        let name = name.trim_ascii();
        let mut f = fields(rest.get(1..).unwrap_or_default());
        let rx = f.next().and_then(parse_u64);
        let tx = f.nth(7).and_then(parse_u64);
        let (Some(rx), Some(tx)) = (rx, tx) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if out.len() <= n {
            out.push(NetDev::default());
        }
        if let Some(row) = out.get_mut(n) {
            row.name.clear();
            row.name.push_str(&String::from_utf8_lossy(name));
            row.received = rx;
            row.transmitted = tx;
        }
        n += 1;
    }
    out.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_h200_vm() {
        let buf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h200-vm/proc/net/dev"
        ))
        .unwrap();
        let mut v = Vec::new();
        parse_net_dev(&buf, &mut v);
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
        let buf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/prometheus-procfs/proc/net/dev"
        ))
        .unwrap();
        let mut v = Vec::new();
        parse_net_dev(&buf, &mut v);
        let eth0 = v.iter().find(|d| d.name == "eth0").unwrap();
        assert_eq!(eth0.received, 874354587);
        assert_eq!(eth0.transmitted, 563352563);
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
        assert_eq!(
            v,
            vec![NetDev {
                name: "c".into(),
                received: 5,
                transmitted: 6
            }]
        );
        parse_net_dev(b" bad: x\n", &mut v);
        assert!(v.is_empty());
    }
}
