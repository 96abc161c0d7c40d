#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
//! sockagent: a single-threaded Linux metrics agent speaking the socktop
//! WebSocket API. See ARCHITECTURE.md for the map.

pub mod alerts;
pub mod answers;
pub mod bench;
pub mod collect;
pub mod config;
#[cfg(feature = "tls")]
pub mod crypto;
pub mod families;
pub mod protocol;
pub mod remote;
#[cfg(test)]
pub(crate) mod scratch;
pub mod server;
pub mod text;
