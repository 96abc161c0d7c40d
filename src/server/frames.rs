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

/// Frames answer `a` as one WebSocket data frame: a pushed frame is
/// framed once per tick and written to every subscriber as it is.
pub fn framed(a: &Answer) -> Bytes {
    let mut buf = [0u8; 14];
    let (head, payload) = header(a, &mut buf);
    let mut out = Vec::with_capacity(head.len() + payload.len());
    out.extend_from_slice(head);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Answer `a`'s frame header, as tungstenite frames it (its
/// `FrameHeader`, final, no mask), written into `buf`, and its payload.
fn header<'a>(a: &'a Answer, buf: &'a mut [u8; 14]) -> (&'a [u8], &'a [u8]) {
    let (op, payload): (OpData, &[u8]) = match a {
        Answer::Text(t) => (OpData::Text, t.as_bytes()),
        Answer::Binary(b) => (OpData::Binary, b),
    };
    let mut cur = io::Cursor::new(&mut buf[..]);
    let header = FrameHeader {
        opcode: OpCode::Data(op),
        ..FrameHeader::default()
    };
    // at most 10 bytes for any length: the 14-byte buffer cannot fill
    let _ = header.format(payload.len() as u64, &mut cur);
    let n = cur.position() as usize;
    (buf.get(..n).unwrap_or_default(), payload)
}

/// Writes one answer's frame: 0 when the socket took it all, else what is
/// left (it goes out as the socket drains). The frame is written from the
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
    let mut buf = [0u8; 14];
    let (head, payload) = header(&a, &mut buf);
    write_raw(io, head, payload, peer)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_rfc6455_says_for_each_length_form() {
        let f = framed(&Answer::text("hi".into()));
        assert_eq!(&f[..], &[0x81, 2, b'h', b'i']);
        let f = framed(&Answer::text("x".repeat(200)));
        assert_eq!(&f[..4], &[0x81, 126, 0, 200]);
        assert_eq!(f.len(), 4 + 200);
        let f = framed(&Answer::Binary(Bytes::from(vec![7u8; 70_000])));
        assert_eq!(&f[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(f.len(), 10 + 70_000);
    }
}
