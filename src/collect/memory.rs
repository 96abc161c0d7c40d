//! Memory and swap from `/proc/meminfo`.

use super::num::{fields, lines, parse_u64};

/// Bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: u64,
    pub mem_used: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

/// `mem_used = MemTotal - MemAvailable`; kernels older than 3.14 have no
/// MemAvailable, then MemFree + Buffers + Cached stands in for it.
pub fn parse_meminfo(buf: &[u8]) -> Option<MemInfo> {
    let (mut total, mut avail, mut free, mut buffers, mut cached) = (None, None, 0, 0, 0);
    let (mut swap_total, mut swap_free) = (0, 0);
    for line in lines(buf) {
        let mut f = fields(line);
        let (Some(key), Some(val)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(v) = parse_u64(val) else { continue };
        // Values are in kB unless a unit is absent (HugePages_* counts).
        let bytes = if f.next() == Some(b"kB") {
            v.saturating_mul(1024)
        } else {
            v
        };
        match key {
            b"MemTotal:" => total = Some(bytes),
            b"MemAvailable:" => avail = Some(bytes),
            b"MemFree:" => free = bytes,
            b"Buffers:" => buffers = bytes,
            b"Cached:" => cached = bytes,
            b"SwapTotal:" => swap_total = bytes,
            b"SwapFree:" => swap_free = bytes,
            _ => {}
        }
    }
    let total = total?;
    let avail = avail.unwrap_or_else(|| free + buffers + cached);
    Some(MemInfo {
        mem_total: total,
        mem_used: total.saturating_sub(avail),
        swap_total,
        swap_used: swap_total.saturating_sub(swap_free),
    })
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

    #[test]
    fn available_and_fallback() {
        let m = parse_meminfo(
            b"MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\nHugePages_Total: 0\n",
        )
        .unwrap();
        assert_eq!(m.mem_total, 1_024_000);
        assert_eq!(m.mem_used, 400 * 1024);
        assert_eq!(m.swap_used, 30 * 1024);
        let old =
            parse_meminfo(b"MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n")
                .unwrap();
        assert_eq!(old.mem_used, 600 * 1024);
        assert!(parse_meminfo(b"garbage").is_none());
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
    }

    #[test]
    fn fixture_h200_vm() {
        let buf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h200-vm/proc/meminfo"
        ))
        .unwrap();
        let m = parse_meminfo(&buf).unwrap();
        // The reference agent reported mem_total 135148564480 on that machine.
        assert_eq!(m.mem_total, 135_148_564_480);
        assert_eq!(m.swap_total, 0);
    }
}
