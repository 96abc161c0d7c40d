//! Remote-write's body: a `WriteRequest` (`proto/remote.proto`) written
//! with quick-protobuf straight from the families (`families::Sink`), then
//! snappy's block format. The second encoder over the families `/metrics`
//! is written from (`protocol::prom::Writer` is the first): no name is
//! written here.
//!
//! Each sample is one `TimeSeries` with one `Sample`: the labels are
//! `__name__`, the sample's own and `instance`, sorted by name. A series
//! repeated across seconds repeats its labels; snappy takes most of that
//! back. Both buffers are kept between pushes, so a steady push allocates
//! nothing.

use crate::families::{Family, Kind, Sink, Value};
use quick_protobuf::sizeofs::{sizeof_len, sizeof_varint};
use quick_protobuf::{MessageWrite, Result, Writer, WriterBackend};

/// Labels one sample may carry besides `__name__` and `instance` (the
/// agent's families have at most four); a sample with more is left out
/// and counted (`left_out`), never truncated into another series.
pub const MAX_LABELS: usize = 14;

/// `message Label { string name = 1; string value = 2; }`
struct Label<'a>(&'a str, &'a str);

impl MessageWrite for Label<'_> {
    fn get_size(&self) -> usize {
        1 + sizeof_len(self.0.len()) + 1 + sizeof_len(self.1.len())
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> Result<()> {
        w.write_with_tag(10, |w| w.write_string(self.0))?;
        w.write_with_tag(18, |w| w.write_string(self.1))
    }
}

/// `message Sample { double value = 1; int64 timestamp = 2; }`
struct SampleMsg {
    value: f64,
    ms: i64,
}

impl MessageWrite for SampleMsg {
    fn get_size(&self) -> usize {
        1 + 8 + 1 + sizeof_varint(self.ms as u64)
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> Result<()> {
        w.write_with_tag(9, |w| w.write_double(self.value))?;
        w.write_with_tag(16, |w| w.write_int64(self.ms))
    }
}

/// `message TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }`
struct Series<'a> {
    labels: &'a [(&'a str, &'a str)],
    sample: SampleMsg,
}

impl MessageWrite for Series<'_> {
    fn get_size(&self) -> usize {
        let labels: usize = self
            .labels
            .iter()
            .map(|(n, v)| 1 + sizeof_len(Label(n, v).get_size()))
            .sum();
        labels + 1 + sizeof_len(self.sample.get_size())
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> Result<()> {
        for (n, v) in self.labels {
            w.write_with_tag(10, |w| w.write_message(&Label(n, v)))?;
        }
        w.write_with_tag(18, |w| w.write_message(&self.sample))
    }
}

/// Builds one push's body from families; `Sink` for every describer.
pub struct Encoder {
    instance: String,
    /// The `WriteRequest` being built (its repeated field 1, entry by entry).
    pb: Vec<u8>,
    /// Its snappy block (what goes on the wire).
    wire: Vec<u8>,
    snappy: snap::raw::Encoder,
    /// The timestamp of the samples described next, ms since the epoch.
    pub at_ms: i64,
    /// The family open now, and whether it is left out (`skip`).
    name: String,
    skipping: bool,
    /// Families pushed from elsewhere (the ring's, second by second),
    /// left out while `skip_on`.
    skip: &'static [&'static Family],
    skip_on: bool,
    samples: u64,
    left_out: u64,
}

impl Encoder {
    pub fn new(instance: String, skip: &'static [&'static Family]) -> Self {
        Encoder {
            instance,
            pb: Vec::new(),
            wire: Vec::new(),
            snappy: snap::raw::Encoder::new(),
            at_ms: 0,
            name: String::new(),
            skipping: false,
            skip,
            skip_on: false,
            samples: 0,
            left_out: 0,
        }
    }

    /// Starts a new body (the buffers keep their capacity).
    pub fn clear(&mut self) {
        self.pb.clear();
        self.samples = 0;
        self.left_out = 0;
        self.skipping = false;
        self.name.clear();
    }

    /// Samples in the body so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Samples left out of it (over `MAX_LABELS`).
    pub fn left_out(&self) -> u64 {
        self.left_out
    }

    /// Leaves the listed families out from now on (`true`), or takes
    /// them again (`false`).
    pub fn skip_listed(&mut self, on: bool) {
        self.skip_on = on;
    }

    fn skips(&self, name: &str) -> bool {
        self.skip_on && self.skip.iter().any(|f| f.name == name)
    }

    /// The protobuf, snappy-compressed: the request's body.
    pub fn finish(&mut self) -> &[u8] {
        self.wire.clear();
        self.wire
            .resize(snap::raw::max_compress_len(self.pb.len()), 0);
        match self.snappy.compress(&self.pb, &mut self.wire) {
            Ok(n) => self.wire.truncate(n),
            Err(e) => {
                // only for an input over snappy's 4 GiB block limit
                log::warn!("remote-write: snappy: {e}");
                self.wire.clear();
            }
        }
        &self.wire
    }

    /// The uncompressed protobuf (tests, sizes).
    pub fn protobuf(&self) -> &[u8] {
        &self.pb
    }
}

impl Sink for Encoder {
    fn family(&mut self, name: &str, _help: &str, _kind: Kind) {
        self.name.clear();
        self.name.push_str(name);
        self.skipping = self.skips(name);
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: Value) {
        if self.skipping || self.name.is_empty() {
            return;
        }
        if labels.len() > MAX_LABELS {
            self.left_out += 1;
            return;
        }
        let mut all = [("", ""); MAX_LABELS + 2];
        let ours = labels
            .iter()
            .all(|(k, _)| *k != "instance")
            .then_some(("instance", self.instance.as_str()));
        let every = std::iter::once(("__name__", self.name.as_str()))
            .chain(labels.iter().copied())
            .chain(ours);
        let mut n = 0;
        for (slot, l) in all.iter_mut().zip(every) {
            *slot = l;
            n += 1;
        }
        let Some(labels) = all.get_mut(..n) else {
            return;
        };
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let series = Series {
            labels,
            sample: SampleMsg {
                value: value.as_f64(),
                ms: self.at_ms,
            },
        };
        let mut w = Writer::new(&mut self.pb);
        if w.write_with_tag(10, |w| w.write_message(&series)).is_ok() {
            self.samples += 1;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use quick_protobuf::BytesReader;

    /// One decoded series: its labels and its (value, ms) samples.
    pub type Decoded = (Vec<(String, String)>, Vec<(f64, i64)>);

    /// A length-delimited field's bytes and a reader over them.
    fn sub<'a>(r: &mut BytesReader, b: &'a [u8]) -> (BytesReader, &'a [u8]) {
        let m = r.read_bytes(b).unwrap();
        (BytesReader::from_bytes(m), m)
    }

    fn label(r: &mut BytesReader, b: &[u8]) -> (String, String) {
        let (mut r, b) = sub(r, b);
        let (mut n, mut v) = (String::new(), String::new());
        while !r.is_eof() {
            match r.next_tag(b).unwrap() {
                10 => n = r.read_string(b).unwrap().to_string(),
                18 => v = r.read_string(b).unwrap().to_string(),
                t => panic!("label tag {t}"),
            }
        }
        (n, v)
    }

    fn sample(r: &mut BytesReader, b: &[u8]) -> (f64, i64) {
        let (mut r, b) = sub(r, b);
        let (mut v, mut t) = (0.0, 0);
        while !r.is_eof() {
            match r.next_tag(b).unwrap() {
                9 => v = r.read_double(b).unwrap(),
                16 => t = r.read_int64(b).unwrap(),
                t => panic!("sample tag {t}"),
            }
        }
        (v, t)
    }

    /// A `WriteRequest`'s series, decoded (the test's own reader).
    pub fn decode(b: &[u8]) -> Vec<Decoded> {
        let mut out = Vec::new();
        let mut r = BytesReader::from_bytes(b);
        while !r.is_eof() {
            assert_eq!(r.next_tag(b).unwrap(), 10);
            let (mut r, b) = sub(&mut r, b);
            let mut s: Decoded = (Vec::new(), Vec::new());
            while !r.is_eof() {
                match r.next_tag(b).unwrap() {
                    10 => s.0.push(label(&mut r, b)),
                    18 => s.1.push(sample(&mut r, b)),
                    t => panic!("series tag {t}"),
                }
            }
            out.push(s);
        }
        out
    }

    static CPU: Family = Family::gauge("x_cpu", "CPU.");
    static SKIPPED: [&Family; 1] = [&CPU];

    #[test]
    fn labels_sorted_with_name_and_instance_and_round_trip() {
        let mut e = Encoder::new("box1".into(), &SKIPPED);
        e.skip_listed(true);
        e.at_ms = 1_700_000_000_123;
        e.family("node_load1", "1m load.", Kind::Gauge);
        e.sample(&[], Value::F(0.5));
        e.family("node_cpu_seconds_total", "s", Kind::Counter);
        e.sample(&[("mode", "idle"), ("cpu", "3")], Value::U(42));
        CPU.single(&mut e, 99.0f32);
        e.family("x", "", Kind::Gauge);
        e.sample(&[("instance", "mine")], Value::U(1));
        assert_eq!(e.samples(), 3);
        let pb = e.protobuf().to_vec();
        let body = e.finish().to_vec();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(raw, pb, "snappy round trip");
        let s = decode(&raw);
        let l = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let t = 1_700_000_000_123;
        assert_eq!(
            s,
            vec![
                (
                    l(&[("__name__", "node_load1"), ("instance", "box1")]),
                    vec![(0.5, t)]
                ),
                (
                    l(&[
                        ("__name__", "node_cpu_seconds_total"),
                        ("cpu", "3"),
                        ("instance", "box1"),
                        ("mode", "idle")
                    ]),
                    vec![(42.0, t)]
                ),
                (
                    l(&[("__name__", "x"), ("instance", "mine")]),
                    vec![(1.0, t)]
                ),
            ]
        );
    }

    #[test]
    fn buffers_are_reused_and_too_many_labels_left_out() {
        let mut e = Encoder::new("h".into(), &[]);
        let many = [("a", "b"); MAX_LABELS + 1];
        let fill = |e: &mut Encoder| {
            e.clear();
            e.family("m", "", Kind::Gauge);
            for i in 0..200u64 {
                e.sample(&[("i", "x")], Value::U(i));
            }
            e.sample(&many, Value::U(1));
            e.finish().len()
        };
        fill(&mut e);
        assert_eq!(e.left_out(), 1);
        let (pb, wire) = (e.pb.capacity(), e.wire.capacity());
        for _ in 0..5 {
            fill(&mut e);
        }
        assert_eq!((e.pb.capacity(), e.wire.capacity()), (pb, wire));
        assert_eq!(decode(e.protobuf()).len(), 200);
    }
}
