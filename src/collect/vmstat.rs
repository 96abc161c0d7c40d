//! `/proc/vmstat`: the one counter the alert rules read, `oom_kill` (the
//! processes the kernel's OOM killer killed since boot; Linux 4.13 and
//! later).

use super::num::parse_u64;

/// The `oom_kill` line's count; `None` when the kernel has none.
pub fn parse_oom_kill(buf: &[u8]) -> Option<u64> {
    buf.split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"oom_kill "))
        .and_then(|v| parse_u64(v.trim_ascii()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill() {
        let v = b"nr_free_pages 12345\noom_kill_other 9\noom_kill 3\nnuma_hit 1\n";
        assert_eq!(parse_oom_kill(v), Some(3));
        assert_eq!(parse_oom_kill(b"nr_free_pages 1\n"), None, "before 4.13");
        assert_eq!(parse_oom_kill(b"oom_kill x\n"), None);
        assert_eq!(
            parse_oom_kill(b"oom_kill 18446744073709551615"),
            Some(u64::MAX)
        );
    }
}
