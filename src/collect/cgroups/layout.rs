//! Which cgroup layout the host has (v2, hybrid, or v1's hierarchies),
//! and the file each reading comes from in it.

use super::Version;
use crate::collect::fs::Root;
use crate::collect::num::fields;
use std::fs::File;

/// Every file the collector reads, one kept-file slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileSlot {
    Procs0 = 0, // cgroup.procs in walked hierarchy 0 (v2: unified; v1: cpuacct)
    Procs1,     // cgroup.procs in walked hierarchy 1 (v1: memory)
    Cpu,
    Mem,
    MemMax,
    Io,
    Pids,
}
pub(super) const SLOTS: usize = 7;

/// A file: which hierarchy it is in, its name (NUL-terminated), what
/// errors call it.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileSpec {
    pub(super) hier: usize,
    pub(super) name: &'static [u8],
    pub(super) what: &'static str,
}

pub(super) struct Hier {
    /// The hierarchy's root directory, open.
    pub(super) dir: File,
    pub(super) what: &'static str,
}

pub(super) struct Layout {
    pub(super) version: Version,
    /// Walked hierarchies first (v2: 1, v1: cpuacct and memory, either
    /// possibly absent), then v1's blkio and pids.
    pub(super) hiers: Vec<Option<Hier>>,
    pub(super) walked: usize,
    pub(super) files: [Option<FileSpec>; SLOTS],
}

fn spec(hier: usize, name: &'static [u8], what: &'static str) -> Option<FileSpec> {
    Some(FileSpec { hier, name, what })
}

fn open_dir(root: &Root, rel: &str) -> Option<File> {
    let f = File::open(root.path(rel)).ok()?;
    f.metadata().ok()?.is_dir().then_some(f)
}

impl Layout {
    pub(super) fn detect(root: &Root, buf: &mut Vec<u8>) -> Option<Layout> {
        // Some(true): a v2 root that has any controller this reads.
        let controllers = |rel: &str, buf: &mut Vec<u8>| {
            root.read_into(rel, buf)
                .ok()
                .map(|()| fields(buf).any(|c| matches!(c, b"cpu" | b"memory" | b"io" | b"pids")))
        };
        let v2 = |rel: &'static str| {
            Some(Layout {
                version: Version::V2,
                hiers: vec![Some(Hier {
                    dir: open_dir(root, rel)?,
                    what: rel,
                })],
                walked: 1,
                files: [
                    spec(0, b"cgroup.procs\0", "cgroup.procs"),
                    None,
                    spec(0, b"cpu.stat\0", "cpu.stat"),
                    spec(0, b"memory.current\0", "memory.current"),
                    spec(0, b"memory.max\0", "memory.max"),
                    spec(0, b"io.stat\0", "io.stat"),
                    spec(0, b"pids.current\0", "pids.current"),
                ],
            })
        };
        let top = controllers("sys/fs/cgroup/cgroup.controllers", buf);
        if top == Some(true) {
            return v2("sys/fs/cgroup");
        }
        let hybrid = controllers("sys/fs/cgroup/unified/cgroup.controllers", buf);
        if hybrid == Some(true) {
            return v2("sys/fs/cgroup/unified");
        }
        let hier = |rels: &[&'static str]| {
            rels.iter().find_map(|&rel| {
                Some(Hier {
                    dir: open_dir(root, rel)?,
                    what: rel,
                })
            })
        };
        let cpuacct = hier(&[
            "sys/fs/cgroup/cpuacct",
            "sys/fs/cgroup/cpu,cpuacct",
            "sys/fs/cgroup/cpuacct,cpu",
        ]);
        let memory = hier(&["sys/fs/cgroup/memory"]);
        if cpuacct.is_none() && memory.is_none() {
            // A v2 hierarchy without controllers still has cgroup.procs and cpu.stat.
            return match (top, hybrid) {
                (Some(_), _) => v2("sys/fs/cgroup"),
                (_, Some(_)) => v2("sys/fs/cgroup/unified"),
                _ => None,
            };
        }
        Some(Layout {
            version: Version::V1,
            hiers: vec![
                cpuacct,
                memory,
                hier(&["sys/fs/cgroup/blkio"]),
                hier(&["sys/fs/cgroup/pids"]),
            ],
            walked: 2,
            files: [
                spec(0, b"cgroup.procs\0", "cgroup.procs"),
                spec(1, b"cgroup.procs\0", "cgroup.procs"),
                spec(0, b"cpuacct.usage\0", "cpuacct.usage"),
                spec(1, b"memory.usage_in_bytes\0", "memory.usage_in_bytes"),
                spec(1, b"memory.limit_in_bytes\0", "memory.limit_in_bytes"),
                spec(
                    2,
                    b"blkio.throttle.io_service_bytes\0",
                    "blkio.throttle.io_service_bytes",
                ),
                spec(3, b"pids.current\0", "pids.current"),
            ],
        })
    }
}
