//! `disk.*` per mounted filesystem, from /proc/self/mounts and statvfs:
//! `disk.total`, `disk.used` (total - free), `disk.free` (available to
//! unprivileged users), in bytes, and `disk.used_percent` (used /
//! (used + available), as df computes it, Real); all GAUGE, label `mount`
//! (the mount point). Pseudo filesystems are left out, each device counts
//! once (its first mount), at most [`MAX_MOUNTS`] mounts.

use std::collections::HashSet;

use bot_proto::metrics::MAX_LABEL_VALUE_BYTES;

use super::{Collector, Number, Sample, bad_data};

/// Most mounts measured in one round.
pub const MAX_MOUNTS: usize = 64;

/// Filesystem types that hold no disk space of their own.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "pstore",
    "bpf",
    "tracefs",
    "debugfs",
    "mqueue",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "ramfs",
    "squashfs",
    "selinuxfs",
    "fuse.lxcfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
];

/// The disk collector.
#[derive(Debug)]
pub struct Disk;

/// One mount to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The device (first field), used to count each device once.
    pub device: String,
    /// The mount point, escapes decoded.
    pub path: String,
}

/// Decodes the octal escapes of a /proc/self/mounts field (`\040` for a
/// space, `\011`, `\012`, `\134`); anything else is kept as written.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| c == b'\\' && d.iter().all(|x| (b'0'..=b'7').contains(x)))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Picks the mounts to measure from /proc/self/mounts: disk-backed
/// filesystems (tmpfs only at `/`), each device and mount point once
/// (first wins), at most [`MAX_MOUNTS`]. Malformed lines are ignored.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut devices = HashSet::new();
    let mut paths = HashSet::new();
    let mut mounts = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(path), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let path = unescape(path);
        if PSEUDO.contains(&fstype)
            || (matches!(fstype, "tmpfs" | "rootfs") && path != "/")
            || !path.starts_with('/')
            || path.len() > MAX_LABEL_VALUE_BYTES
            || path.chars().any(char::is_control)
        {
            continue;
        }
        if devices.contains(device) || paths.contains(&path) {
            continue;
        }
        devices.insert(device.to_owned());
        paths.insert(path.clone());
        mounts.push(Mount {
            device: device.to_owned(),
            path,
        });
        if mounts.len() == MAX_MOUNTS {
            break;
        }
    }
    mounts
}

/// Appends the samples of the filesystem mounted at `mount`, from its
/// statvfs counts (blocks of `fragment` bytes). A filesystem of no size
/// makes none.
pub fn disk_samples(
    mount: &str,
    fragment: u64,
    blocks: u64,
    free: u64,
    available: u64,
    out: &mut Vec<Sample>,
) {
    let bytes = |n: u64| n.saturating_mul(fragment);
    let (total, free, available) = (bytes(blocks), bytes(free), bytes(available));
    if total == 0 {
        return;
    }
    let used = total.saturating_sub(free);
    let int = |n: u64| Number::Int(i64::try_from(n).unwrap_or(i64::MAX));
    out.push(Sample::gauge("disk.total", int(total)).label("mount", mount));
    out.push(Sample::gauge("disk.used", int(used)).label("mount", mount));
    out.push(Sample::gauge("disk.free", int(available)).label("mount", mount));
    if let Some(room) = used.checked_add(available).filter(|r| *r > 0) {
        let pct = (used as f64 * 100.0 / room as f64).clamp(0.0, 100.0);
        out.push(Sample::gauge("disk.used_percent", Number::Real(pct)).label("mount", mount));
    }
}

impl Collector for Disk {
    fn name(&self) -> &'static str {
        "disk"
    }
    // statvfs's counts are u64 here but narrower on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        // Read as bytes: a mount point need not be UTF-8.
        let text = std::fs::read("/proc/self/mounts")?;
        let mounts = parse_mounts(&String::from_utf8_lossy(&text));
        if mounts.is_empty() {
            return Err(bad_data("/proc/self/mounts: no disk filesystem"));
        }
        let mut last_error = None;
        let mut measured = 0;
        for m in &mounts {
            match nix::sys::statvfs::statvfs(m.path.as_str()) {
                Ok(st) => {
                    measured += 1;
                    disk_samples(
                        &m.path,
                        u64::from(st.fragment_size()),
                        u64::from(st.blocks()),
                        u64::from(st.blocks_free()),
                        u64::from(st.blocks_available()),
                        out,
                    );
                }
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) if measured == 0 => Err(std::io::Error::other(format!(
                "statvfs failed on every mount: {e}"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_mounts() {
        let text = "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n\
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n\
udev /dev devtmpfs rw,nosuid,relatime,size=8121388k,nr_inodes=2030347,mode=755 0 0\n\
devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0\n\
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=1630344k,mode=755 0 0\n\
/dev/nvme0n1p2 / ext4 rw,relatime,errors=remount-ro 0 0\n\
securityfs /sys/kernel/security securityfs rw,nosuid,nodev,noexec,relatime 0 0\n\
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n\
/dev/loop0 /snap/core20/2105 squashfs ro,nodev,relatime,errors=continue 0 0\n\
/dev/nvme0n1p1 /boot/efi vfat rw,relatime,fmask=0077,dmask=0077 0 0\n\
/dev/sda1 /mnt/my\\040disk xfs rw,relatime,attr2,inode64 0 0\n\
/dev/nvme0n1p2 /var/lib/docker/bind ext4 rw,relatime 0 0\n\
nas:/export /mnt/nas nfs4 rw,relatime,vers=4.2,addr=10.0.0.2 0 0\n\
/dev/sdb1 /mnt/a\\134b\\012c ext4 rw 0 0\n\
broken-line\n\
/dev/sdc1\n\
\n";
        let paths: Vec<String> = parse_mounts(text).into_iter().map(|m| m.path).collect();
        assert_eq!(paths, ["/", "/boot/efi", "/mnt/my disk", "/mnt/nas"]);

        // tmpfs or overlay at / (a container) is kept; stacked mounts count once.
        let text = "overlay / overlay rw,lowerdir=/l,upperdir=/u,workdir=/w 0 0\n\
                    rootfs / rootfs rw 0 0\n\
                    tmpfs /dev/shm tmpfs rw 0 0\n";
        let mounts = parse_mounts(text);
        assert_eq!(
            mounts,
            [Mount {
                device: "overlay".to_owned(),
                path: "/".to_owned()
            }]
        );
        assert_eq!(parse_mounts("tmpfs / tmpfs rw 0 0\n").len(), 1);
        assert!(parse_mounts("").is_empty());
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("\\999\\0401"), "\\999 1");

        let many: String = (0..100)
            .map(|i| format!("/dev/sd{i} /mnt/{i} ext4 rw 0 0\n"))
            .collect();
        assert_eq!(parse_mounts(&many).len(), MAX_MOUNTS);
    }

    #[test]
    fn disk_samples_like_df() {
        let mut out = Vec::new();
        // 100 blocks of 4 KiB, 40 free of which 30 available to users.
        disk_samples("/var log", 4096, 100, 40, 30, &mut out);
        let lines: Vec<String> = out.iter().map(|s| s.line("h")).collect();
        assert_eq!(
            lines,
            [
                "h:disk.total._var_log:409600:GAUGE",
                "h:disk.used._var_log:245760:GAUGE",
                "h:disk.free._var_log:122880:GAUGE",
                "h:disk.used_percent._var_log:66.666667:GAUGE",
            ]
        );
        assert_eq!(out[0].label_value("mount"), Some("/var log"));
        assert!(out.iter().all(|s| s.validate().is_ok()));
        out.clear();
        disk_samples("/empty", 4096, 0, 0, 0, &mut out);
        assert!(out.is_empty());
        disk_samples("/full", 4096, 10, 0, 0, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[3].value, Number::Real(100.0));
    }
}
