//! The one error type of every collector. Its kind says what the caller
//! does with it:
//!
//! | kind        | cause                                   | what to do                      |
//! |-------------|-----------------------------------------|---------------------------------|
//! | `Vanished`  | ENOENT, ESRCH: the process or device went | skip the row                  |
//! | `Permission`| EACCES, EPERM                           | answer the field as null        |
//! | `Malformed` | the kernel wrote what no parser expects | log it once, null / skip        |
//! | `Io`        | anything else (EIO, EMFILE, EINTR loops) | retry on the next sample       |
//!
//! `what` names the file or reading ("/proc/stat"): a `&'static str`, so
//! making an error allocates nothing.

use std::fmt;
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Vanished,
    Permission,
    Malformed,
    Io,
}

#[derive(Debug)]
pub struct CollectError {
    pub kind: ErrorKind,
    pub what: &'static str,
    /// The OS error, for `Io`/`Vanished`/`Permission`.
    pub source: Option<io::Error>,
    /// Why a `Malformed` input was refused.
    pub why: &'static str,
}

pub type Result<T> = std::result::Result<T, CollectError>;

impl CollectError {
    /// An I/O error reading `what`, sorted by its errno.
    pub fn io(what: &'static str, e: io::Error) -> Self {
        let kind = match e.raw_os_error() {
            Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::ENXIO) => ErrorKind::Vanished,
            Some(libc::EACCES | libc::EPERM) => ErrorKind::Permission,
            _ => match e.kind() {
                io::ErrorKind::NotFound => ErrorKind::Vanished,
                io::ErrorKind::PermissionDenied => ErrorKind::Permission,
                _ => ErrorKind::Io,
            },
        };
        CollectError {
            kind,
            what,
            source: Some(e),
            why: "",
        }
    }

    /// `what` held something its parser refuses, for the reason `why`.
    pub fn malformed(what: &'static str, why: &'static str) -> Self {
        CollectError {
            kind: ErrorKind::Malformed,
            what,
            source: None,
            why,
        }
    }

    /// True when `e` says the file or its device is gone (ENOENT, ENODEV…):
    /// a kept file's owner looks its set of files up again.
    pub fn vanished(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::ENXIO)
        ) || e.kind() == io::ErrorKind::NotFound
    }

    /// A closure for `map_err` on an `io::Result`.
    pub fn reading(what: &'static str) -> impl Fn(io::Error) -> Self {
        move |e| CollectError::io(what, e)
    }
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.kind) {
            (_, ErrorKind::Malformed) => write!(f, "{}: {}", self.what, self.why),
            (Some(e), _) => write!(f, "cannot read {}: {e}", self.what),
            (None, _) => write!(f, "cannot read {}", self.what),
        }
    }
}

impl std::error::Error for CollectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Logs each malformed input once per `what` (a kernel that writes one
/// odd file writes it on every sample), the rest at debug level. Owned by
/// `Collectors`; no global state.
#[derive(Debug, Default)]
pub struct Reported {
    seen: Vec<&'static str>,
}

impl Reported {
    pub fn note(&mut self, e: &CollectError) {
        match e.kind {
            ErrorKind::Malformed if !self.seen.contains(&e.what) => {
                self.seen.push(e.what);
                log::warn!("{e} (reported once)");
            }
            _ => log::debug!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_decides_the_kind() {
        let k = |errno| CollectError::io("x", io::Error::from_raw_os_error(errno)).kind;
        assert_eq!(k(libc::ENOENT), ErrorKind::Vanished);
        assert_eq!(k(libc::ESRCH), ErrorKind::Vanished);
        assert_eq!(k(libc::EACCES), ErrorKind::Permission);
        assert_eq!(k(libc::EPERM), ErrorKind::Permission);
        assert_eq!(k(libc::EIO), ErrorKind::Io);
        assert_eq!(k(libc::EMFILE), ErrorKind::Io);
    }

    #[test]
    fn messages_name_the_file() {
        let e = CollectError::io("/proc/stat", io::Error::from_raw_os_error(libc::EACCES));
        assert!(e.to_string().starts_with("cannot read /proc/stat: "), "{e}");
        let m = CollectError::malformed("/proc/meminfo", "no MemTotal");
        assert_eq!(m.to_string(), "/proc/meminfo: no MemTotal");
    }

    #[test]
    fn malformed_is_remembered_once_per_file() {
        let mut r = Reported::default();
        let m = CollectError::malformed("/proc/meminfo", "no MemTotal");
        r.note(&m);
        r.note(&m);
        r.note(&CollectError::malformed("/proc/stat", "no cpu line"));
        assert_eq!(r.seen, ["/proc/meminfo", "/proc/stat"]);
    }
}
