//! Reading files under a root path (`/` in production, a fixture tree in
//! tests), into buffers owned by the caller.
//!
//! `KeptFile` keeps a `/proc` or `/sys` file open and re-reads it with
//! `pread` at offset 0: the kernel regenerates seq files on every read from
//! offset 0, so one `open` serves the agent's whole life.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};

/// Largest file any collector reads whole. `/proc/PID/stat` is < 1 KiB,
/// `/proc/stat` on a 256-core host is ~40 KiB, mountinfo with thousands of
/// container mounts can reach a few MiB: past this we stop, rather than let
/// a runaway file eat memory.
pub const MAX_READ: usize = 16 << 20;

/// A filesystem root that collectors read through.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

/// A collector of `refresh(root, now, epoch, buf)`'s kind (power,
/// throttle) after one read of fixture tree `name`.
#[cfg(test)]
pub fn refreshed<T: Default>(
    name: &str,
    refresh: fn(&mut T, &Root, std::time::Instant, u64, &mut Vec<u8>),
) -> T {
    let mut c = T::default();
    let now = std::time::Instant::now();
    refresh(&mut c, &Root::fixture(name), now, 1, &mut Vec::new());
    c
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Fixture tree `name` (`tests/fixtures/<name>`, the one fixture root).
    #[cfg(test)]
    pub fn fixture(name: &str) -> Root {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        Root::new(format!("{base}/{name}"))
    }

    /// True for the machine's own root (`/`), false for a captured tree.
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    /// `rel` is relative to the root ("proc/stat"); a leading `/` is ignored.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.base.join(rel.trim_start_matches('/'))
    }

    /// Reads the whole file into `buf` (cleared first).
    pub fn read_into(&self, rel: &str, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.clear();
        let f = File::open(self.path(rel))?;
        f.take(MAX_READ as u64).read_to_end(buf)?;
        Ok(())
    }

    /// Reads a small file and returns it trimmed as a String (sysfs values).
    pub fn read_trimmed(&self, rel: &str) -> io::Result<String> {
        let mut buf = Vec::with_capacity(64);
        self.read_into(rel, &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).trim().to_string())
    }
}

/// Reads all of `f` from offset 0 into `buf` (cleared first) with `pread`.
pub fn pread_all(f: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    pread_expecting(f, buf, 0)
}

/// `pread_all` for a file that was `expect` bytes long last time (0: not
/// known): the first read asks for that and a page more, so one read takes
/// a file that did not grow by a page. The bytes are read into the
/// buffer's spare capacity: nothing is zeroed before a read.
pub fn pread_expecting(f: &File, buf: &mut Vec<u8>, expect: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    buf.clear();
    let mut off = 0u64;
    let mut want = expect + 4096;
    loop {
        buf.reserve(want);
        let spare = buf.spare_capacity_mut();
        let ask = want.min(spare.len());
        let at = libc::off_t::try_from(off).map_err(|_| io::ErrorKind::InvalidData)?;
        // SAFETY: `spare` is `ask` or more bytes of the Vec's own spare
        // capacity; the kernel writes at most `ask` of them, and only the
        // `n` it says it wrote are counted into the length below. Nothing
        // is zeroed first: a 4 KiB memset per /proc/PID/stat read was 7 %
        // of a paced process answer.
        let r = unsafe { libc::pread(f.as_raw_fd(), spare.as_mut_ptr().cast(), ask, at) };
        let n = match usize::try_from(r) {
            Ok(n) => n.min(ask),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
        };
        // SAFETY: the kernel initialised these `n` bytes (n <= ask <= spare).
        unsafe { buf.set_len(buf.len() + n) };
        // A short read is the end: /proc and /sys files fill the whole
        // buffer until they run out, so this saves the read that returns 0.
        if n < want || buf.len() >= MAX_READ {
            return Ok(());
        }
        off += n as u64;
        want = buf.len();
    }
}

/// A file kept open and re-read from offset 0 on every `read`.
#[derive(Debug)]
pub struct KeptFile {
    path: PathBuf,
    file: Option<File>,
    /// The last read's length (`pread_expecting`).
    len: usize,
}

impl KeptFile {
    pub fn new(root: &Root, rel: &str) -> Self {
        KeptFile::at(root.path(rel))
    }

    /// A kept file at a path already under the root (one a search found).
    pub fn at(path: PathBuf) -> Self {
        KeptFile {
            path,
            file: None,
            len: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file into `buf`. Opens it on first use; after an
    /// error the next call reopens it.
    pub fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let file = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.path)?,
        };
        pread_expecting(&file, buf, self.len)?;
        self.len = buf.len();
        self.file = Some(file);
        Ok(())
    }
}

/// `openat(dirfd, "rel/name")` (`name` NUL-terminated, or empty for `rel`
/// itself), the path built in a reused buffer.
pub fn openat(
    dirfd: RawFd,
    rel: &[u8],
    name: &[u8],
    path: &mut Vec<u8>,
    flags: libc::c_int,
) -> io::Result<File> {
    path.clear();
    path.extend_from_slice(rel);
    if !name.is_empty() {
        if !rel.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name);
    }
    if path.last() != Some(&0) {
        path.push(0);
    }
    openat_c(dirfd, path, flags)
}

/// `openat(dirfd, path)` read-only (plus `flags`): `path` ends with its
/// one NUL (else `InvalidInput`).
pub fn openat_c(dirfd: RawFd, path: &[u8], flags: libc::c_int) -> io::Result<File> {
    if path.last() != Some(&0) || path.iter().filter(|&&b| b == 0).count() != 1 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: path is NUL-terminated; dirfd is an open directory.
    let fd = unsafe {
        libc::openat(
            dirfd,
            path.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC | flags,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Calls `f` with the name of every subdirectory of the open directory
/// `fd`, from the start (`d_type`; `fstatat` where the filesystem does not
/// fill it in): a child cgroup is told from a control file by its type,
/// not by guessing from its name.
pub fn list_subdirs(fd: RawFd, buf: &mut Vec<u8>, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    dir_entries(fd, buf, |name, d_type| {
        let dir = match d_type {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => is_dir_at(fd, name),
            _ => false,
        };
        if dir {
            f(name);
        }
    })
}

/// `fstatat(fd, name)` says directory.
pub fn is_dir_at(fd: RawFd, name: &[u8]) -> bool {
    // NAME_MAX is 255: the name and its NUL fit on the stack.
    let mut c = [0u8; 256];
    match c.get_mut(..name.len()) {
        Some(dst) if name.len() < 256 && !name.contains(&0) => dst.copy_from_slice(name),
        _ => return false,
    }
    // SAFETY: st is a valid out-pointer; c is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(fd, c.as_ptr().cast(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn openat_refuses_inner_nul() {
        // A tree of the repo's, not "/": qemu-user's -L sysroot would
        // stand in for "/" on the board builds' tests.
        let d = File::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h200-vm"
        ))
        .unwrap();
        let mut p = Vec::new();
        assert!(openat(d.as_raw_fd(), b"pr\0oc", b"", &mut p, libc::O_DIRECTORY).is_err());
        assert!(openat(d.as_raw_fd(), b"proc", b"stat\0", &mut p, 0).is_ok());
    }

    #[test]
    fn lists_only_directories() {
        let d = File::open("/proc/self").unwrap();
        let mut names = Vec::new();
        list_subdirs(d.as_raw_fd(), &mut Vec::new(), |n| names.push(n.to_vec())).unwrap();
        assert!(names.iter().any(|n| n == b"fd"));
        assert!(!names
            .iter()
            .any(|n| n == b"stat" || n == b"." || n == b".."));
    }

    #[test]
    fn kept_file_rereads_fresh_content() {
        let dir = crate::scratch::Scratch::new("fs");
        dir.write("f", b"one");
        let root = Root::new(dir.path());
        let mut k = KeptFile::new(&root, "/f");
        let mut buf = Vec::new();
        k.read(&mut buf).unwrap();
        assert_eq!(buf, b"one");
        dir.write("f", b"second");
        k.read(&mut buf).unwrap();
        assert_eq!(buf, b"second");
        // grown far past the last length (and the page more the first read
        // asks for), then shrunk: whole each time
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        dir.write("f", &big);
        k.read(&mut buf).unwrap();
        assert_eq!(buf, big);
        dir.write("f", b"3");
        k.read(&mut buf).unwrap();
        assert_eq!(buf, b"3");
    }

    #[test]
    fn pread_reads_live_proc_stat_twice() {
        let f = File::open("/proc/self/stat").unwrap();
        let mut a = Vec::new();
        pread_all(&f, &mut a).unwrap();
        assert!(a.starts_with(std::process::id().to_string().as_bytes()));
        let mut b = Vec::new();
        pread_all(&f, &mut b).unwrap();
        assert!(!b.is_empty());
    }
}

/// Calls `f` with the name and `d_type` of every entry of the open
/// directory `fd` (no `.`/`..`), from the start: `getdents64` into `buf`
/// (grown to `DIRENT_BUF` once, then reused).
pub fn dir_entries(
    fd: std::os::fd::RawFd,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8], u8),
) -> io::Result<()> {
    // SAFETY: lseek on a descriptor the caller owns.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if buf.len() < DIRENT_BUF {
        buf.resize(DIRENT_BUF, 0);
    }
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        let mut recs = buf.get(..n as usize).unwrap_or_default();
        // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
        while let Some(reclen) = recs
            .get(16..18)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| usize::from(u16::from_ne_bytes(b)))
        {
            let (Some(rec), Some(rest)) = (recs.get(..reclen), recs.get(reclen..)) else {
                break;
            };
            if reclen < 20 {
                break;
            }
            let d_type = rec.get(18).copied().unwrap_or(libc::DT_UNKNOWN);
            let name = rec.get(19..).unwrap_or_default();
            let name = name.split(|&c| c == 0).next().unwrap_or_default();
            if name != b"." && name != b".." {
                f(name, d_type);
            }
            recs = rest;
        }
    }
}

/// A directory kept open and listed again with `getdents64` after a rewind:
/// no allocation per entry, unlike `std::fs::read_dir`.
#[derive(Debug)]
pub struct KeptDir {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

/// Room for ~250 `/proc` entries per `getdents64` call: a big host needs a
/// few calls more, a board keeps 48 KiB less resident (two of these live).
const DIRENT_BUF: usize = 8 * 1024;

impl KeptDir {
    pub fn new(root: &Root, rel: &str) -> Self {
        KeptDir {
            path: root.path(rel),
            file: None,
            buf: Vec::new(),
        }
    }

    /// The open directory (opened on first use).
    pub fn file(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            self.file = Some(File::open(&self.path)?);
        }
        self.file
            .as_ref()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    /// Calls `f` with every entry's name (no `.`/`..`), from the start.
    pub fn for_each(&mut self, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.file()?.as_raw_fd();
        let r = dir_entries(fd, &mut self.buf, |name, _| f(name));
        if r.is_err() {
            self.file = None;
        }
        r
    }
}

/// `name` as a pid if it is all digits.
pub fn pid_of(name: &[u8]) -> Option<u32> {
    super::num::parse_u64(name).and_then(|v| u32::try_from(v).ok())
}

#[cfg(test)]
mod dir_tests {
    use super::*;

    #[test]
    fn lists_proc_twice_without_read_dir() {
        let mut d = KeptDir::new(&Root::default(), "proc");
        for _ in 0..2 {
            let mut pids = Vec::new();
            d.for_each(|n| pids.extend(pid_of(n))).unwrap();
            assert!(pids.contains(&std::process::id()));
            assert!(pids.contains(&1));
        }
        let mut names = Vec::new();
        KeptDir::new(&Root::default(), "proc/self")
            .for_each(|n| names.push(n.to_vec()))
            .unwrap();
        assert!(names.iter().any(|n| n == b"stat"));
        assert!(!names.iter().any(|n| n == b"." || n == b".."));
    }
}
