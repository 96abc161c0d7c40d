#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
//! sockagent: a single-threaded Linux metrics agent speaking the socktop
//! WebSocket API. See ARCHITECTURE.md for the map.

pub mod alerts;
pub mod answers;
pub mod bench;
pub mod collect;
pub mod config;
#[cfg(feature = "tls")]
pub mod crypto;
pub mod families;
pub mod protocol;
pub mod remote;
/// Tests' scratch folders: one a test (its name and the process id), made
/// empty and removed when dropped. Any module's tests may use it. A test
/// module: its `unwrap`s are set-up, where a failure fails the test that
/// asked.
#[cfg(test)]
pub(crate) mod scratch {
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
}
pub mod server;
pub mod text;
