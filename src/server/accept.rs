//! Taking new connections: accepting until `WouldBlock`, the 503 past
//! `Limits::max_connections`, TLS when it is on, and the retry when the
//! process is out of file descriptors.

use super::conn::{self, would_block, Conn};
use super::transport::Transport;
use super::{http, Server, Timer};
use mio::{Interest, Token};
use std::io;
use std::time::{Duration, Instant};

impl Server {
    pub(super) fn accept(&mut self) {
        loop {
            let res = match &self.listener {
                Some(l) => l.accept(),
                None => return,
            };
            match res {
                Ok((mut sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    conn::keepalive(&sock);
                    if self.conns.len() >= self.limits.max_connections {
                        log::debug!("{peer}: over max connections, answering 503");
                        if let http::Route::Respond { response, .. } = http::respond(
                            503,
                            "Service Unavailable",
                            "too many connections",
                            false,
                            "Retry-After: 1\r\n",
                        ) {
                            let _ = std::io::Write::write(&mut sock, &response);
                        }
                        continue;
                    }
                    #[cfg(feature = "tls")]
                    let io = match &self.tls {
                        Some(cfg) => match Transport::new_tls(sock, cfg.clone()) {
                            Ok(t) => t,
                            Err(e) => {
                                log::warn!("TLS: {e}");
                                continue;
                            }
                        },
                        None => Transport::new(sock),
                    };
                    #[cfg(not(feature = "tls"))]
                    let io = Transport::new(sock);
                    let mut io = io;
                    let entry = self.conns.vacant_entry();
                    let k = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut io.sock,
                        Token(k),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register connection: {e}");
                        continue;
                    }
                    self.next_serial += 1;
                    let serial = self.next_serial;
                    let deadline = Instant::now() + self.limits.handshake_timeout;
                    entry.insert(Conn::new(io, serial, deadline, peer.to_string()));
                    self.add_timer(deadline, Timer::Conn(k, serial));
                    log::debug!("{peer}: connected");
                }
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    // Out of file descriptors: keep serving what we have and
                    // try again shortly (the listener is edge-triggered).
                    log::warn!("accept: {e}; retrying in 100 ms");
                    self.add_timer(
                        Instant::now() + Duration::from_millis(100),
                        Timer::AcceptRetry,
                    );
                    return;
                }
                Err(e) => {
                    log::debug!("accept: {e}");
                    return;
                }
            }
        }
    }
}
