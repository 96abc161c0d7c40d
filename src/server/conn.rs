//! One connection: its socket, its phase, its queue of answers.

use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Instant;
use tungstenite::protocol::WebSocketContext;

/// The socket, plus bytes that must go out before anything else (the HTTP
/// response head): tungstenite writes through this, so a 101 that did not
/// fit in the socket buffer can never be overtaken by a frame.
pub struct Transport {
    pub sock: TcpStream,
    pre: Vec<u8>,
    pre_off: usize,
}

impl Transport {
    pub fn new(sock: TcpStream) -> Self {
        Transport {
            sock,
            pre: Vec::new(),
            pre_off: 0,
        }
    }

    pub fn queue_raw(&mut self, bytes: Vec<u8>) {
        if self.pre_off >= self.pre.len() {
            self.pre = bytes;
            self.pre_off = 0;
        } else {
            self.pre.extend_from_slice(&bytes);
        }
    }

    /// Writes the queued raw bytes; `WouldBlock` if the socket is full.
    pub fn flush_raw(&mut self) -> io::Result<()> {
        while self.pre_off < self.pre.len() {
            match self
                .sock
                .write(self.pre.get(self.pre_off..).unwrap_or_default())
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pre_off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pre = Vec::new();
        self.pre_off = 0;
        Ok(())
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.flush_raw()?;
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_raw()
    }
}

/// One answer slot, kept in request order.
pub enum Slot {
    Ready(crate::collect::Answer),
    /// Waiting for journal job `serial`; later answers queue behind it.
    Waiting(u64),
}

pub enum Phase {
    /// Reading the request head.
    Http { buf: Vec<u8> },
    /// Upgraded.
    Ws { ctx: Box<WebSocketContext> },
    /// Sending the last bytes (an HTTP error, a close frame), then reading
    /// and discarding until the peer closes or the deadline passes: closing
    /// with unread input would reset the connection and lose our last words.
    Closing {
        ctx: Option<Box<WebSocketContext>>,
        shut: bool,
    },
}

pub struct Conn {
    pub io: Transport,
    pub phase: Phase,
    /// Distinguishes this connection from a later one in the same slab slot.
    pub serial: u64,
    pub deadline: Option<Instant>,
    pub queue: VecDeque<Slot>,
    pub peer: String,
}
