//! Text helpers below every layer: the collectors and the wire both cut
//! strings they did not write (journal lines, quoted requests).

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
