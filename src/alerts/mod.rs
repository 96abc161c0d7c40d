//! The agent's own alert engine (issue 28): the built-in rules
//! (`rules.rs`), their state machine over the samples (`eval.rs`, on the
//! history tick), the alerts file (`config.rs`), Alertmanager's payload and
//! the send schedule (`deliver.rs`; the caller sends), and the agent's view
//! (`view.rs`: the `alerts` answer, the `sockagent_alerts` family).
//!
//! Pure: nothing here reads a file outside `config::Overrides::load`, opens
//! a socket or reads a clock; the caller fills `Inputs` and gives the time.

pub mod config;
pub mod deliver;
pub mod eval;
pub mod rules;
pub mod schedule;
pub mod view;

pub use config::Overrides;
pub use eval::{CgroupReading, Engine, FsReading, Inputs, NetReading, Stamp, State};
