//! Journal reads as child processes, owned by the event loop: the child's
//! stdout is a non-blocking pipe registered in the same `Poll`, so a slow
//! or absent journal never stalls any connection. A child is started
//! only for a process that exists, with a clean environment (`PATH` and
//! `LANG`, never the token), for the current boot; at its deadline it is
//! killed, and reaped when its SIGCHLD wakes the loop (`reap`).

use crate::collect::fs::Root;
use crate::collect::journal;
use mio::unix::pipe::Receiver;
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Instant;

/// Tokens at or above this belong to journal pipes (connections use the
/// slab keys below it).
pub const JOB_BASE: usize = usize::MAX / 2;
/// Journal reads running at once; more get an answer with a notice.
pub const MAX_JOBS: usize = 8;

pub struct Job {
    pub pid: u32,
    pub serial: u64,
    child: Option<Child>,
    stdout: Receiver,
    stderr: Option<ChildStderr>,
    out: Vec<u8>,
    /// (connection key, connection serial) waiting for this answer.
    pub waiters: Vec<(usize, u64)>,
}

/// What starting a read gave.
pub enum Started {
    /// Waiting on job `serial`, which ends by `deadline`.
    Pending {
        serial: u64,
        deadline: Option<(Instant, usize)>,
    },
    /// Answered at once (the command could not run, too many reads).
    Now(String),
    /// No process has that pid: nothing was started.
    NoProcess,
}

/// The journal child's whole environment: the agent's `PATH` and `LANG`
/// (or these), nothing else: the token and whatever else the agent was
/// started with stay out of it.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_LANG: &str = "C.UTF-8";

pub struct Jobs {
    jobs: Slab<Job>,
    by_pid: HashMap<u32, usize>,
    cmd: OsString,
    /// `PATH` and `LANG` for the child (see `DEFAULT_PATH`).
    env: [(&'static str, OsString); 2],
    /// Where `/proc/PID` is looked for.
    root: Root,
    next_serial: u64,
    reap: Vec<Child>,
}

fn set_nonblocking(fd: &impl AsRawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

impl Jobs {
    pub fn new(cmd: OsString, root: Root) -> Self {
        let own = |k: &str, default: &str| std::env::var_os(k).unwrap_or_else(|| default.into());
        Jobs {
            jobs: Slab::new(),
            by_pid: HashMap::new(),
            cmd,
            env: [
                ("PATH", own("PATH", DEFAULT_PATH)),
                ("LANG", own("LANG", DEFAULT_LANG)),
            ],
            root,
            next_serial: 0,
            reap: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Starts (or joins) a journal read of `pid` for a waiting connection.
    pub fn start(&mut self, registry: &Registry, pid: u32, waiter: (usize, u64)) -> Started {
        if let Some(job) = self.by_pid.get(&pid).and_then(|&k| self.jobs.get_mut(k)) {
            job.waiters.push(waiter);
            return Started::Pending {
                serial: job.serial,
                deadline: None,
            };
        }
        if pid == 0 || !self.root.path(&format!("proc/{pid}")).exists() {
            return Started::NoProcess;
        }
        if self.jobs.len() >= MAX_JOBS {
            return Started::Now(
                journal::Response::empty("too many journal reads in flight; ask again shortly")
                    .to_json(),
            );
        }
        let spawned = Command::new(&self.cmd)
            .arg(format!("_PID={pid}"))
            .args(["-b", "-o", "json", "-n", "100", "--no-pager"])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                log::debug!("cannot run {:?}: {e}", self.cmd);
                return Started::Now(
                    journal::Response::empty(format!(
                        "journal unavailable: cannot run {}: {e}",
                        self.cmd.to_string_lossy()
                    ))
                    .to_json(),
                );
            }
        };
        let (Some(stdout), stderr) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            self.reap.push(child);
            return Started::Now(
                journal::Response::empty("journal unavailable: no pipe").to_json(),
            );
        };
        let mut stdout = Receiver::from(stdout);
        let _ = stdout.set_nonblocking(true);
        if let Some(e) = &stderr {
            set_nonblocking(e);
        }
        let entry = self.jobs.vacant_entry();
        let key = entry.key();
        if let Err(e) = registry.register(&mut stdout, Token(JOB_BASE + key), Interest::READABLE) {
            let _ = child.kill();
            self.reap.push(child);
            return Started::Now(
                journal::Response::empty(format!("journal unavailable: {e}")).to_json(),
            );
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        entry.insert(Job {
            pid,
            serial,
            child: Some(child),
            stdout,
            stderr,
            out: Vec::new(),
            waiters: vec![waiter],
        });
        self.by_pid.insert(pid, key);
        Started::Pending {
            serial,
            deadline: Some((Instant::now() + journal::DEADLINE, key)),
        }
    }

    /// The job's pipe is readable: read what is there. Returns the finished
    /// job and its answer once the output is complete.
    pub fn on_readable(&mut self, registry: &Registry, key: usize) -> Option<(Job, String)> {
        let job = self.jobs.get_mut(key)?;
        let mut chunk = [0u8; 16 * 1024];
        let done = loop {
            match job.stdout.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => {
                    job.out
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    if job.out.len() > journal::MAX_OUTPUT {
                        break true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if !done {
            return None;
        }
        let mut job = self.remove(registry, key)?;
        let mut err = Vec::new();
        if let Some(mut e) = job.stderr.take() {
            let _ = (&mut e).take(4096).read_to_end(&mut err);
        }
        let exit_ok = match job.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(st))) => st.success(),
            _ => true,
        };
        let answer = journal::build_response(job.pid, &job.out, &err, exit_ok).to_json();
        self.finish_child(&mut job);
        Some((job, answer))
    }

    /// The deadline of job `key` passed: stop it and answer with a notice.
    pub fn on_deadline(
        &mut self,
        registry: &Registry,
        key: usize,
        serial: u64,
    ) -> Option<(Job, String)> {
        if self.jobs.get(key).is_none_or(|j| j.serial != serial) {
            return None;
        }
        let mut job = self.remove(registry, key)?;
        log::debug!("journal read for PID {} timed out", job.pid);
        self.finish_child(&mut job);
        let notice = format!(
            "the journal did not answer within {} ms; no entries shown",
            journal::DEADLINE.as_millis()
        );
        Some((job, journal::Response::empty(notice).to_json()))
    }

    fn remove(&mut self, registry: &Registry, key: usize) -> Option<Job> {
        if !self.jobs.contains(key) {
            return None;
        }
        let mut job = self.jobs.remove(key);
        let _ = registry.deregister(&mut job.stdout);
        if self.by_pid.get(&job.pid) == Some(&key) {
            self.by_pid.remove(&job.pid);
        }
        Some(job)
    }

    /// Kills the child if it still runs and reaps it without blocking; a
    /// child that has not died yet is reaped on a later call.
    fn finish_child(&mut self, job: &mut Job) {
        if let Some(mut child) = job.child.take() {
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                if !matches!(child.try_wait(), Ok(Some(_))) {
                    self.reap.push(child);
                }
            }
        }
        self.reap();
    }

    /// Reaps the killed children that have exited (the loop calls this on
    /// SIGCHLD, so none stays a zombie); never waits.
    pub fn reap(&mut self) {
        self.reap
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }

    /// Stops every running read (shutdown).
    pub fn kill_all(&mut self, registry: &Registry) {
        let keys: Vec<usize> = self.jobs.iter().map(|(k, _)| k).collect();
        for k in keys {
            if let Some(mut j) = self.remove(registry, k) {
                self.finish_child(&mut j);
            }
        }
    }
}
