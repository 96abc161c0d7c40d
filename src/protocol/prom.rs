//! Prometheus text exposition format, version 0.0.4: a writer that appends
//! metric families to a byte buffer. No registry, no allocation per sample.
//!
//! A family is opened with `family` (its `# HELP` and `# TYPE` lines) and
//! its samples follow at once, so every family's samples stay together as
//! the format requires.

use std::fmt::Write as _;

/// The `Content-Type` of a scrape answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

use crate::families::Sink;
pub use crate::families::{valid_name, Kind, Value};

/// Appends families and samples to `out`: the text encoder, one `Sink`.
pub struct Writer<'a> {
    pub out: &'a mut String,
    /// The name of the family open now (its samples repeat it).
    open: String,
}

/// Appends `v` as a label value: `\`, `"` and newline escaped.
pub fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: Value) {
    match v {
        Value::U(n) => {
            let _ = write!(out, "{n}");
        }
        Value::F(f) if f.is_nan() => out.push_str("NaN"),
        Value::F(f) if f.is_infinite() => out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" }),
        Value::F(f) => {
            let _ = write!(out, "{f}");
        }
        Value::F32(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::F32(f) => push_value(out, Value::F(f64::from(f))),
    }
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut String) -> Self {
        Writer {
            out,
            open: String::new(),
        }
    }

    /// Opens a family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        self.open.clear();
        self.open.push_str(name);
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push_str(match kind {
            Kind::Counter => " counter\n",
            Kind::Gauge => " gauge\n",
        });
    }

    /// One sample of the family just opened.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(self.out, val);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(self.out, v.into());
        self.out.push('\n');
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, v: impl Into<Value>) {
        self.family(name, help, kind);
        self.sample(name, &[], v);
    }
}

impl Sink for Writer<'_> {
    fn family(&mut self, name: &str, help: &str, kind: Kind) {
        Writer::family(self, name, help, kind);
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: Value) {
        let name = std::mem::take(&mut self.open);
        Writer::sample(self, &name, labels, value);
        self.open = name;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_labels_and_values() {
        let mut s = String::new();
        let mut w = Writer::new(&mut s);
        w.family(
            "x_total",
            "Things, with a \\ and\na newline.",
            Kind::Counter,
        );
        w.sample("x_total", &[("a", "q\"uo\\te\nnl"), ("b", "")], 7u64);
        w.single("y", "Y.", Kind::Gauge, 0.5f64);
        w.single("z", "Z.", Kind::Gauge, f64::NAN);
        w.single("i", "I.", Kind::Gauge, f64::INFINITY);
        w.single("t", "T.", Kind::Gauge, 49.925f32);
        w.single("big", "B.", Kind::Counter, u64::MAX);
        assert_eq!(
            s,
            "# HELP x_total Things, with a \\\\ and\\na newline.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uo\\\\te\\nnl\",b=\"\"} 7\n\
             # HELP y Y.\n# TYPE y gauge\ny 0.5\n\
             # HELP z Z.\n# TYPE z gauge\nz NaN\n\
             # HELP i I.\n# TYPE i gauge\ni +Inf\n\
             # HELP t T.\n# TYPE t gauge\nt 49.925\n\
             # HELP big B.\n# TYPE big counter\nbig 18446744073709551615\n"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("node_memory_Active_anon_bytes"));
        assert!(valid_name("a:b_c"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
