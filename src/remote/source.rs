//! What a push reads: every `/metrics` family, fresh, and the history
//! ring. `Source` is the pusher's one view of the agent (`Scrape` over
//! `Answers`; tests use a stub).

use crate::answers::{history::History, prom::PushCounts, Answers};
use crate::collect::error::Result;
use crate::families::Sink;
use std::time::Instant;

pub trait Source {
    /// Makes the samples fresh, as a scrape does, and describes every
    /// `/metrics` family into `out`.
    fn families(&mut self, now: Instant, out: &mut dyn Sink) -> Result<()>;
    /// The history ring, when it is on.
    fn history(&self) -> Option<&History>;
}

/// The agent's answers with the server's pushed-stream counts: what a
/// scrape shows (`Answers::families`).
pub struct Scrape<'a> {
    pub answers: &'a mut Answers,
    pub pushes: PushCounts,
}

impl Source for Scrape<'_> {
    fn families(&mut self, now: Instant, out: &mut dyn Sink) -> Result<()> {
        self.answers.families(now, self.pushes, out)
    }

    fn history(&self) -> Option<&History> {
        self.answers.history()
    }
}
