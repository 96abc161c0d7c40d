//! sockagent: a single-threaded Linux metrics agent speaking the socktop
//! WebSocket API. See ARCHITECTURE.md for the map.

pub mod collect;
pub mod config;
pub mod protocol;
pub mod server;
