//! The cgroup files' pure parsers, and what a cgroup is from its path.

use crate::collect::num::{fields, lines, parse_u64, parse_u64_trimmed};

/// What a cgroup is, from its directory name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupKind {
    Service,
    Container,
    Slice,
    Scope,
    #[default]
    Other,
}

impl CgroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupKind::Service => "service",
            CgroupKind::Container => "container",
            CgroupKind::Slice => "slice",
            CgroupKind::Scope => "scope",
            CgroupKind::Other => "other",
        }
    }
}

/// Container runtimes' scope names: `<prefix><64 hex>.scope`.
const CONTAINER_PREFIXES: [&str; 4] = ["docker-", "libpod-", "cri-containerd-", "crio-"];

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The kind and display name of the cgroup at `path` ("system.slice/x",
/// with or without a leading `/`): a container's short id (the first 12
/// hex of a 64-hex directory name, bare as Docker's cgroupfs driver makes
/// it, or as `docker-`/`libpod-`/`cri-containerd-`/`crio-<64hex>.scope`),
/// else the last path element (the unit name for systemd's cgroups).
pub fn classify(path: &str) -> (CgroupKind, &str) {
    let last = path.rsplit('/').next().unwrap_or(path);
    let id = last.strip_suffix(".scope").and_then(|s| {
        CONTAINER_PREFIXES
            .iter()
            .find_map(|p| s.strip_prefix(p))
            .filter(|id| is_hex64(id))
    });
    if let Some(id) = id.or(Some(last).filter(|l| is_hex64(l))) {
        return (CgroupKind::Container, id.get(..12).unwrap_or(id));
    }
    let kind = if last.ends_with(".service") {
        CgroupKind::Service
    } else if last.ends_with(".slice") {
        CgroupKind::Slice
    } else if last.ends_with(".scope") {
        CgroupKind::Scope
    } else {
        CgroupKind::Other
    };
    (kind, last)
}

/// `cpu.stat` (v2): `usage_usec`, in nanoseconds.
pub fn parse_cpu_stat(buf: &[u8]) -> Option<u64> {
    lines(buf).find_map(|l| {
        let mut f = fields(l);
        (f.next()? == b"usage_usec")
            .then(|| f.next().and_then(parse_u64))?
            .map(|us| us.saturating_mul(1000))
    })
}

/// `memory.max` (v2): `max` is no limit (`None`).
pub fn parse_memory_max(buf: &[u8]) -> Option<u64> {
    match buf.trim_ascii() {
        b"max" => None,
        v => parse_u64(v),
    }
}

/// v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages,
/// 9223372036854771712 with 4 KiB pages): anything from 2^62 up.
pub fn parse_memory_limit_v1(buf: &[u8]) -> Option<u64> {
    parse_u64_trimmed(buf).filter(|&v| v < 1 << 62)
}

/// `io.stat` (v2): `MAJ:MIN rbytes=N wbytes=N rios=…` per device → the
/// bytes read and written, summed over devices. `None` only for text
/// that is not io.stat at all; an empty file (no I/O yet) is `(0, 0)`.
pub fn parse_io_stat(buf: &[u8]) -> Option<(u64, u64)> {
    let (mut r, mut w) = (0u64, 0u64);
    for line in lines(buf) {
        let mut f = fields(line);
        if !f.next()?.contains(&b':') {
            return None;
        }
        for kv in f {
            if let Some(v) = kv.strip_prefix(b"rbytes=") {
                r = r.saturating_add(parse_u64(v)?);
            } else if let Some(v) = kv.strip_prefix(b"wbytes=") {
                w = w.saturating_add(parse_u64(v)?);
            }
        }
    }
    Some((r, w))
}

/// `blkio.throttle.io_service_bytes` (v1): `MAJ:MIN Read N`, `… Write N`
/// per device (its `Total` lines are not summed again) → bytes read and
/// written.
pub fn parse_blkio_service_bytes(buf: &[u8]) -> Option<(u64, u64)> {
    let (mut r, mut w) = (0u64, 0u64);
    for line in lines(buf) {
        let mut f = fields(line);
        let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue; // "Total N", the sum over devices
        };
        if !dev.contains(&b':') {
            return None;
        }
        match op {
            b"Read" => r = r.saturating_add(parse_u64(v)?),
            b"Write" => w = w.saturating_add(parse_u64(v)?),
            _ => {}
        }
    }
    Some((r, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1be0d4a7f6c5b8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4";

    #[test]
    fn kinds_and_names() {
        let c = |p: &str| {
            let (k, n) = classify(p);
            (k.as_str(), n.to_string())
        };
        assert_eq!(
            c("system.slice/nginx.service"),
            ("service", "nginx.service".into())
        );
        assert_eq!(c("/user.slice"), ("slice", "user.slice".into()));
        assert_eq!(
            c("user.slice/user-1000.slice/session-2.scope"),
            ("scope", "session-2.scope".into())
        );
        for p in [
            format!("system.slice/docker-{ID}.scope"),
            format!("machine.slice/libpod-{ID}.scope"),
            format!("kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope"),
            format!("docker/{ID}"),
        ] {
            assert_eq!(c(&p), ("container", "3f2a9c1be0d4".into()), "{p}");
        }
        // podman's monitor, an id too short, an upper-case scope suffix: not containers
        assert_eq!(
            c(&format!("machine.slice/libpod-conmon-{ID}.scope")).0,
            "scope"
        );
        assert_eq!(c("docker/3f2a9c1be0d4").0, "other");
        assert_eq!(c("process_api/c0f134e0e49da27af0aa9589b227ae77").0, "other");
        assert_eq!(c("init.scope"), ("scope", "init.scope".into()));
        assert_eq!(c("-.mount"), ("other", "-.mount".into()));
    }

    #[test]
    fn cpu_stat_usage_in_ns() {
        let b = b"usage_usec 2506547\nuser_usec 1818012\nsystem_usec 688535\nnr_periods 0\n";
        assert_eq!(parse_cpu_stat(b), Some(2_506_547_000));
        assert_eq!(parse_cpu_stat(b"user_usec 5\n"), None);
        assert_eq!(parse_cpu_stat(b"usage_usec x\n"), None);
        assert_eq!(parse_cpu_stat(b""), None);
        // saturates instead of wrapping
        assert_eq!(
            parse_cpu_stat(b"usage_usec 18446744073709551615\n"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_max(b"max\n"), None);
        assert_eq!(parse_memory_max(b"536870912\n"), Some(536_870_912));
        assert_eq!(parse_memory_max(b"garbage"), None);
        assert_eq!(parse_memory_limit_v1(b"9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit_v1(b"9223372036854710272\n"), None);
        assert_eq!(parse_memory_limit_v1(b"1073741824\n"), Some(1_073_741_824));
        assert_eq!(parse_u64_trimmed(b"  123\n"), Some(123));
        assert_eq!(parse_u64_trimmed(b"-1\n"), None);
    }

    #[test]
    fn io_stat_sums_devices() {
        let b = b"8:0 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n\
                  259:0 rbytes=30 wbytes=40 rios=3 wios=4 dbytes=0 dios=0\n";
        assert_eq!(parse_io_stat(b), Some((1030, 2040)));
        assert_eq!(parse_io_stat(b""), Some((0, 0)));
        assert_eq!(parse_io_stat(b"rbytes=1\n"), None);
        assert_eq!(parse_io_stat(b"8:0 rbytes=x\n"), None);
    }

    #[test]
    fn blkio_sums_read_and_write_not_total() {
        let b = b"8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n\
                  8:0 Discard 0\n8:0 Total 12288\n8:16 Read 100\n8:16 Write 0\n\
                  8:16 Total 100\nTotal 12388\n";
        assert_eq!(parse_blkio_service_bytes(b), Some((4196, 8192)));
        assert_eq!(parse_blkio_service_bytes(b"Total 0\n"), Some((0, 0)));
        assert_eq!(parse_blkio_service_bytes(b"x Read 1\n"), None);
        assert_eq!(parse_blkio_service_bytes(b"8:0 Read -1\n"), None);
    }
}
