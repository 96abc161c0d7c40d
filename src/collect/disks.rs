//! Mounted block-device filesystems: `/proc/self/mountinfo` + `statvfs`.

use super::fs::Root;
use super::num::parse_u64;
use crate::families::{Family, Sink, Value};
use serde::Serialize;
use std::collections::HashSet;

/// One mount from mountinfo that may be a disk row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    /// Whether its `statvfs` may be made on the loop's thread once the
    /// worker has answered it (`statfs_on_loop`).
    pub direct: bool,
}

/// Filesystem types that never describe a disk, even with a `/dev/` source.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "overlay",
    "squashfs",
    "ramfs",
    "cgroup",
    "cgroup2",
    "autofs",
    "fuse.lxcfs",
    "nsfs",
    "tracefs",
    "debugfs",
    "securityfs",
    "iso9660",
];

/// Filesystems whose `statfs` reads counters kept in memory: it neither
/// waits on a device nor on a lock held across I/O. FAT and exFAT count
/// their free clusters on the first call only (made by the worker; a
/// mount is answered on the loop after that).
const DIRECT_FS: &[&str] = &["ext2", "ext3", "ext4", "xfs", "vfat", "msdos", "exfat"];

/// Filesystems a path may be walked through without the walk waiting on
/// anything but memory: the kernel's own and `DIRECT_FS`. Not a network
/// or FUSE filesystem (their lookups ask a server), nor autofs (a walk
/// through it may start a mount), nor overlay (its lower layers may be
/// either).
const WALKABLE_FS: &[&str] = &[
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "vfat",
    "msdos",
    "exfat",
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "ramfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "securityfs",
    "pstore",
    "bpf",
    "debugfs",
    "tracefs",
    "configfs",
    "hugetlbfs",
    "efivarfs",
    "fusectl",
];

/// Whether `path` lies below (or is) mount point `mp`.
fn is_below(path: &str, mp: &str) -> bool {
    mp == "/"
        || path
            .strip_prefix(mp)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether the mount at `mp` (of `fstype`, with super options `opts`) may
/// have its `statvfs` made on the loop: a `DIRECT_FS` type without project
/// quota (its `statfs` reads the quota file), reached only through
/// `WALKABLE_FS` mounts (`table`: every mount's point and type).
pub fn statfs_on_loop(mp: &str, fstype: &str, opts: &str, table: &[(String, String)]) -> bool {
    DIRECT_FS.contains(&fstype)
        && !opts.split(',').any(|o| o == "prjquota" || o == "pquota")
        && table
            .iter()
            .all(|(m, t)| !is_below(mp, m) || WALKABLE_FS.contains(&t.as_str()))
}

/// Undoes mountinfo's octal escapes (`\040` is a space).
fn unescape(field: &[u8]) -> String {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        if b == b'\\' {
            if let Some(oct) = field.get(i + 1..i + 4) {
                if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                    let v = oct.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                    if let Ok(v) = u8::try_from(v) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One mountinfo line as a `Mount` (`direct` not yet decided), and its
/// super options.
fn parse_line(line: &[u8]) -> Option<(Mount, String)> {
    let f: Vec<&[u8]> = super::num::fields(line).collect();
    // id parent maj:min root mountpoint options [optional...] - fstype source superopts
    let sep = f.iter().position(|x| *x == b"-")?;
    let (devno, mp, fstype, source) = (f.get(2)?, f.get(4)?, f.get(sep + 1)?, f.get(sep + 2)?);
    let opts = f.get(sep + 3).copied().unwrap_or_default();
    let mut mm = devno.splitn(2, |&b| b == b':');
    let mut num = || {
        mm.next()
            .and_then(parse_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let (major, minor) = (num()?, num()?);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let m = Mount {
        major,
        minor,
        mount_point: unescape(mp),
        fstype: text(fstype),
        source: unescape(source),
        direct: false,
    };
    Some((m, text(opts)))
}

/// Parses mountinfo, keeping the mounts whose source is a block device
/// (`/dev/...`) and whose type is not a pseudo filesystem.
pub fn parse_mountinfo(buf: &[u8]) -> Vec<Mount> {
    let lines: Vec<(Mount, String)> = super::num::lines(buf).filter_map(parse_line).collect();
    let table: Vec<(String, String)> = lines
        .iter()
        .map(|(m, _)| (m.mount_point.clone(), m.fstype.clone()))
        .collect();
    let mut out = Vec::new();
    for (mut m, opts) in lines {
        if !m.source.starts_with("/dev/") || PSEUDO_FS.contains(&m.fstype.as_str()) {
            continue;
        }
        m.direct = statfs_on_loop(&m.mount_point, &m.fstype, &opts, &table);
        out.push(m);
    }
    out
}

/// One row of the `disks` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskRow {
    pub name: String,
    pub total: u64,
    pub available: u64,
    pub temperature: Option<f32>,
    pub is_partition: bool,
}

/// What sysfs says of a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// Kernel name ("sda1", "nvme0n1p2", "dm-0").
    pub kernel_name: String,
    /// The whole disk, when this is a partition.
    pub parent: Option<String>,
}

/// Guesses the parent disk from a partition's name when sysfs is absent:
/// `sda1`→`sda`, `nvme0n1p2`→`nvme0n1`, `mmcblk0p1`→`mmcblk0`.
pub fn parent_from_name(name: &str) -> Option<String> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == name.len() {
        return None;
    }
    let stem = &name[..name.len() - digits];
    if let Some(base) = stem.strip_suffix('p') {
        // nvme0n1p2, mmcblk0p1, loop0p1: the base ends in a digit
        if base.ends_with(|c: char| c.is_ascii_digit()) {
            return Some(base.to_string());
        }
    }
    if stem.ends_with(|c: char| c.is_ascii_digit()) {
        return None; // nvme0n1, mmcblk0, dm-0, loop0: whole devices
    }
    if ["sd", "hd", "vd", "xvd"]
        .iter()
        .any(|p| stem.starts_with(p))
    {
        return Some(stem.to_string());
    }
    None
}

/// Resolves a device through `/sys/dev/block/MAJ:MIN` (a link into
/// `/sys/devices/.../block/<disk>[/<part>]`), with a name guess as fallback.
pub fn dev_info(root: &Root, m: &Mount) -> DevInfo {
    let link = root.path(&format!("sys/dev/block/{}:{}", m.major, m.minor));
    if let Ok(target) = std::fs::read_link(&link) {
        let comps: Vec<String> = target
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if let Some(kname) = comps.last() {
            let parent = if link.join("partition").exists() {
                comps.iter().rev().nth(1).cloned()
            } else {
                None
            };
            return DevInfo {
                kernel_name: kname.clone(),
                parent,
            };
        }
    }
    let name = m.source.trim_start_matches("/dev/").to_string();
    DevInfo {
        parent: parent_from_name(&name),
        kernel_name: name,
    }
}

/// The name a row shows: the mount source without `/dev/`, except that
/// `/dev/root` (Raspberry Pi OS, many boards) becomes the kernel name.
fn row_name(m: &Mount, d: &DevInfo) -> String {
    match m.source.trim_start_matches("/dev/") {
        "root" => d.kernel_name.clone(),
        s => s.to_string(),
    }
}

/// One mounted filesystem with its space, for `node_filesystem_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRow {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub space: Space,
}

/// Every mount with its space into `out`, one row per (device,
/// mountpoint, fstype): an over-mounted path would otherwise give
/// duplicate series.
pub fn keep_filesystems(mounts: &[Mount], spaces: &[Option<Space>], out: &mut Vec<FsRow>) {
    out.clear();
    for (m, s) in mounts.iter().zip(spaces) {
        let Some(space) = *s else { continue };
        if out
            .iter()
            .any(|f| f.device == m.source && f.mountpoint == m.mount_point && f.fstype == m.fstype)
        {
            continue;
        }
        out.push(FsRow {
            device: m.source.clone(),
            mountpoint: m.mount_point.clone(),
            fstype: m.fstype.clone(),
            space,
        });
    }
}

/// Builds the rows: one per device (first mount wins), whole-disk rows with
/// summed totals before their partitions, groups sorted by name.
pub fn build_rows(
    mounts: &[Mount],
    info: impl Fn(&Mount) -> DevInfo,
    space: impl Fn(&Mount) -> Option<(u64, u64)>,
    temp: impl Fn(&str) -> Option<f32>,
) -> Vec<DiskRow> {
    struct Part {
        parent: Option<String>,
        row: DiskRow,
    }
    let mut seen = HashSet::new();
    let mut parts: Vec<Part> = Vec::new();
    for m in mounts {
        if !seen.insert((m.major, m.minor)) {
            continue;
        }
        let Some((total, available)) = space(m) else {
            continue;
        };
        let d = info(m);
        let name = row_name(m, &d);
        let is_partition = d.parent.is_some();
        let temperature = if is_partition {
            None
        } else {
            temp(&d.kernel_name)
        };
        parts.push(Part {
            parent: d.parent,
            row: DiskRow {
                name,
                total,
                available,
                temperature,
                is_partition,
            },
        });
    }
    // group key: the whole disk's name (a partition's parent, else itself)
    let mut groups: Vec<(String, Vec<DiskRow>)> = Vec::new();
    for p in parts {
        let key = p.parent.clone().unwrap_or_else(|| p.row.name.clone());
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(p.row),
            None => groups.push((key, vec![p.row])),
        }
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (disk, mut rows) in groups {
        rows.sort_unstable_by(|a, b| (a.is_partition, &a.name).cmp(&(b.is_partition, &b.name)));
        let has_whole = rows.iter().any(|r| !r.is_partition);
        if !has_whole {
            let total = rows.iter().map(|r| r.total).fold(0u64, u64::saturating_add);
            let available = rows
                .iter()
                .map(|r| r.available)
                .fold(0u64, u64::saturating_add);
            out.push(DiskRow {
                temperature: temp(&disk),
                name: disk,
                total,
                available,
                is_partition: false,
            });
        }
        out.extend(rows);
    }
    out
}

/// What `statvfs` says of a filesystem, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Space {
    pub total: u64,
    /// Free to unprivileged users (`f_bavail`).
    pub avail: u64,
    /// Free, the reserved blocks included (`f_bfree`).
    pub free: u64,
}

/// `statvfs` of a path.
pub fn space(path: &std::path::Path) -> Option<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path, st a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some(Space {
        total: (st.f_blocks as u64).saturating_mul(frsize),
        avail: (st.f_bavail as u64).saturating_mul(frsize),
        free: (st.f_bfree as u64).saturating_mul(frsize),
    })
}

/// `statvfs` of a path: (total, available to unprivileged users) in bytes.
pub fn statvfs(path: &std::path::Path) -> Option<(u64, u64)> {
    space(path).map(|s| (s.total, s.avail))
}

type Pick = fn(&Space) -> u64;

/// node_exporter's filesystem families, per mount.
pub const FS_FAMILIES: [(Family, Pick); 3] = [
    (
        Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes."),
        |s| s.total,
    ),
    (
        Family::gauge(
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
        ),
        |s| s.avail,
    ),
    (
        Family::gauge(
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
        ),
        |s| s.free,
    ),
];

/// Every mount's space, labelled as node_exporter labels it.
pub fn describe_filesystems(filesystems: &[FsRow], out: &mut dyn Sink) {
    for (family, pick) in FS_FAMILIES {
        family.open(out);
        for f in filesystems {
            let labels = [
                ("device", f.device.as_str()),
                ("fstype", &f.fstype),
                ("mountpoint", &f.mountpoint),
            ];
            out.sample(&labels, Value::U(pick(&f.space)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(major: u32, minor: u32, mp: &str, source: &str) -> Mount {
        Mount {
            major,
            minor,
            mount_point: mp.into(),
            fstype: "ext4".into(),
            direct: true,
            source: source.into(),
        }
    }

    fn names(rows: &[DiskRow]) -> Vec<(&str, bool)> {
        rows.iter()
            .map(|r| (r.name.as_str(), r.is_partition))
            .collect()
    }

    #[test]
    fn h200_vm_fixture_matches_reference_rows() {
        let buf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/h200-vm/proc/self/mountinfo"
        ))
        .unwrap();
        let mounts = parse_mountinfo(&buf);
        // /dev/vda (ext4) only: /dev/vdb is squashfs, the rest are pseudo.
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        let root = Root::new("/nonexistent");
        let rows = build_rows(&mounts, |m| dev_info(&root, m), |_| Some((10, 5)), |_| None);
        assert_eq!(names(&rows), vec![("vda", false)]);
    }

    #[test]
    fn amd_host_tree_rows_carry_disk_temperatures() {
        let root = Root::fixture("amd-host");
        let mut buf = Vec::new();
        root.read_into("proc/self/mountinfo", &mut buf).unwrap();
        let mounts = parse_mountinfo(&buf);
        let rows = build_rows(
            &mounts,
            |m| dev_info(&root, m),
            |_| Some((10, 5)),
            |d| crate::collect::sensors::disk_temp(&root, d),
        );
        let got: Vec<(&str, bool, Option<f32>)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.is_partition, r.temperature))
            .collect();
        assert_eq!(
            got,
            vec![
                ("nvme0n1", false, Some(36.85)), // NVMe Composite
                ("nvme0n1p1", true, None),
                ("nvme0n1p2", true, None),
                ("sda", false, Some(31.0)), // drivetemp
                ("sda1", true, None),
                ("sdb", false, None), // USB disk: no sensor
                ("sdb1", true, None),
            ]
        );
    }

    #[test]
    fn escapes_and_mapper() {
        let mounts = parse_mountinfo(
            b"36 35 98:0 / /mnt/my\\040disk rw - ext3 /dev/sdb1 rw\n\
              1128 67 253:0 /var /x rw,relatime - xfs /dev/mapper/rhel-root rw\n\
              40 35 0:5 / /tmp rw - tmpfs tmpfs rw\n",
        );
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].mount_point, "/mnt/my disk");
        assert_eq!(mounts[1].source, "/dev/mapper/rhel-root");
    }

    #[test]
    fn statfs_on_the_loop_only_for_local_mounts_reached_through_local_ones() {
        let mounts = parse_mountinfo(
            b"1 0 254:1 / / rw - ext4 /dev/vda1 rw\n\
              2 1 0:5 / /tmp rw - tmpfs tmpfs rw\n\
              3 1 179:1 / /boot/firmware rw - vfat /dev/mmcblk0p1 rw\n\
              4 2 7:0 / /tmp/img rw - ext4 /dev/loop0 rw\n\
              5 1 0:40 / /srv rw - nfs4 nas:/export rw\n\
              6 5 8:17 / /srv/usb rw - ext4 /dev/sdb1 rw\n\
              7 1 0:41 / /mnt rw - autofs systemd-1 rw\n\
              8 7 8:33 / /mnt/stick rw - exfat /dev/sdc1 rw\n\
              9 1 0:42 / /fuse rw - fuse /dev/sdz9 rw\n\
              10 1 8:49 / /data rw - xfs /dev/sdd1 rw,prjquota\n\
              11 1 8:65 / /pool rw - btrfs /dev/sde1 rw\n\
              12 1 8:81 / /srv2 rw - ext4 /dev/sdf1 rw\n",
        );
        let direct: Vec<(&str, bool)> = mounts
            .iter()
            .map(|m| (m.mount_point.as_str(), m.direct))
            .collect();
        assert_eq!(
            direct,
            [
                ("/", true),
                ("/boot/firmware", true),
                ("/tmp/img", true),
                // below a network mount: the walk may ask its server
                ("/srv/usb", false),
                // below autofs: the walk may start a mount
                ("/mnt/stick", false),
                ("/fuse", false),
                // project quota: statfs reads the quota file
                ("/data", false),
                ("/pool", false),
                // a sibling of /srv, not below it
                ("/srv2", true),
            ]
        );
    }

    #[test]
    fn whole_disks_before_partitions_sorted_deduped() {
        let mounts = vec![
            m(259, 2, "/", "/dev/nvme0n1p2"),
            m(8, 1, "/data", "/dev/sda1"),
            m(259, 1, "/boot", "/dev/nvme0n1p1"),
            m(259, 2, "/var/lib/bind", "/dev/nvme0n1p2"),
            m(179, 2, "/", "/dev/root"),
        ];
        let info = |m: &Mount| {
            if m.source == "/dev/root" {
                DevInfo {
                    kernel_name: "mmcblk0p2".into(),
                    parent: Some("mmcblk0".into()),
                }
            } else {
                let n = m.source.trim_start_matches("/dev/").to_string();
                DevInfo {
                    parent: parent_from_name(&n),
                    kernel_name: n,
                }
            }
        };
        let rows = build_rows(
            &mounts,
            info,
            |m| Some((u64::from(m.minor) * 100, 10)),
            |d| (d == "nvme0n1").then_some(40.0),
        );
        assert_eq!(
            names(&rows),
            vec![
                ("mmcblk0", false),
                ("mmcblk0p2", true),
                ("nvme0n1", false),
                ("nvme0n1p1", true),
                ("nvme0n1p2", true),
                ("sda", false),
                ("sda1", true),
            ]
        );
        let nvme = &rows[2];
        assert_eq!(
            (nvme.total, nvme.available, nvme.temperature),
            (300, 20, Some(40.0))
        );
    }

    #[test]
    fn partition_names() {
        assert_eq!(parent_from_name("sda1").as_deref(), Some("sda"));
        assert_eq!(parent_from_name("nvme0n1p2").as_deref(), Some("nvme0n1"));
        assert_eq!(parent_from_name("mmcblk0p1").as_deref(), Some("mmcblk0"));
        assert_eq!(parent_from_name("nvme0n1"), None);
        assert_eq!(parent_from_name("vda"), None);
        assert_eq!(parent_from_name("dm-0"), None);
        assert_eq!(parent_from_name("mapper/vg-root"), None);
    }

    #[test]
    fn statvfs_root() {
        let (total, avail) = statvfs(std::path::Path::new("/")).unwrap();
        assert!(total > 0 && avail <= total);
    }
}
