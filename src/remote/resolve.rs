//! Name resolution off the loop: `getaddrinfo` blocks inside libc, so it
//! runs on a helper thread whose answer comes back through a channel and
//! the loop's `mio::Waker`. At most one is in flight: a lookup that outlives
//! its request's deadline is still the one the next request waits for.
//! An address literal needs no thread.

use mio::Waker;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

pub type Answer = io::Result<Vec<SocketAddr>>;

pub struct Resolver {
    waker: Arc<Waker>,
    pending: Option<Receiver<Answer>>,
}

impl Resolver {
    pub fn new(waker: Arc<Waker>) -> Self {
        Resolver {
            waker,
            pending: None,
        }
    }

    /// Starts resolving `host:port`; an address literal is answered now.
    /// While an earlier lookup is still running, its answer is the one
    /// that comes (the same name).
    pub fn start(&mut self, host: &str, port: u16) -> Option<Answer> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Ok(vec![SocketAddr::new(ip, port)]));
        }
        if self.pending.is_some() {
            return None;
        }
        let (tx, rx) = channel();
        let (host, waker) = (host.to_string(), self.waker.clone());
        let spawned = std::thread::Builder::new()
            .name("resolve".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let r = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>());
                let _ = tx.send(r);
                let _ = waker.wake();
            });
        match spawned {
            Ok(_) => {
                self.pending = Some(rx);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// The lookup's answer, once it has come (after a wake-up).
    pub fn take(&mut self) -> Option<Answer> {
        let rx = self.pending.as_ref()?;
        match rx.try_recv() {
            Ok(a) => {
                self.pending = None;
                Some(a)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.pending = None;
                Some(Err(io::Error::other("resolver thread ended")))
            }
        }
    }
}
