//! Memory and swap from `/proc/meminfo`.

use super::num::{fields, lines, parse_u64};
use crate::families::{valid_name, Kind, Sink, Value};

/// Bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_used: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

/// One `Key: value [kB]` line of `/proc/meminfo`, kept for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemField {
    /// The key without its colon (`Active(anon)`).
    pub key: String,
    /// Bytes for kB lines, else the bare count.
    pub value: u64,
    /// Whether the line was in kB.
    pub kb: bool,
}

/// Parses `/proc/meminfo` in one pass: the answer's four figures, and
/// every line into `fields` (rows reused in place, so a steady file
/// allocates nothing). `mem_used = MemTotal - MemAvailable`; kernels older
/// than 3.14 have no MemAvailable, then MemFree + Buffers + Cached stands
/// in for it. `None` without a MemTotal line.
pub fn parse_meminfo(buf: &[u8], fields: &mut Vec<MemField>) -> Option<MemInfo> {
    let (mut total, mut avail, mut free, mut buffers, mut cached) = (None, None, 0, 0, 0);
    let (mut swap_total, mut swap_free) = (0, 0);
    let mut n = 0;
    for (key, bytes, kb) in meminfo_fields(buf) {
        match key {
            b"MemTotal" => total = Some(bytes),
            b"MemAvailable" => avail = Some(bytes),
            b"MemFree" => free = bytes,
            b"Buffers" => buffers = bytes,
            b"Cached" => cached = bytes,
            b"SwapTotal" => swap_total = bytes,
            b"SwapFree" => swap_free = bytes,
            _ => {}
        }
        if fields.len() <= n {
            fields.push(MemField::default());
        }
        if let Some(f) = fields.get_mut(n) {
            if f.key.as_bytes() != key {
                f.key.clear();
                f.key.push_str(&String::from_utf8_lossy(key));
            }
            f.value = bytes;
            f.kb = kb;
        }
        n += 1;
    }
    fields.truncate(n);
    let total = total?;
    let avail = avail.unwrap_or_else(|| free + buffers + cached);
    Some(MemInfo {
        mem_total: total,
        mem_used: total.saturating_sub(avail),
        swap_total,
        swap_used: swap_total.saturating_sub(swap_free),
    })
}

/// node_exporter's name for a meminfo key: `Active(anon)` → `Active_anon`,
/// any other character a metric name cannot hold → `_`.
pub fn metric_name(key: &[u8], kb: bool) -> String {
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

/// Every meminfo line as node_exporter's `node_memory_*` gauge (a name
/// twice, a kernel oddity, would be a duplicate family: the first stays).
pub fn describe_fields(fields: &[MemField], out: &mut dyn Sink) {
    let mut seen: Vec<String> = Vec::new();
    for f in fields {
        let name = metric_name(f.key.as_bytes(), f.kb);
        if !valid_name(&name) || seen.contains(&name) {
            continue;
        }
        let help = format!(
            "Memory information field {}.",
            name.trim_start_matches("node_memory_")
        );
        out.family(&name, &help, Kind::Gauge);
        out.sample(&[], Value::U(f.value));
        seen.push(name);
    }
}

/// Every `Key: value [kB]` line: the key without its colon, the value in
/// bytes for kB lines (else the bare count), and whether it was in kB.
pub fn meminfo_fields(buf: &[u8]) -> impl Iterator<Item = (&[u8], u64, bool)> {
    lines(buf).filter_map(|line| {
        let mut f = fields(line);
        let key = f.next()?.strip_suffix(b":")?;
        let v = parse_u64(f.next()?)?;
        let kb = f.next() == Some(b"kB");
        Some((key, if kb { v.saturating_mul(1024) } else { v }, kb))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fs::Root;

    #[test]
    fn available_and_fallback() {
        let mut f = Vec::new();
        let m = parse_meminfo(
            b"MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\nHugePages_Total: 0\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(m.mem_total, 1_024_000);
        assert_eq!(m.mem_used, 400 * 1024);
        assert_eq!(m.swap_used, 30 * 1024);
        let old = parse_meminfo(
            b"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n",
            &mut f,
        )
        .unwrap();
        assert_eq!(old.mem_used, 600 * 1024);
        assert!(parse_meminfo(b"garbage", &mut f).is_none());
    }

    #[test]
    fn every_field() {
        let b = b"MemTotal: 1000 kB\nActive(anon): 5 kB\nHugePages_Total: 3\nbad line\n";
        let v: Vec<(&[u8], u64, bool)> = meminfo_fields(b).collect();
        assert_eq!(
            v,
            vec![
                (&b"MemTotal"[..], 1_024_000, true),
                (&b"Active(anon)"[..], 5120, true),
                (&b"HugePages_Total"[..], 3, false),
            ]
        );
        // the kept rows: the same, reused in place on the next read
        let mut rows = Vec::new();
        parse_meminfo(b, &mut rows).unwrap();
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["MemTotal", "Active(anon)", "HugePages_Total"]);
        assert_eq!((rows[2].value, rows[2].kb), (3, false));
        let cap = rows[0].key.capacity();
        parse_meminfo(b"MemTotal: 2 kB\n", &mut rows).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].value, rows[0].key.capacity()), (2048, cap));
    }

    #[test]
    fn fixture_h200_vm() {
        let buf = std::fs::read(Root::fixture("h200-vm").path("proc/meminfo")).unwrap();
        let m = parse_meminfo(&buf, &mut Vec::new()).unwrap();
        // The reference agent reported mem_total 135148564480 on that machine.
        assert_eq!(m.mem_total, 135_148_564_480);
        assert_eq!(m.swap_total, 0);
    }

    #[test]
    fn meminfo_names_are_node_exporters() {
        assert_eq!(metric_name(b"MemTotal", true), "node_memory_MemTotal_bytes");
        assert_eq!(
            metric_name(b"Active(anon)", true),
            "node_memory_Active_anon_bytes"
        );
        assert_eq!(
            metric_name(b"HugePages_Total", false),
            "node_memory_HugePages_Total"
        );
        assert_eq!(metric_name(b"We-ird", true), "node_memory_We_ird_bytes");
    }
}
