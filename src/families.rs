//! Metric families as data: the vocabulary collectors describe their
//! readings in, and every encoder consumes (the Prometheus text exposition
//! in `protocol::prom`, remote-write's `WriteRequest`, the alert rules).
//!
//! A collector's sample describes itself family by family through a
//! `Sink`: `family` opens one (name, help, type), the samples that follow
//! belong to it (their labels and value). Nothing is allocated per sample
//! and no family's name is written twice: the `Family` constants sit beside
//! the readers they describe, and each encoder is one `Sink`.
//!
//! This module sits below `collect` and `protocol` alike and imports
//! neither.

/// True for a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// A family's type (the two the agent exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A sample value: integers stay exact, and an `f32` reading is written in
/// its own shortest form (49.925f32 stays "49.925").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    U(u64),
    F(f64),
    F32(f32),
}

impl Value {
    /// The value as a float (remote-write's sample type; alert thresholds).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::U(n) => n as f64,
            Value::F(f) => f,
            Value::F32(f) => f64::from(f),
        }
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::F32(v)
    }
}

/// Where families go: an encoder. `family` opens one; every `sample`
/// until the next `family` belongs to it. A family may be opened with no
/// sample after it (an encoder that cannot show an empty family skips it).
pub trait Sink {
    fn family(&mut self, name: &str, help: &str, kind: Kind);
    fn sample(&mut self, labels: &[(&str, &str)], value: Value);
}

/// A family's description, written once beside the reader it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

impl Family {
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind: Kind::Counter,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind: Kind::Gauge,
        }
    }

    /// Opens this family in `out`; its samples follow.
    pub fn open(&self, out: &mut dyn Sink) {
        out.family(self.name, self.help, self.kind);
    }

    /// This family with one unlabelled sample.
    pub fn single(&self, out: &mut dyn Sink, v: impl Into<Value>) {
        self.open(out);
        out.sample(&[], v.into());
    }
}

/// Declares `Family` constants as a table, one family a line (rustfmt
/// leaves a braced macro's lines as written):
///
/// ```ignore
/// crate::families::declare! {
///     /// The limit the alert divides by.
///     pub MEMORY_MAX = gauge("sockagent_cgroup_memory_max_bytes", "Memory limit …");
/// }
/// ```
macro_rules! declare {
    ($($(#[$attr:meta])* $vis:vis $id:ident = $kind:ident($name:literal, $help:literal);)*) => {
        $($(#[$attr])* $vis const $id: $crate::families::Family =
            $crate::families::Family::$kind($name, $help);)*
    };
}
pub(crate) use declare;

/// What describes its own families (a collector's sample).
pub trait Describe {
    fn describe(&self, out: &mut dyn Sink);
}
