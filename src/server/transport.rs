//! A connection's byte stream: the socket, plain or TLS, and the bytes
//! that must go out before any frame.

use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// The socket (plain or TLS), plus bytes that must go out before anything
/// else (the HTTP response head): tungstenite writes through this, so a 101
/// that did not fit in the socket buffer can never be overtaken by a frame.
pub struct Transport {
    pub sock: TcpStream,
    #[cfg(feature = "tls")]
    pub tls: Option<Box<rustls::ServerConnection>>,
    pre: Vec<u8>,
    pre_off: usize,
    /// The last read was short, so the socket's receive queue was empty:
    /// the next read can say WouldBlock without a syscall. (Edge-triggered
    /// polling stays correct: data arriving later makes a new edge.)
    drained: bool,
}

/// TLS output rustls may hold for one client before writes push back.
#[cfg(feature = "tls")]
const TLS_BUFFER: usize = 256 * 1024;

/// The socket is full (writes) or empty (reads) for now.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Transport {
    pub fn new(sock: TcpStream) -> Self {
        Transport {
            sock,
            #[cfg(feature = "tls")]
            tls: None,
            pre: Vec::new(),
            pre_off: 0,
            drained: false,
        }
    }

    #[cfg(feature = "tls")]
    pub fn new_tls(sock: TcpStream, cfg: std::sync::Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let mut conn = rustls::ServerConnection::new(cfg).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        let mut t = Transport::new(sock);
        t.tls = Some(Box::new(conn));
        Ok(t)
    }

    /// Queues bytes to go out before anything written later.
    pub fn queue_raw(&mut self, bytes: Vec<u8>) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            // rustls buffers plaintext (unlimited here: the head is small).
            tls.set_buffer_limit(None);
            let _ = tls.writer().write_all(&bytes);
            tls.set_buffer_limit(Some(TLS_BUFFER));
            return;
        }
        if self.pre_off >= self.pre.len() {
            self.pre = bytes;
            self.pre_off = 0;
        } else {
            self.pre.extend_from_slice(&bytes);
        }
    }

    /// Writes everything queued (raw bytes, TLS records); `WouldBlock` if
    /// the socket is full.
    pub fn flush_raw(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            while tls.wants_write() {
                match tls.write_tls(&mut self.sock) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
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

    /// Forgets that the last read was short: a turn may end before the
    /// read that would have said WouldBlock (a bounded turn, a full output
    /// socket), and by the next turn new input may have come.
    pub fn new_turn(&mut self) {
        self.drained = false;
    }

    /// Starts a TLS close (close_notify); plain sockets have nothing to say.
    pub fn close_notify(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
        }
    }

    /// Writes the TLS records rustls holds until it holds none or the
    /// socket is full; a full socket is not an error here (the writable
    /// edge that follows drives the connection again, and every read
    /// comes back through here first).
    #[cfg(feature = "tls")]
    fn push_tls(tls: &mut rustls::ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
        while tls.wants_write() {
            match tls.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[cfg(feature = "tls")]
    fn tls_read(
        tls: &mut rustls::ServerConnection,
        sock: &mut TcpStream,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
            // Issue 16, item 0: handshake records that an earlier call left
            // behind because the socket was full (a certificate chain
            // larger than the peer's window) go out before we read. In the
            // Http phase nothing else writes: the writable edge that comes
            // once the peer has read reaches only this read, and if it did
            // not flush here the peer would wait for the rest of our flight
            // until the handshake deadline dropped it. Every WouldBlock
            // this function returns comes from the read below, so none is
            // returned with records still unsent while the socket takes
            // them.
            Self::push_tls(tls, sock)?;
            match tls.read_tls(sock) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Send the alert rustls queued, then give up. The
                        // caller logs why (a client certificate refused:
                        // "peer sent no certificates", "UnknownIssuer").
                        let _ = tls.write_tls(sock);
                        let why = if tls.is_handshaking() {
                            format!("refused at the TLS handshake: {e}")
                        } else {
                            format!("TLS: {e}")
                        };
                        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                    }
                    // Handshake replies go out as soon as they exist (what
                    // does not fit goes out at the top of the next turn).
                    Self::push_tls(tls, sock)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return Self::tls_read(tls, &mut self.sock, buf);
        }
        if std::mem::take(&mut self.drained) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.sock.read(buf)?;
        self.drained = n > 0 && n < buf.len();
        Ok(n)
    }
}

impl Write for Transport {
    /// One `send` on a plain socket (a pushed frame: the floor's syscall).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.write_vectored(&[io::IoSlice::new(buf)]);
        }
        self.flush_raw()?;
        self.sock.write(buf)
    }

    /// What the socket (or rustls) takes of `bufs`, after the raw bytes
    /// queued before them; a frame handed over as its header and its
    /// shared payload goes out in one `writev`, with no copy of its own.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            match self.flush_raw() {
                Ok(()) => {}
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
            let n = match &mut self.tls {
                Some(tls) => tls.writer().write_vectored(bufs)?,
                None => 0,
            };
            if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let _ = self.flush_raw();
            return Ok(n);
        }
        self.flush_raw()?;
        self.sock.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_raw()
    }
}
