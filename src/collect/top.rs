//! The top `n` rows by an order: what `/metrics` lists of the processes
//! and cgroups (their heaviest by CPU), chosen in O(rows) then sorted.

use std::cmp::Ordering;

/// The first `n` of `rows` in the order `cmp`, sorted by it.
pub fn top_by<'a, T>(
    rows: &'a [T],
    n: usize,
    cmp: impl Fn(&&'a T, &&'a T) -> Ordering,
) -> Vec<&'a T> {
    let n = n.min(rows.len());
    let mut top: Vec<&T> = rows.iter().collect();
    if n > 0 && n < top.len() {
        top.select_nth_unstable_by(n - 1, &cmp);
    }
    top.truncate(n);
    top.sort_unstable_by(&cmp);
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_and_sorts_the_first_n() {
        let rows = [5, 1, 9, 3, 7];
        assert_eq!(top_by(&rows, 3, |a, b| b.cmp(a)), [&9, &7, &5]);
        assert_eq!(top_by(&rows, 9, |a, b| a.cmp(b)).len(), 5);
        assert!(top_by(&rows, 0, |a, b| a.cmp(b)).is_empty());
    }
}
