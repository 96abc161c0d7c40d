//! What a push reads: every `/metrics` family, fresh, and the history
//! ring. `Source` is the pusher's one view of the agent (`Answers`
//! implements it here; tests use a stub).
//!
//! COORDINATOR (issue 26): `Answers::families(now, out)` describes every
//! family straight into a `Sink`. Until it lands, `Answers`' `families`
//! below reads the scrape's own text back into the sink
//! (`replay_exposition`): the same names and labels by construction, at
//! the cost of one parse per push. Once it lands, the body of
//! `impl Source for Answers::families` becomes that one call and
//! `replay_exposition` goes.

use crate::answers::{history::History, Answers};
use crate::collect::error::Result;
use crate::families::{Kind, Sink, Value};
use std::time::Instant;

pub trait Source {
    /// Makes the samples fresh, as a scrape does, and describes every
    /// `/metrics` family into `out`.
    fn families(&mut self, now: Instant, out: &mut dyn Sink) -> Result<()>;
    /// The history ring, when it is on.
    fn history(&self) -> Option<&History>;
}

/// Processes listed in a push, the top N by CPU (as `/metrics` lists).
pub const TOP_N: usize = 10;

impl Source for Answers {
    fn families(&mut self, now: Instant, out: &mut dyn Sink) -> Result<()> {
        let text = self.prometheus(now, TOP_N)?;
        replay_exposition(&text, out);
        Ok(())
    }

    fn history(&self) -> Option<&History> {
        Answers::history(self)
    }
}

/// Labels one exposition line may carry (more: the line is skipped).
const MAX_LABELS: usize = 16;

/// The text exposition format (as `protocol::prom::Writer` writes it)
/// back into `out`: `# HELP`/`# TYPE` open a family, each sample line is
/// one sample. Lines it cannot read are skipped.
pub fn replay_exposition(text: &str, out: &mut dyn Sink) {
    let mut help = "";
    let mut unescaped = [const { String::new() }; MAX_LABELS];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').map_or("", |(_, h)| h);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = if kind == "counter" {
                Kind::Counter
            } else {
                Kind::Gauge
            };
            out.family(name, help, kind);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = match value.parse::<u64>() {
            Ok(u) => Value::U(u),
            Err(_) => match value {
                "NaN" => Value::F(f64::NAN),
                "+Inf" => Value::F(f64::INFINITY),
                "-Inf" => Value::F(f64::NEG_INFINITY),
                v => match v.parse::<f64>() {
                    Ok(f) => Value::F(f),
                    Err(_) => continue,
                },
            },
        };
        let Some(body) = series.split_once('{').map(|(_, b)| b) else {
            out.sample(&[], value);
            continue;
        };
        let mut names = [""; MAX_LABELS];
        let Some(n) = labels(
            body.strip_suffix('}').unwrap_or(body),
            &mut names,
            &mut unescaped,
        ) else {
            continue;
        };
        let mut pairs = [("", ""); MAX_LABELS];
        for ((p, name), v) in pairs.iter_mut().zip(names).zip(&unescaped).take(n) {
            *p = (name, v.as_str());
        }
        out.sample(pairs.get(..n).unwrap_or(&[]), value);
    }
}

/// `a="x",b="y\"z"` → names and unescaped values; their count.
fn labels<'t>(
    mut s: &'t str,
    names: &mut [&'t str; MAX_LABELS],
    values: &mut [String; MAX_LABELS],
) -> Option<usize> {
    let mut n = 0;
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"")?;
        let v = values.get_mut(n)?;
        *names.get_mut(n)? = name;
        v.clear();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                (_, c) => v.push(c),
            }
        };
        n += 1;
        s = rest.get(end + 1..)?;
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::prom::Writer;

    /// Records what a sink is told, as text.
    #[derive(Default)]
    pub struct Record(pub Vec<String>);

    impl Sink for Record {
        fn family(&mut self, name: &str, _help: &str, kind: Kind) {
            self.0.push(format!("family {name} {kind:?}"));
        }
        fn sample(&mut self, labels: &[(&str, &str)], value: Value) {
            self.0.push(format!("{labels:?} {}", value.as_f64()));
        }
    }

    #[test]
    fn the_writers_text_replays_into_the_same_calls() {
        let mut text = String::new();
        let mut w = Writer::new(&mut text);
        let mut direct = Record::default();
        for s in [&mut w as &mut dyn Sink, &mut direct] {
            s.family("a_total", "Help, with a \\ and \"q\".", Kind::Counter);
            s.sample(&[("x", "1"), ("y", "q\"\\\nz")], Value::U(7));
            s.sample(&[], Value::F(0.25));
            s.family("b", "B.", Kind::Gauge);
            s.sample(&[("mode", "idle")], Value::F32(0.5));
        }
        let mut replayed = Record::default();
        replay_exposition(&text, &mut replayed);
        assert_eq!(replayed.0, direct.0);
    }
}
