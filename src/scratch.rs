//! Tests' scratch folders: one a test (its name and the process id), made
//! empty and removed when dropped. A leaf: any module's tests may use it.
//! Test-only (also so declared in lib.rs): its `unwrap`s are test set-up,
//! where a failure fails the test that asked.
#![cfg(test)]

use std::path::{Path, PathBuf};

pub struct Scratch(PathBuf);

impl Scratch {
    /// `$TMPDIR/sockagent-{name}-{pid}`, empty.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sockagent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` at `rel` below the folder (its folders made); the
    /// file's path.
    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
