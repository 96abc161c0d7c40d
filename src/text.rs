//! Text helpers below every layer: the collectors and the wire both cut
//! strings they did not write (journal lines, quoted requests), and both
//! write times as RFC 3339 (journal entries, alerts).

/// `s` cut to at most `max` bytes on a char boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// `t` as RFC 3339 in UTC, `frac` written as `digits` fraction digits:
/// `2026-01-02T03:04:05.678Z` (the journal's microseconds, the alerts'
/// milliseconds).
pub fn write_rfc3339(
    out: &mut impl std::fmt::Write,
    t: time::OffsetDateTime,
    frac: u64,
    digits: usize,
) -> std::fmt::Result {
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac:0digits$}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_with_its_fraction() {
        let t = time::OffsetDateTime::from_unix_timestamp(951_782_400).unwrap();
        let mut s = String::new();
        super::write_rfc3339(&mut s, t, 7, 3).unwrap();
        assert_eq!(s, "2000-02-29T00:00:00.007Z");
    }
}
