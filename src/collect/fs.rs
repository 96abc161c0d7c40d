//! Reading files under a root path (`/` in production, a fixture tree in
//! tests), into buffers owned by the caller.
//!
//! `KeptFile` keeps a `/proc` or `/sys` file open and re-reads it with
//! `pread` at offset 0: the kernel regenerates seq files on every read from
//! offset 0, so one `open` serves the agent's whole life.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
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
    buf.clear();
    let mut off = 0u64;
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(buf.capacity().max(4096));
        }
        let len = buf.len();
        let spare = buf.capacity() - len;
        buf.resize(len + spare, 0);
        let n = match f.read_at(buf.get_mut(len..).unwrap_or_default(), off) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                buf.truncate(len);
                continue;
            }
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        };
        buf.truncate(len + n);
        if n == 0 || buf.len() >= MAX_READ {
            return Ok(());
        }
        off += n as u64;
    }
}

/// A file kept open and re-read from offset 0 on every `read`.
#[derive(Debug)]
pub struct KeptFile {
    path: PathBuf,
    file: Option<File>,
}

impl KeptFile {
    pub fn new(root: &Root, rel: &str) -> Self {
        KeptFile {
            path: root.path(rel),
            file: None,
        }
    }

    /// Reads the whole file into `buf`. Opens it on first use; after an
    /// error the next call reopens it.
    pub fn read(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let file = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.path)?,
        };
        pread_all(&file, buf)?;
        self.file = Some(file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_file_rereads_fresh_content() {
        let dir = std::env::temp_dir().join(format!("sockagent-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), b"one").unwrap();
        let root = Root::new(&dir);
        let mut k = KeptFile::new(&root, "/f");
        let mut buf = Vec::new();
        k.read(&mut buf).unwrap();
        assert_eq!(buf, b"one");
        std::fs::write(dir.join("f"), b"second").unwrap();
        k.read(&mut buf).unwrap();
        assert_eq!(buf, b"second");
        std::fs::remove_dir_all(&dir).unwrap();
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
