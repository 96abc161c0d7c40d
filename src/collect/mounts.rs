//! `statvfs` off the event loop. A call on a mount can hang (a FUSE
//! daemon that never answers, a dead NFS server, a failing USB disk), and
//! the one thread that serves every client must never make it. So a
//! manager thread owns the calls, as node_exporter's mount timeout does:
//! a worker thread makes them one after another, the manager waits for
//! each at most `MOUNT_TIMEOUT`, and a worker that overruns is left to its
//! call (at most `MAX_STUCK` of them), its mount left out and warned of
//! once, and a fresh worker takes the rest. A stuck call that returns
//! puts its mount back in the next round.
//!
//! The loop's side (`Prober`) starts a round, drains what came back
//! without waiting, and is told through a callback (the server's
//! `mio::Waker`) when the round is over. A round is over when every mount
//! answered or was left out, or when the loop's own deadline
//! (`ROUND_WAIT`) passed: then it has what came back. Without a callback
//! (a benchmark, a test of the answers) the caller waits up to
//! `ROUND_WAIT` instead.

use super::disks::Space;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long one mount may take to answer before it is left out: well
/// under `ROUND_WAIT`, so a round with a newly hung mount still ends with
/// every other mount in it; far over a healthy `statvfs` (microseconds,
/// a few milliseconds over NFS).
pub const MOUNT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a request waits for a round before it is answered with what
/// came back (the TUI asks every few seconds and gives up at 2 s).
pub const ROUND_WAIT: Duration = Duration::from_millis(500);
/// Workers that may sit in a call that does not return: each is one
/// thread (and its kernel stack). Past this, mounts are left out of every
/// round until one returns.
pub const MAX_STUCK: usize = 8;
/// Mount points warned of once each; more are logged at debug level.
const MAX_WARNED: usize = 64;
/// The threads' stacks: `statvfs`, a channel, and a log line need little.
const STACK: usize = 64 * 1024;

/// Who calls `statvfs` (a test's stand-in can hang on purpose).
pub type Probe = fn(&Path) -> Option<Space>;
/// Called by the manager when a round is over (wakes the loop).
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// A channel between two threads: a queue under a lock, and a condvar.
/// (std's `mpsc` links all three of its flavours per message type, ~20
/// KB here; this is the little the prober needs.) Closed by either side.
struct Queue<T> {
    q: Mutex<(VecDeque<T>, bool)>,
    more: Condvar,
}

/// What a receive got.
enum Got<T> {
    Item(T),
    /// Nothing by the deadline.
    Empty,
    Closed,
}

impl<T> Queue<T> {
    fn new() -> Arc<Self> {
        Arc::new(Queue {
            q: Mutex::new((VecDeque::new(), false)),
            more: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<T>, bool)> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `v`; `Err` when the queue is closed.
    fn send(&self, v: T) -> Result<(), ()> {
        let mut g = self.lock();
        if g.1 {
            return Err(());
        }
        g.0.push_back(v);
        self.more.notify_one();
        Ok(())
    }

    fn close(&self) {
        self.lock().1 = true;
        self.more.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.lock().1
    }

    /// The next item, waiting until `by` (`None`: for ever). Items queued
    /// before the close are still delivered.
    fn recv(&self, by: Option<Instant>) -> Got<T> {
        let mut g = self.lock();
        loop {
            if let Some(v) = g.0.pop_front() {
                return Got::Item(v);
            }
            if g.1 {
                return Got::Closed;
            }
            g = match by {
                None => self.more.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(by) => {
                    let left = by.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Got::Empty;
                    }
                    self.more
                        .wait_timeout(g, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// From the loop and the workers to the manager.
enum ToManager {
    Round(u64, Arc<[PathBuf]>),
    Probed {
        worker: u64,
        idx: usize,
        space: Option<Space>,
    },
    Quit,
}

/// The manager's inbox, and its reports to the loop.
type Chans = (Arc<Queue<ToManager>>, Arc<Queue<Report>>);

/// A round asked for: its id and its mounts' paths.
type RoundAsked = (u64, Arc<[PathBuf]>);

/// From the manager to the loop.
enum Report {
    Mount(u64, usize, Option<Space>),
    Done(u64),
}

/// One round's work for a worker: these mounts of `paths`, in order.
struct Job {
    paths: Arc<[PathBuf]>,
    todo: Vec<usize>,
}

/// The round the loop waits for.
struct Round {
    id: u64,
    by: Instant,
    spaces: Vec<Option<Space>>,
    done: bool,
}

impl Round {
    /// One report from the manager (one of an earlier round is dropped).
    fn take(&mut self, rep: Report) {
        match rep {
            Report::Mount(id, i, s) if id == self.id => {
                if let Some(slot) = self.spaces.get_mut(i) {
                    *slot = s;
                }
            }
            Report::Done(id) if id == self.id => self.done = true,
            _ => {}
        }
    }
}

/// The loop's side: starts rounds, collects what comes back.
pub struct Prober {
    probe: Probe,
    notify: Option<Notify>,
    /// The manager's inbox and the reports from it, once started.
    chans: Option<Chans>,
    next_id: u64,
    round: Option<Round>,
}

impl Prober {
    pub fn new(probe: Probe) -> Self {
        Prober {
            probe,
            notify: None,
            chans: None,
            next_id: 0,
            round: None,
        }
    }

    /// From now on rounds end through `f` and nobody waits for them.
    pub fn set_notify(&mut self, f: Notify) {
        self.notify = Some(f);
    }

    /// Whether rounds end through a callback (the server's), not a wait.
    pub fn is_async(&self) -> bool {
        self.notify.is_some()
    }

    /// The running round's deadline, if a round is out.
    pub fn deadline(&self) -> Option<Instant> {
        self.round.as_ref().map(|r| r.by)
    }

    /// Starts a round over `paths` unless one is out.
    pub fn start(&mut self, paths: Arc<[PathBuf]>, now: Instant) {
        if self.round.is_some() {
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let n = paths.len();
        let sent = self
            .manager()
            .is_some_and(|tx| tx.send(ToManager::Round(id, paths)).is_ok());
        self.round = Some(Round {
            id,
            by: now + ROUND_WAIT,
            spaces: vec![None; n],
            // no manager (no thread could start): nothing will come back
            done: !sent,
        });
    }

    /// The manager's inbox, starting it on first use.
    fn manager(&mut self) -> Option<&Queue<ToManager>> {
        if self.chans.is_none() {
            let (inbox, reports) = (Queue::new(), Queue::new());
            let m = Manager {
                inbox: inbox.clone(),
                out: reports.clone(),
                notify: self.notify.clone(),
                probe: self.probe,
                worker: None,
                next_worker: 0,
                stuck: Vec::new(),
                warned: Vec::new(),
            };
            let spawned = spawn("sockagent-mounts", Box::new(move || m.run()));
            if let Err(e) = spawned {
                log::warn!("cannot start the mount prober: {e}; disks show no space");
                return None;
            }
            self.chans = Some((inbox, reports));
        }
        self.chans.as_ref().map(|c| &*c.0)
    }

    /// Takes what came back; true when the round is over.
    fn drain(&mut self, now: Instant) -> bool {
        let (Some(r), Some((_, rx))) = (&mut self.round, &self.chans) else {
            return self.round.as_ref().is_some_and(|r| r.done);
        };
        while !r.done {
            match rx.recv(Some(now)) {
                Got::Item(rep) => r.take(rep),
                Got::Empty => break,
                Got::Closed => r.done = true,
            }
        }
        r.done || now >= r.by
    }

    /// Without a callback: waits for the round to end (at most until its
    /// deadline).
    pub fn wait(&mut self) {
        loop {
            let now = Instant::now();
            if self.drain(now) {
                return;
            }
            let (Some(r), Some((_, rx))) = (&mut self.round, &self.chans) else {
                return;
            };
            match rx.recv(Some(r.by)) {
                Got::Item(rep) => r.take(rep),
                Got::Empty => {}
                Got::Closed => r.done = true,
            }
        }
    }

    /// The round's spaces (a mount that did not answer: `None`) once it is
    /// over, ending it; `None` while it runs or when none is out.
    pub fn settle(&mut self, now: Instant) -> Option<Vec<Option<Space>>> {
        if !self.drain(now) {
            return None;
        }
        self.round.take().map(|r| r.spaces)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        if let Some((tx, _)) = &self.chans {
            let _ = tx.send(ToManager::Quit);
        }
    }
}

/// A worker the manager has handed work to.
struct Worker {
    id: u64,
    jobs: Arc<Queue<Job>>,
}

/// The manager thread: hands rounds to a worker and times each call.
struct Manager {
    /// Also each worker's way back.
    inbox: Arc<Queue<ToManager>>,
    out: Arc<Queue<Report>>,
    notify: Option<Notify>,
    probe: Probe,
    worker: Option<Worker>,
    next_worker: u64,
    /// Workers left in a call, and the mount each is in.
    stuck: Vec<(u64, PathBuf)>,
    warned: Vec<PathBuf>,
}

impl Manager {
    fn run(mut self) {
        let mut next = None;
        loop {
            let (id, paths) = match next.take() {
                Some(r) => r,
                None => match self.inbox.recv(None) {
                    Got::Item(ToManager::Round(id, paths)) => (id, paths),
                    Got::Item(ToManager::Probed { worker, .. }) => {
                        self.returned(worker);
                        continue;
                    }
                    Got::Item(ToManager::Quit) | Got::Empty | Got::Closed => return,
                },
            };
            match self.round(id, &paths) {
                Ok(newer) => next = newer,
                Err(()) => return,
            }
            if self.out.send(Report::Done(id)).is_err() {
                return;
            }
            if let Some(f) = &self.notify {
                f();
            }
        }
    }

    /// One round: every mount not stuck, each within `MOUNT_TIMEOUT`.
    /// Returns a round asked for meanwhile (the newest wins); `Err` when
    /// the agent is going away.
    fn round(&mut self, id: u64, paths: &Arc<[PathBuf]>) -> Result<Option<RoundAsked>, ()> {
        let mut newer = None;
        let mut todo: Vec<usize> = (0..paths.len())
            .filter(|&i| paths.get(i).is_some_and(|p| !self.is_stuck(p)))
            .collect();
        while !todo.is_empty() {
            let Some(w) = self.worker() else {
                break; // too many stuck: the rest are left out
            };
            let (wid, job) = (
                w.id,
                Job {
                    paths: paths.clone(),
                    todo: todo.clone(),
                },
            );
            if w.jobs.send(job).is_err() {
                self.worker = None;
                continue;
            }
            let mut done = 0;
            while let Some(&i) = todo.get(done) {
                match self.inbox.recv(Some(Instant::now() + MOUNT_TIMEOUT)) {
                    Got::Item(ToManager::Probed { worker, idx, space }) if worker == wid => {
                        self.out
                            .send(Report::Mount(id, idx, space))
                            .map_err(|_| ())?;
                        done += 1;
                    }
                    Got::Item(ToManager::Probed { worker, .. }) => self.returned(worker),
                    Got::Item(ToManager::Round(nid, np)) => newer = Some((nid, np)),
                    Got::Item(ToManager::Quit) | Got::Closed => return Err(()),
                    Got::Empty => {
                        let mount = paths.get(i).cloned().unwrap_or_default();
                        self.give_up(wid, mount);
                        done += 1;
                        break;
                    }
                }
            }
            todo.drain(..done.min(todo.len()));
        }
        Ok(newer)
    }

    fn is_stuck(&self, p: &Path) -> bool {
        self.stuck.iter().any(|(_, m)| m == p)
    }

    /// The current worker, starting one when there is none and fewer than
    /// `MAX_STUCK` are stuck.
    fn worker(&mut self) -> Option<&Worker> {
        if self.worker.is_none() && self.stuck.len() < MAX_STUCK {
            self.next_worker += 1;
            let id = self.next_worker;
            let jobs: Arc<Queue<Job>> = Queue::new();
            let rx = jobs.clone();
            let back = self.inbox.clone();
            let probe = self.probe;
            let spawned = spawn(
                "sockagent-statvfs",
                Box::new(move || work(id, &rx, &back, probe)),
            );
            match spawned {
                Ok(_) => self.worker = Some(Worker { id, jobs }),
                Err(e) => log::warn!("cannot start a statvfs worker: {e}"),
            }
        }
        self.worker.as_ref()
    }

    /// The worker did not answer in time: leave it to its call (closing
    /// its job queue tells it to end when the call returns).
    fn give_up(&mut self, worker: u64, mount: PathBuf) {
        if let Some(w) = self.worker.take() {
            w.jobs.close();
        }
        let first = !self.warned.contains(&mount);
        if first && self.warned.len() < MAX_WARNED {
            self.warned.push(mount.clone());
        }
        if first {
            log::warn!(
                "{}: statfs did not answer within {} ms; left out of disks and /metrics until it does",
                mount.display(),
                MOUNT_TIMEOUT.as_millis()
            );
        } else {
            log::debug!("{}: statfs hangs again", mount.display());
        }
        self.stuck.push((worker, mount));
    }

    /// A stuck worker's call returned: its mount is probed again.
    fn returned(&mut self, worker: u64) {
        if let Some(i) = self.stuck.iter().position(|(w, _)| *w == worker) {
            let (_, mount) = self.stuck.swap_remove(i);
            log::info!("{}: statfs answered again", mount.display());
        }
    }
}

impl Drop for Manager {
    /// The agent is going away: the worker ends after its call, and a
    /// stuck one that returns finds nobody to tell.
    fn drop(&mut self) {
        if let Some(w) = &self.worker {
            w.jobs.close();
        }
        self.inbox.close();
    }
}

/// Starts a helper thread; one signature for both kinds, so std's spawn
/// path is linked once.
fn spawn(name: &str, f: Box<dyn FnOnce() + Send>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(STACK)
        .spawn(f)
        .map(drop)
}

/// A worker: probes each job's mounts in order, reporting each; ends when
/// the manager lets go of it.
fn work(id: u64, jobs: &Queue<Job>, back: &Queue<ToManager>, probe: Probe) {
    while let Got::Item(job) = jobs.recv(None) {
        for &idx in &job.todo {
            let Some(p) = job.paths.get(idx) else {
                continue;
            };
            let space = probe(p);
            if back
                .send(ToManager::Probed {
                    worker: id,
                    idx,
                    space,
                })
                .is_err()
            {
                return;
            }
            // given up on while in the call: the rest is another's
            if jobs.is_closed() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space_of(total: u64) -> Option<Space> {
        Some(Space {
            total,
            avail: 1,
            free: 1,
        })
    }

    /// Hangs on any path named "hang" (for a few seconds: the test's
    /// threads end), answers the others with their name's length.
    fn fake(p: &Path) -> Option<Space> {
        if p.ends_with("hang") {
            std::thread::sleep(Duration::from_secs(3));
            return None;
        }
        space_of(p.as_os_str().len() as u64)
    }

    fn paths(names: &[&str]) -> Arc<[PathBuf]> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_round_answers_every_mount() {
        let mut p = Prober::new(fake);
        p.start(paths(&["/a", "/bb"]), Instant::now());
        p.wait();
        let s = p.settle(Instant::now()).unwrap();
        assert_eq!(s, vec![space_of(2), space_of(3)]);
        assert!(p.settle(Instant::now()).is_none(), "the round was taken");
    }

    #[test]
    fn a_hung_mount_is_left_out_and_the_rest_answer() {
        let mut p = Prober::new(fake);
        let ps = paths(&["/a", "/x/hang", "/ccc"]);
        p.start(ps.clone(), Instant::now());
        p.wait();
        let s = p.settle(Instant::now()).unwrap();
        assert_eq!(s, vec![space_of(2), None, space_of(4)]);
        // while it hangs, the next round skips it at once
        let t0 = Instant::now();
        p.start(ps, t0);
        p.wait();
        assert!(
            t0.elapsed() < MOUNT_TIMEOUT,
            "a stuck mount is not waited for again"
        );
        assert_eq!(
            p.settle(Instant::now()).unwrap(),
            vec![space_of(2), None, space_of(4)]
        );
    }

    /// Hangs past the timeout on its first call only.
    fn slow_once(p: &Path) -> Option<Space> {
        static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
        if FIRST.swap(false, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(MOUNT_TIMEOUT * 2);
        }
        space_of(p.as_os_str().len() as u64)
    }

    #[test]
    fn a_mount_whose_call_returned_is_probed_again() {
        let mut p = Prober::new(slow_once);
        p.start(paths(&["/slow"]), Instant::now());
        p.wait();
        assert_eq!(p.settle(Instant::now()).unwrap(), vec![None]);
        // its call returns (and its thread ends): the next round has it
        std::thread::sleep(MOUNT_TIMEOUT * 2);
        p.start(paths(&["/slow"]), Instant::now());
        p.wait();
        assert_eq!(p.settle(Instant::now()).unwrap(), vec![space_of(5)]);
    }

    #[test]
    fn with_a_callback_nothing_waits_and_the_callback_says_when() {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let mut p = Prober::new(fake);
        p.set_notify(Arc::new(move || {
            let _ = tx.lock().map(|t| t.send(()));
        }));
        let now = Instant::now();
        p.start(paths(&["/a"]), now);
        assert_eq!(p.deadline(), Some(now + ROUND_WAIT));
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(p.settle(Instant::now()).unwrap(), vec![space_of(2)]);
    }

    #[test]
    fn past_its_deadline_a_round_ends_with_what_came_back() {
        let mut p = Prober::new(fake);
        p.set_notify(Arc::new(|| {}));
        let now = Instant::now();
        p.start(paths(&["/x/hang"]), now);
        assert!(p.settle(now).is_none(), "still out");
        assert_eq!(p.settle(now + ROUND_WAIT).unwrap(), vec![None]);
    }
}
