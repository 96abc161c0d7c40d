//! `statvfs` off the event loop. A call on a mount can hang (a FUSE
//! daemon that never answers, a dead NFS server, a failing USB disk), and
//! the one thread that serves every client must never make it. So a
//! worker thread makes the calls, one after another, and the loop's side
//! (`Prober`) times them, as node_exporter's mount timeout does: a mount
//! that has not answered `MOUNT_TIMEOUT` after the one before is left out
//! and warned of once, its worker is left to its call (at most
//! `MAX_STUCK` of them), and a fresh worker takes the rest. A stuck call
//! that returns puts its mount back in the next round.
//!
//! A round is one hand-off each way: the loop queues the round's mounts to
//! the worker, the worker answers each into a queue the loop drains
//! without waiting and, at the end of its job, calls the server's
//! `mio::Waker`. The loop watches the time itself (`deadline`: the
//! mount's timeout or the round's `ROUND_WAIT`, whichever comes first).
//! A round is over when every mount answered or was left out, or when
//! `ROUND_WAIT` passed: then it has what came back. Without a callback (a
//! benchmark, a test of the answers) the caller waits instead (`wait`).
//!
//! Some calls are made on the loop itself: a mount the mount table says
//! is safe (`disks::statfs_on_loop`: a local filesystem whose `statfs`
//! reads counters in memory, reached through no network, FUSE or autofs
//! mount) and that the worker has answered in time before. Each such
//! call is timed; one that takes over `DIRECT_MAX` and slept meanwhile
//! (waited on a device or a lock, not only preempted) sends its mount
//! back to the worker for good, with a warning. A round whose mounts are all
//! direct is over as soon as it starts: no hand-off and no second wakeup,
//! which is most of what a paced `get_disks` cost.

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
/// A direct call on the loop that takes longer than this sends its mount
/// back to the worker (a healthy local `statfs` takes microseconds).
pub const DIRECT_MAX: Duration = Duration::from_millis(5);
/// Mounts kept in the proven and demoted lists (a mount table of more is
/// answered by the worker past this).
const MAX_DIRECT: usize = 256;
/// Mount points warned of once each; more are logged at debug level.
const MAX_WARNED: usize = 64;
/// The worker's stack: `statvfs` and a queue need little.
const STACK: usize = 64 * 1024;

/// Who calls `statvfs` (a test's stand-in can hang on purpose).
pub type Probe = fn(&Path) -> Option<Space>;
/// Called by a worker when its job is done (wakes the loop).
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

/// One mount's answer, from a worker to the loop.
struct Report {
    worker: u64,
    round: u64,
    idx: usize,
    space: Option<Space>,
    /// When its call returned: the next call began then.
    at: Instant,
}

/// One round's work for a worker: these mounts of `paths`, in order.
struct Job {
    round: u64,
    paths: Arc<[PathBuf]>,
    todo: Vec<usize>,
}

/// The worker the loop hands rounds to.
struct Worker {
    id: u64,
    jobs: Arc<Queue<Job>>,
}

/// The round that is out.
struct Round {
    id: u64,
    paths: Arc<[PathBuf]>,
    /// Which of `paths` the mount table allows on the loop.
    direct: Arc<[bool]>,
    /// Which answered within `DIRECT_MAX`.
    fast: Vec<bool>,
    by: Instant,
    spaces: Vec<Option<Space>>,
    /// The mounts the worker has still to answer, in its order.
    left: VecDeque<usize>,
    /// When the worker's call on `left`'s first mount began.
    since: Instant,
}

/// The loop's side: starts rounds, times the worker, collects what comes
/// back.
pub struct Prober {
    probe: Probe,
    notify: Option<Notify>,
    reports: Arc<Queue<Report>>,
    worker: Option<Worker>,
    next_worker: u64,
    next_id: u64,
    round: Option<Round>,
    /// Workers left in a call, and the mount each is in.
    stuck: Vec<(u64, PathBuf)>,
    warned: Vec<PathBuf>,
    /// Direct-allowed mounts the worker (or the loop) answered in time in
    /// the last round they were in: their next call is made on the loop.
    proven: Vec<PathBuf>,
    /// Mounts whose call on the loop took over `DIRECT_MAX`.
    demoted: Vec<PathBuf>,
}

impl Prober {
    pub fn new(probe: Probe) -> Self {
        Prober {
            probe,
            notify: None,
            reports: Queue::new(),
            worker: None,
            next_worker: 0,
            next_id: 0,
            round: None,
            stuck: Vec::new(),
            warned: Vec::new(),
            proven: Vec::new(),
            demoted: Vec::new(),
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

    /// When the round that is out must be looked at again: its mount's
    /// timeout or its own deadline, whichever comes first.
    pub fn deadline(&self) -> Option<Instant> {
        self.round.as_ref().map(|r| match r.left.is_empty() {
            true => r.by,
            false => r.by.min(r.since + MOUNT_TIMEOUT),
        })
    }

    /// Starts a round over `paths` unless one is out; `direct` says which
    /// the mount table allows on the loop (`disks::statfs_on_loop`).
    pub fn start(&mut self, paths: Arc<[PathBuf]>, direct: Arc<[bool]>, now: Instant) {
        if self.round.is_some() {
            return;
        }
        // a stuck call that returned meanwhile puts its mount back
        self.take_reports(now);
        self.next_id += 1;
        let mut spaces = vec![None; paths.len()];
        let mut fast = vec![false; paths.len()];
        let mut left = VecDeque::new();
        for (i, ((p, slot), f)) in paths.iter().zip(&mut spaces).zip(&mut fast).enumerate() {
            if self.is_stuck(p) {
                continue;
            }
            let allowed = direct.get(i).copied().unwrap_or(false);
            match allowed && self.proven.contains(p) && !self.demoted.contains(p) {
                true => (*slot, *f) = self.direct_call(p),
                false => left.push_back(i),
            }
        }
        self.round = Some(Round {
            id: self.next_id,
            spaces,
            fast,
            paths,
            direct,
            by: now + ROUND_WAIT,
            left,
            since: now,
        });
        self.hand_out(now);
    }

    /// `statvfs` on the loop, timed (and whether it was in time). One over
    /// `DIRECT_MAX` in which the thread slept (it waited on a device or a
    /// lock) sends its mount back to the worker for good; one that was only
    /// preempted (a busy machine) sends it to the worker for a round.
    fn direct_call(&mut self, p: &Path) -> (Option<Space>, bool) {
        let slept_before = voluntary_switches();
        let t0 = Instant::now();
        let space = (self.probe)(p);
        let took = t0.elapsed();
        if took <= DIRECT_MAX {
            return (space, true);
        }
        let slept = voluntary_switches() != slept_before;
        if !slept {
            log::debug!("{}: statfs preempted for {took:?}", p.display());
        } else if self.demoted.len() < MAX_DIRECT {
            self.demoted.push(p.to_path_buf());
            log::warn!(
                "{}: statfs waited {} ms on the event loop; from now on it is made off it",
                p.display(),
                took.as_millis()
            );
        }
        (space, false)
    }

    /// Hands the round's mounts still to answer to the worker (starting
    /// one when needed); with none to be had, they are left out.
    fn hand_out(&mut self, now: Instant) {
        loop {
            let Some(r) = &self.round else { return };
            if r.left.is_empty() {
                return;
            }
            let job = Job {
                round: r.id,
                paths: r.paths.clone(),
                todo: r.left.iter().copied().collect(),
            };
            let sent = match self.worker() {
                Some(w) => w.jobs.send(job).is_ok(),
                None => {
                    // too many stuck: the rest are left out
                    if let Some(r) = &mut self.round {
                        r.left.clear();
                    }
                    return;
                }
            };
            if sent {
                if let Some(r) = &mut self.round {
                    r.since = now;
                }
                return;
            }
            self.worker = None;
        }
    }

    /// The worker, starting one when there is none and fewer than
    /// `MAX_STUCK` are stuck.
    fn worker(&mut self) -> Option<&Worker> {
        if self.worker.is_none() && self.stuck.len() < MAX_STUCK {
            self.next_worker += 1;
            let id = self.next_worker;
            let jobs: Arc<Queue<Job>> = Queue::new();
            let (rx, back) = (jobs.clone(), self.reports.clone());
            let (probe, notify) = (self.probe, self.notify.clone());
            let spawned = std::thread::Builder::new()
                .name("sockagent-statvfs".into())
                .stack_size(STACK)
                .spawn(move || work(id, &rx, &back, probe, notify.as_ref()));
            match spawned {
                Ok(_) => self.worker = Some(Worker { id, jobs }),
                Err(e) => log::warn!("cannot start a statvfs worker: {e}; disks show no space"),
            }
        }
        self.worker.as_ref()
    }

    fn is_stuck(&self, p: &Path) -> bool {
        self.stuck.iter().any(|(_, m)| m == p)
    }

    /// One mount's answer (one of an earlier round, or of a worker given
    /// up on, is dropped; a stuck worker's says its call returned).
    fn take(&mut self, rep: Report) {
        if let Some(i) = self.stuck.iter().position(|(w, _)| *w == rep.worker) {
            let (_, mount) = self.stuck.swap_remove(i);
            log::info!("{}: statfs answered again", mount.display());
            return;
        }
        let current = self.worker.as_ref().map(|w| w.id);
        let Some(r) = self.round.as_mut().filter(|r| r.id == rep.round) else {
            return;
        };
        if current == Some(rep.worker) && r.left.front() == Some(&rep.idx) {
            r.left.pop_front();
            if let Some(f) = r.fast.get_mut(rep.idx) {
                *f = rep.at.saturating_duration_since(r.since) <= DIRECT_MAX;
            }
            r.since = rep.at;
            if let Some(slot) = r.spaces.get_mut(rep.idx) {
                *slot = rep.space;
            }
        }
    }

    /// Takes every answer that came back, without waiting.
    fn take_reports(&mut self, now: Instant) {
        while let Got::Item(rep) = self.reports.recv(Some(now)) {
            self.take(rep);
        }
    }

    /// The worker's call has run past `MOUNT_TIMEOUT`: leave it to its
    /// call (closing its job queue tells it to end when the call returns),
    /// leave its mount out, and hand the rest to a fresh worker.
    fn give_up_if_late(&mut self, now: Instant) {
        let Some(r) = &mut self.round else { return };
        if r.left.is_empty() || now < r.since + MOUNT_TIMEOUT {
            return;
        }
        let idx = r.left.pop_front().unwrap_or_default();
        let mount = r.paths.get(idx).cloned().unwrap_or_default();
        if let Some(w) = self.worker.take() {
            w.jobs.close();
            self.stuck.push((w.id, mount.clone()));
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
        self.hand_out(now);
    }

    /// Takes what came back, gives up on a late call; true when the round
    /// is over.
    fn drain(&mut self, now: Instant) -> bool {
        self.take_reports(now);
        self.give_up_if_late(now);
        self.round
            .as_ref()
            .is_some_and(|r| r.left.is_empty() || now >= r.by)
    }

    /// Without a callback: waits for the round to end (at most until its
    /// deadline).
    pub fn wait(&mut self) {
        loop {
            if self.drain(Instant::now()) {
                return;
            }
            let Some(by) = self.deadline() else { return };
            match self.reports.recv(Some(by)) {
                Got::Item(rep) => self.take(rep),
                Got::Empty => {}
                Got::Closed => return,
            }
        }
    }

    /// The round's spaces (a mount that did not answer: `None`) once it is
    /// over, ending it; `None` while it runs or when none is out. A worker
    /// still making the calls of a round over by its deadline is let go
    /// (it ends after its call), so the next round starts on a fresh one.
    pub fn settle(&mut self, now: Instant) -> Option<Vec<Option<Space>>> {
        if !self.drain(now) {
            return None;
        }
        let r = self.round.take()?;
        if !r.left.is_empty() {
            if let Some(w) = self.worker.take() {
                w.jobs.close();
            }
        }
        // a direct-allowed mount that answered in time is made on the loop
        // next time; the list is kept in place, so a round like the last
        // allocates nothing
        let ok = |i: usize| {
            r.direct.get(i) == Some(&true)
                && r.fast.get(i) == Some(&true)
                && r.spaces.get(i).is_some_and(Option::is_some)
        };
        let at = |q: &PathBuf| r.paths.iter().position(|p| p == q);
        self.proven.retain(|q| at(q).is_some_and(ok));
        for (i, p) in r.paths.iter().enumerate() {
            if ok(i) && !self.proven.contains(p) && self.proven.len() < MAX_DIRECT {
                self.proven.push(p.clone());
            }
        }
        Some(r.spaces)
    }
}

impl Drop for Prober {
    /// The agent is going away: the worker ends after its call, and a
    /// stuck one that returns finds nobody to tell.
    fn drop(&mut self) {
        if let Some(w) = &self.worker {
            w.jobs.close();
        }
        self.reports.close();
    }
}

/// The calling thread's voluntary context switches so far: a call that
/// slept moved it (`None` where the kernel does not say).
fn voluntary_switches() -> Option<libc::c_long> {
    // SAFETY: an all-zero rusage is valid, and getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer for the calling thread's usage.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } == 0;
    ok.then_some(ru.ru_nvcsw)
}

/// A worker: probes each job's mounts in order, reporting each, and wakes
/// the loop when its job is done; ends when the loop lets go of it.
fn work(id: u64, jobs: &Queue<Job>, back: &Queue<Report>, probe: Probe, notify: Option<&Notify>) {
    while let Got::Item(job) = jobs.recv(None) {
        for &idx in &job.todo {
            let Some(p) = job.paths.get(idx) else {
                continue;
            };
            let space = probe(p);
            let rep = Report {
                worker: id,
                round: job.round,
                idx,
                space,
                at: Instant::now(),
            };
            if back.send(rep).is_err() {
                return;
            }
            // given up on while in the call: the rest is another's
            if jobs.is_closed() {
                return;
            }
        }
        if let Some(f) = notify {
            f();
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

    /// No mount allowed on the loop (`start` then reads only as many as
    /// it has paths).
    fn none() -> Arc<[bool]> {
        Arc::new([])
    }

    #[test]
    fn a_round_answers_every_mount() {
        let mut p = Prober::new(fake);
        p.start(paths(&["/a", "/bb"]), none(), Instant::now());
        p.wait();
        let s = p.settle(Instant::now()).unwrap();
        assert_eq!(s, vec![space_of(2), space_of(3)]);
        assert!(p.settle(Instant::now()).is_none(), "the round was taken");
    }

    #[test]
    fn a_hung_mount_is_left_out_and_the_rest_answer() {
        let mut p = Prober::new(fake);
        let ps = paths(&["/a", "/x/hang", "/ccc"]);
        p.start(ps.clone(), none(), Instant::now());
        p.wait();
        let s = p.settle(Instant::now()).unwrap();
        assert_eq!(s, vec![space_of(2), None, space_of(4)]);
        // while it hangs, the next round skips it at once
        let t0 = Instant::now();
        p.start(ps, none(), t0);
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
        p.start(paths(&["/slow"]), none(), Instant::now());
        p.wait();
        assert_eq!(p.settle(Instant::now()).unwrap(), vec![None]);
        // its call returns (and its thread ends): the next round has it
        std::thread::sleep(MOUNT_TIMEOUT * 2);
        p.start(paths(&["/slow"]), none(), Instant::now());
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
        p.start(paths(&["/a"]), none(), now);
        assert_eq!(
            p.deadline(),
            Some(now + MOUNT_TIMEOUT),
            "the mount's timeout comes first"
        );
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(p.settle(Instant::now()).unwrap(), vec![space_of(2)]);
    }

    #[test]
    fn past_its_deadline_a_round_ends_with_what_came_back() {
        let mut p = Prober::new(fake);
        p.set_notify(Arc::new(|| {}));
        let now = Instant::now();
        p.start(paths(&["/x/hang"]), none(), now);
        assert!(p.settle(now).is_none(), "still out");
        assert_eq!(p.settle(now + ROUND_WAIT).unwrap(), vec![None]);
    }

    /// Answers with 1 at once on a thread named `sockagent-statvfs` (the
    /// worker), 2 after `wait` on any other (the loop's, here the test's).
    fn by_thread(wait: impl FnOnce()) -> Option<Space> {
        if std::thread::current().name() == Some("sockagent-statvfs") {
            return space_of(1);
        }
        wait();
        space_of(2)
    }

    fn which_thread(_: &Path) -> Option<Space> {
        by_thread(|| {})
    }

    fn round(p: &mut Prober, ps: &Arc<[PathBuf]>, direct: &Arc<[bool]>) -> Vec<Option<Space>> {
        p.start(ps.clone(), direct.clone(), Instant::now());
        p.wait();
        p.settle(Instant::now()).unwrap()
    }

    /// Rounds until the first mount is answered on the loop (2), at most
    /// 50: the worker must answer within `DIRECT_MAX` first, which a busy
    /// test machine may make it miss now and then. Every round's answers.
    fn until_the_loop(
        p: &mut Prober,
        ps: &Arc<[PathBuf]>,
        d: &Arc<[bool]>,
    ) -> Vec<Vec<Option<Space>>> {
        let mut got = Vec::new();
        while got.len() < 50 {
            got.push(round(p, ps, d));
            if got.last().and_then(|g| g.first()) == Some(&space_of(2)) {
                return got;
            }
        }
        panic!("never answered on the loop: {got:?}");
    }

    #[test]
    fn an_allowed_mount_the_worker_answered_is_answered_on_the_loop() {
        let mut p = Prober::new(which_thread);
        let ps = paths(&["/", "/nfs"]);
        let direct: Arc<[bool]> = Arc::new([true, false]);
        // first the worker answers both, then the allowed one is answered
        // on the loop; the other never is
        let mut got = until_the_loop(&mut p, &ps, &direct);
        assert_eq!(got.first(), Some(&vec![space_of(1), space_of(1)]));
        got.extend((0..3).map(|_| round(&mut p, &ps, &direct)));
        assert!(
            got.iter().all(|g| g.get(1) == Some(&space_of(1))),
            "{got:?}"
        );
        // a round of allowed mounts only is over as soon as it starts
        let only: Arc<[PathBuf]> = paths(&["/"]);
        let yes: Arc<[bool]> = Arc::new([true]);
        p.set_notify(Arc::new(|| {}));
        let at_once = (0..50).any(|_| {
            let now = Instant::now();
            p.start(only.clone(), yes.clone(), now);
            match p.settle(now) {
                Some(s) => s == [space_of(2)],
                // handed to the worker this time: let its round end
                None => {
                    while p.settle(Instant::now()).is_none() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    false
                }
            }
        });
        assert!(at_once, "no hand-off");
        assert_eq!(p.deadline(), None);
        // once the table no longer allows it, the worker answers it again
        let no: Arc<[bool]> = Arc::new([false, false]);
        assert_eq!(round_async(&mut p, &ps, &no), [space_of(1), space_of(1)]);
    }

    /// `round` for a prober with a callback: waits for the worker.
    fn round_async(p: &mut Prober, ps: &Arc<[PathBuf]>, d: &Arc<[bool]>) -> Vec<Option<Space>> {
        p.start(ps.clone(), d.clone(), Instant::now());
        let t0 = Instant::now();
        loop {
            if let Some(s) = p.settle(Instant::now()) {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "the round ends");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Slow (past `DIRECT_MAX`) on the loop's thread, quick on the worker.
    fn slow_on_the_loop(_: &Path) -> Option<Space> {
        by_thread(|| std::thread::sleep(DIRECT_MAX * 2))
    }

    /// A prober over one allowed mount, `probe` making its calls, once it
    /// has answered it on the loop.
    fn answered_on_the_loop(probe: Probe) -> (Prober, Arc<[PathBuf]>, Arc<[bool]>) {
        let mut p = Prober::new(probe);
        let (ps, direct): (_, Arc<[bool]>) = (paths(&["/"]), Arc::new([true]));
        until_the_loop(&mut p, &ps, &direct);
        (p, ps, direct)
    }

    #[test]
    fn a_slow_call_on_the_loop_that_slept_sends_its_mount_back_for_good() {
        // its one slow call on the loop still counts; then the worker's
        let (mut p, ps, direct) = answered_on_the_loop(slow_on_the_loop);
        for _ in 0..5 {
            assert_eq!(round(&mut p, &ps, &direct), [space_of(1)]);
        }
    }

    /// Busy past `DIRECT_MAX` on the loop's thread without sleeping (as a
    /// preempted call is), quick on the worker.
    fn busy_on_the_loop(_: &Path) -> Option<Space> {
        by_thread(|| {
            let t0 = Instant::now();
            while t0.elapsed() < DIRECT_MAX * 2 {
                std::hint::spin_loop();
            }
        })
    }

    #[test]
    fn a_slow_call_on_the_loop_that_did_not_sleep_costs_one_round() {
        // not sent away for good: after the worker, the loop again
        let (mut p, ps, direct) = answered_on_the_loop(busy_on_the_loop);
        assert_eq!(round(&mut p, &ps, &direct), [space_of(1)], "a round off it");
        until_the_loop(&mut p, &ps, &direct);
    }
}
