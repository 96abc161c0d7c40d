//! Byte-level helpers shared by the parsers.

/// Parses an unsigned decimal; `None` on anything else (empty, sign, overflow).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// A file holding one number and a newline (`memory.current`,
/// `scaling_cur_freq`, a hwmon input).
pub fn parse_u64_trimmed(s: &[u8]) -> Option<u64> {
    parse_u64(s.trim_ascii())
}

/// Parses an unsigned fixed-point decimal such as `0.52` (`/proc/loadavg`):
/// the digits as an integer over a power of ten, one correctly rounded
/// division, so the nearest `f64` as `str::parse` gives, without its code
/// and tables in the binary. `None` for anything else, or over 15 digits.
pub fn parse_decimal(s: &[u8]) -> Option<f64> {
    let mut parts = s.splitn(2, |&b| b == b'.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next().unwrap_or_default();
    if int.is_empty() || int.len() + frac.len() > 15 {
        return None;
    }
    let scale = 10u64.pow(frac.len() as u32); // at most 10^15: no overflow
    let f = if frac.is_empty() { 0 } else { parse_u64(frac)? };
    let v = parse_u64(int)? * scale + f;
    Some(v as f64 / scale as f64)
}

/// Parses a possibly negative decimal (some `/proc/PID/stat` fields are).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    match s.split_first() {
        Some((b'-', rest)) => parse_u64(rest)
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        _ => parse_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// Splits on ASCII whitespace, skipping empty pieces.
pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

/// Lines of a buffer, without the newline, empty ones skipped. The
/// newlines are found with `memchr` (serde_json's, already built), not byte
/// by byte: `/proc/stat`'s `intr` line alone is ~900 bytes of which the
/// parsers read one number (`benches/README.md`, "fifth pass").
pub fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let (line, tail) = rest.split_at(end);
        rest = tail.get(1..).unwrap_or_default();
        if !line.is_empty() {
            return Some(line);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string of up to 7 bytes over `a`, ` ` and `\n` (3 280 of
    /// them), and one `/proc/stat`-like buffer.
    #[test]
    fn lines_as_split_gives_them() {
        let mut bufs: Vec<Vec<u8>> = vec![b"cpu 1 2\nintr 5 0 0 0\n\nctxt 9".to_vec()];
        for len in 0..=7u32 {
            for n in 0..3usize.pow(len) {
                let digits = (0..len).map(|i| n / 3usize.pow(i) % 3);
                bufs.push(digits.map(|d| [b'a', b' ', b'\n'][d]).collect());
            }
        }
        for buf in &bufs {
            let want: Vec<&[u8]> = buf
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            assert_eq!(lines(buf).collect::<Vec<_>>(), want, "{buf:?}");
        }
    }

    #[test]
    fn decimals_parse_as_str_parse_does() {
        for s in [
            "0",
            "0.52",
            "1.50",
            "2.00",
            "12345.67",
            "0.1",
            "0.3",
            "99.99",
            "7",
            "1.",
            "3.14159265358979",
        ] {
            assert_eq!(parse_decimal(s.as_bytes()), s.parse::<f64>().ok(), "{s}");
        }
        for n in 0..20_000u32 {
            let s = format!("{}.{:02}", n / 100, n % 100);
            assert_eq!(parse_decimal(s.as_bytes()), s.parse::<f64>().ok(), "{s}");
        }
        for bad in ["", ".5", "-1", "1.2.3", "x", "1e3", "1234567890123456"] {
            assert_eq!(parse_decimal(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
        assert_eq!(parse_i64(b"-5"), Some(-5));
        assert_eq!(parse_i64(b"-"), None);
    }
}
