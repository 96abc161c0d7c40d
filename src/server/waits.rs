//! What waits inside the loop for something other than a socket: a
//! journal child's answer and a disks round (statvfs off the loop); each
//! fills the waiting connections' slots and drives them again.

use super::{jobs, Server, Timer};
use crate::protocol::{self, Answer, Stream};
use std::cmp::Reverse;
use std::time::Instant;

impl Server {
    /// Hands a finished journal answer to every connection waiting for it.
    pub(super) fn deliver(&mut self, job: jobs::Job, answer: &str) {
        let a = self.answers.journal_store(job.pid, answer, Instant::now());
        for (k, serial) in job.waiters {
            let Some(c) = self.conns.get_mut(k).filter(|c| c.serial == serial) else {
                continue;
            };
            c.out.fill(job.serial, &a);
            self.drive(k);
        }
    }

    /// The disks round ended (or its deadline passed): every connection
    /// waiting for it gets its answer, a waiting scrape is driven again.
    pub(super) fn disks_done(&mut self, now: Instant) {
        if self.disk_waits.conns.is_empty() && self.disk_waits.pushes.is_empty() {
            return;
        }
        let answer = match self.answers.disks_poll(now) {
            // still out (a newer round): woken when it ends, or at its deadline
            Ok(Some(by)) => return self.arm_disks(by),
            Ok(None) => self.answers.disks(now),
            Err(e) => Err(e),
        }
        .unwrap_or_else(|e| {
            log::warn!("disks: {e}");
            Answer::text(protocol::error_json(
                &format!("cannot collect disks: {e}"),
                "get_disks",
                None,
            ))
        });
        if self.disk_waits.armed.take().is_some() {
            self.timers.retain(|Reverse((_, t))| *t != Timer::Disks);
        }
        for (k, serial) in std::mem::take(&mut self.disk_waits.conns) {
            let Some(c) = self.conns.get_mut(k).filter(|c| c.serial == serial) else {
                continue;
            };
            c.out.fill_disks(&answer);
            self.drive(k);
        }
        for (ms, serial) in std::mem::take(&mut self.disk_waits.pushes) {
            self.push_tick(Stream::Disks, ms, serial, now);
        }
    }

    /// A timer at `by` for the disks round that is out, unless one is set.
    pub(super) fn arm_disks(&mut self, by: Instant) {
        if self.disk_waits.armed != Some(by) {
            self.disk_waits.armed = Some(by);
            self.add_timer(by, Timer::Disks);
        }
    }
}
