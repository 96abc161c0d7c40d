//! One cached encoded answer for every request kind (`Kept`): the kind's
//! recipe (`AnswerKind`: how its sample is made fresh, when it was taken,
//! how it is encoded), its TTL, its payload pool and the encoding kept
//! beside the sample until the next one. A new kind is a `static`
//! `AnswerKind` here and a `Kept` field of `Answers`.

use super::wire::{CgroupsOut, MetricsOut};
use super::GZIP_THRESHOLD;
use crate::collect::error::Result;
use crate::collect::{processes::ProcRow, Collectors};
use crate::protocol::{gzip::Gzip, pb, Answer};
use bytes::BytesMut;
use serde::Serialize;
use std::time::{Duration, Instant};
use tungstenite::{Bytes, Utf8Bytes};

/// True when a sample taken `at` is still young enough to reuse.
pub(super) fn fresh(at: Option<Instant>, ttl: Duration, now: Instant) -> bool {
    at.is_some_and(|a| !ttl.is_zero() && now.duration_since(a) < ttl)
}

/// The frame payload for a fresh answer, carved from `pool` (see the
/// module's header).
fn refill(pool: &mut BytesMut, data: &[u8]) -> Bytes {
    pool.reserve(data.len());
    pool.extend_from_slice(data);
    pool.split().freeze()
}

/// Serializes into the reused JSON buffer, then into the frame payload.
pub(super) fn encode_json<T: Serialize>(
    json: &mut Vec<u8>,
    pool: &mut BytesMut,
    v: &T,
) -> Utf8Bytes {
    json.clear();
    if let Err(e) = serde_json::to_writer(&mut *json, v) {
        // Only a failing writer errs, and a Vec never fails.
        log::error!("JSON encoding: {e}");
    }
    Utf8Bytes::try_from(refill(pool, json)).unwrap_or_default()
}

/// The buffers every encoding shares (an answer is encoded at a time).
pub(super) struct Scratch {
    pub(super) json: Vec<u8>,
    pub(super) pb: Vec<u8>,
    pub(super) gz: Vec<u8>,
    pub(super) gzip: Gzip,
}

/// What makes a request kind: how its sample is made fresh, when the
/// sample was taken (`None`: there is none that answers a request), and
/// how it is encoded into a frame whose payload is carved from `pool`.
pub(super) struct AnswerKind {
    collect: fn(&mut Collectors, Instant) -> Result<()>,
    at: fn(&Collectors) -> Option<Instant>,
    encode: fn(&mut Collectors, Instant, &mut Scratch, &mut BytesMut) -> Answer,
}

/// One request kind's cached encoded answer: fresh while its sample is
/// younger than `ttl`, encoded at most once per sample, into memory
/// reused from `pool` (see the module's header).
pub(super) struct Kept {
    kind: &'static AnswerKind,
    pub(super) ttl: Duration,
    pool: BytesMut,
    pub(super) answer: Option<Answer>,
}

impl Kept {
    pub(super) fn new(kind: &'static AnswerKind, ttl: Duration) -> Self {
        Kept {
            kind,
            ttl,
            pool: BytesMut::new(),
            answer: None,
        }
    }

    /// Makes the sample fresh: reused inside the TTL, else collected
    /// (and the old encoding let go, so its memory is reused).
    pub(super) fn sample(&mut self, col: &mut Collectors, now: Instant) -> Result<()> {
        if !fresh((self.kind.at)(col), self.ttl, now) {
            self.answer = None;
            (self.kind.collect)(col, now)?;
        }
        Ok(())
    }

    /// The answer of a fresh sample: the kept encoding, or a new one.
    pub(super) fn answer(
        &mut self,
        col: &mut Collectors,
        x: &mut Scratch,
        now: Instant,
    ) -> Result<Answer> {
        self.sample(col, now)?;
        Ok(self.encoded(col, x, now))
    }

    /// The current sample's answer: the kept encoding, or a new one.
    pub(super) fn encoded(
        &mut self,
        col: &mut Collectors,
        x: &mut Scratch,
        now: Instant,
    ) -> Answer {
        if let Some(a) = &self.answer {
            return a.clone();
        }
        let a = (self.kind.encode)(col, now, x, &mut self.pool);
        self.answer = Some(a.clone());
        a
    }
}

/// `metrics`: JSON; a history tick's sample (no host name or process
/// count of its own) answers no request.
pub(super) static METRICS: AnswerKind = AnswerKind {
    collect: |c, now| c.collect(|k| &mut k.metrics, now),
    at: |c| c.metrics().at.filter(|_| c.metrics().full),
    encode: |c, now, x, pool| {
        let (m, gpus) = c.metrics_and_gpus(now);
        Answer::Text(encode_json(
            &mut x.json,
            pool,
            &MetricsOut::of(m, gpus, now),
        ))
    },
};

/// `disks`: JSON rows, one per device.
pub(super) static DISKS: AnswerKind = AnswerKind {
    collect: |c, now| c.collect(|k| &mut k.disks, now),
    at: |c| c.disks().at,
    encode: |c, _, x, pool| Answer::Text(encode_json(&mut x.json, pool, &c.disks().rows)),
};

/// `processes`: protobuf, gzipped above `GZIP_THRESHOLD`.
pub(super) static PROCESSES: AnswerKind = AnswerKind {
    collect: |c, now| c.collect(|k| &mut k.processes, now),
    at: |c| c.processes().0,
    encode: |c, _, x, pool| {
        pb::encode_processes(c.processes().1, &mut x.pb);
        Answer::Binary(if x.pb.len() > GZIP_THRESHOLD {
            x.gzip.compress(&x.pb, &mut x.gz);
            refill(pool, &x.gz)
        } else {
            refill(pool, &x.pb)
        })
    },
};

/// `cgroups`: JSON rows.
pub(super) static CGROUPS: AnswerKind = AnswerKind {
    collect: |c, now| c.collect(|k| &mut k.cgroups, now),
    at: |c| c.cgroups().0,
    encode: |c, _, x, pool| {
        Answer::Text(encode_json(&mut x.json, pool, &CgroupsOut(c.cgroups().1)))
    },
};

/// A scanned process is a row of the process frame.
impl pb::ProcessRow for ProcRow {
    fn fields(&self) -> (u32, &str, f32, u64) {
        (self.pid, &self.name, self.cpu_usage, self.mem_bytes)
    }
}
