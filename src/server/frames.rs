//! Writing a connection's WebSocket data frames ourselves: framed as
//! tungstenite frames them (its `FrameHeader`), written from the answer's
//! own buffer. A pushed frame is framed once per tick and written to every
//! subscriber with one `send` of that buffer; an answer goes out as its
//! header and payload in one `writev`. tungstenite still reads, unmasks,
//! and answers pings and closes (`conn.rs`).

use super::transport::{would_block, Transport};
use crate::protocol::Answer;
use bytes::Bytes;
use std::io::{self, IoSlice, Write};
use tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::WebSocketContext;

/// Frames answer `a` as one WebSocket data frame (as tungstenite frames
/// it, with its `FrameHeader`): a pushed frame is framed once per tick and
/// written to every subscriber as it is.
pub fn framed(a: &Answer) -> Bytes {
    let (op, payload) = op_and_payload(a);
    let mut out = Vec::with_capacity(payload.len() + 14);
    let header = FrameHeader {
        opcode: OpCode::Data(op),
        ..FrameHeader::default()
    };
    // writing into a Vec cannot fail
    let _ = header.format(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

fn op_and_payload(a: &Answer) -> (OpData, &[u8]) {
    match a {
        Answer::Text(t) => (OpData::Text, t.as_bytes()),
        Answer::Binary(b) => (OpData::Binary, b),
    }
}

/// Writes one answer's frame: 0 when the socket took it all, else what is
/// left (it goes out as the socket drains). The frame is framed as
/// tungstenite frames it (its `FrameHeader`), but written from the
/// answer's own buffer, header and payload in one `writev`: no copy of
/// the payload into a per-connection buffer. Called only when nothing is
/// in flight, so tungstenite holds no bytes it could interleave.
pub fn write_frame(
    io: &mut Transport,
    ctx: &mut WebSocketContext,
    a: Answer,
    peer: &str,
) -> Result<usize, ()> {
    if !ctx.can_write() {
        log::debug!("{peer}: a frame after the close frame is not sent");
        return Err(());
    }
    let (op, payload) = op_and_payload(&a);
    let mut head = [0u8; 14];
    let mut cur = io::Cursor::new(&mut head[..]);
    let header = FrameHeader {
        opcode: OpCode::Data(op),
        ..FrameHeader::default()
    };
    if header.format(payload.len() as u64, &mut cur).is_err() {
        return Err(());
    }
    let len = cur.position() as usize;
    write_raw(io, head.get(..len).unwrap_or_default(), payload, peer)
}

/// Writes `h` then `payload` (one `send` when `payload` is empty, else one
/// `writev`): 0 when the socket took it all, else what is left, queued on
/// the transport (copied then) ahead of anything written later.
pub fn write_raw(io: &mut Transport, h: &[u8], payload: &[u8], peer: &str) -> Result<usize, ()> {
    let total = h.len() + payload.len();
    let taken = loop {
        let r = if payload.is_empty() {
            io.write(h)
        } else {
            io.write_vectored(&[IoSlice::new(h), IoSlice::new(payload)])
        };
        match r {
            Ok(n) => break n,
            Err(e) if would_block(&e) => break 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("{peer}: {e}");
                return Err(());
            }
        }
    };
    if taken >= total {
        return Ok(0);
    }
    let mut rest = Vec::with_capacity(total - taken);
    match taken.checked_sub(h.len()) {
        Some(into_payload) => {
            rest.extend_from_slice(payload.get(into_payload..).unwrap_or_default())
        }
        None => {
            rest.extend_from_slice(h.get(taken..).unwrap_or_default());
            rest.extend_from_slice(payload);
        }
    }
    io.queue_raw(rest);
    Ok(total - taken)
}
