//! `diskio.*` per block device from /proc/diskstats (DERIVE, since boot):
//! `diskio.read_bytes`, `diskio.write_bytes` (sectors × 512),
//! `diskio.reads`, `diskio.writes` (completed operations); label `device`.
//! `loop*`, `ram*` and `zram*` devices and the partitions of a listed disk
//! are left out, at most [`MAX_DEVICES`] devices. No device (a container)
//! makes no samples and no error.

use std::collections::HashSet;

use super::{Collector, Sample, bad_data, read_proc};

/// Most devices reported in one round.
pub const MAX_DEVICES: usize = 64;

/// The disk I/O collector.
#[derive(Debug)]
pub struct DiskIo;

/// One line of /proc/diskstats: the device and its counters.
struct Line<'a> {
    name: &'a str,
    reads: i64,
    read_sectors: i64,
    writes: i64,
    write_sectors: i64,
}

/// Parses one line (`major minor name reads merged sectors ms writes
/// merged sectors ms …`).
fn parse_line(line: &str) -> Option<Line<'_>> {
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    let num = |i: usize| f.get(i)?.parse::<i64>().ok().filter(|v| *v >= 0);
    Some(Line {
        name: f.get(2).copied().filter(|n| !n.is_empty())?,
        reads: num(3)?,
        read_sectors: num(5)?,
        writes: num(7)?,
        write_sectors: num(9)?,
    })
}

/// Whether `name` is a partition of a disk in `disks`: `sda1` of `sda`,
/// `nvme0n1p1` of `nvme0n1`, `mmcblk0p2` of `mmcblk0`, `md0p1` of `md0`.
fn is_partition(name: &str, disks: &HashSet<&str>) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == name.len() || base.is_empty() {
        return false;
    }
    if base.ends_with(|c: char| c.is_ascii_alphabetic()) && disks.contains(base) {
        return true;
    }
    base.strip_suffix('p')
        .is_some_and(|disk| disk.ends_with(|c: char| c.is_ascii_digit()) && disks.contains(disk))
}

/// Parses /proc/diskstats into samples. A file with lines but none
/// readable is bad data; a file whose devices are all left out is not.
pub fn parse_diskstats(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let lines: Vec<Line<'_>> = text.lines().filter_map(parse_line).collect();
    if lines.is_empty() && text.lines().any(|l| !l.trim().is_empty()) {
        return Err(bad_data("/proc/diskstats: no device line"));
    }
    let disks: HashSet<&str> = lines.iter().map(|l| l.name).collect();
    let mut seen = HashSet::new();
    for l in &lines {
        if ["loop", "ram", "zram"]
            .iter()
            .any(|p| l.name.starts_with(p))
            || is_partition(l.name, &disks)
            || seen.contains(l.name)
        {
            continue;
        }
        if seen.len() == MAX_DEVICES {
            break;
        }
        seen.insert(l.name);
        let mut push = |metric: &str, value: Option<i64>| {
            if let Some(v) = value {
                out.push(Sample::derive(metric, v).label("device", l.name));
            }
        };
        push("diskio.read_bytes", l.read_sectors.checked_mul(512));
        push("diskio.write_bytes", l.write_sectors.checked_mul(512));
        push("diskio.reads", Some(l.reads));
        push("diskio.writes", Some(l.writes));
    }
    Ok(())
}

impl Collector for DiskIo {
    fn name(&self) -> &'static str {
        "diskio"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        match read_proc("/proc/diskstats") {
            Ok(text) => parse_diskstats(&text, out),
            // Some containers have no /proc/diskstats: no device, no error.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_diskstats() {
        let text = "   7       0 loop0 52 0 2172 12 0 0 0 0 0 24 12 0 0 0 0 0 0\n\
   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
 252       0 zram0 100 0 800 0 50 0 400 0 0 0 0 0 0 0 0 0 0\n\
 259       0 nvme0n1 301233 98114 24619522 60873 1108446 1031221 53040696 1234913 0 514604 1313254 0 0 0 0 40291 17467\n\
 259       1 nvme0n1p1 315 1162 12950 72 2 0 2 0 0 104 72 0 0 0 0 0 0\n\
 259       2 nvme0n1p2 300806 96952 24598916 60783 1108444 1031221 53040694 1234912 0 514560 1295695 0 0 0 0 0 0\n\
   8       0 sda 5000 10 80000 900 2000 5 40000 300 0 1000 1200\n\
   8       1 sda1 4900 10 79000 890 1990 5 39900 290 0 990 1180\n\
   8      16 sdb1 10 0 160 1 0 0 0 0 0 1 1\n\
 253       0 dm-0 290000 0 24000000 58000 2100000 0 53000000 2900000 0 510000 2958000 0 0 0 0 0 0\n\
   9       0 md0 10 0 20 0 30 0 40 0 0 0 0\n\
   9       1 md0p1 10 0 20 0 30 0 40 0 0 0 0\n\
 179       0 mmcblk0 1 0 2 0 3 0 4 0 0 0 0\n\
 179       1 mmcblk0p1 1 0 2 0 3 0 4 0 0 0 0\n\
   8      32 sdc x 0 2 0 3 0 4 0 0 0 0\n\
   8      48 sdd 1 0 2\n\
garbage\n\n";
        let mut out = Vec::new();
        parse_diskstats(text, &mut out).expect("parse");
        let devices: Vec<&str> = out
            .iter()
            .filter(|s| s.metric == "diskio.reads")
            .filter_map(|s| s.label_value("device"))
            .collect();
        assert_eq!(
            devices,
            ["nvme0n1", "sda", "sdb1", "dm-0", "md0", "mmcblk0"]
        );
        let nvme: Vec<String> = out[..4].iter().map(|s| s.line("h")).collect();
        assert_eq!(
            nvme,
            [
                "h:diskio.read_bytes.nvme0n1:12605195264:DERIVE",
                "h:diskio.write_bytes.nvme0n1:27156836352:DERIVE",
                "h:diskio.reads.nvme0n1:301233:DERIVE",
                "h:diskio.writes.nvme0n1:1108446:DERIVE",
            ]
        );
        assert!(out.iter().all(|s| s.validate().is_ok()));

        // Only loop devices (a container), or nothing: no samples, no error.
        out.clear();
        parse_diskstats(
            "   7       0 loop0 52 0 2172 12 0 0 0 0 0 24 12\n",
            &mut out,
        )
        .expect("loop only");
        parse_diskstats("", &mut out).expect("empty");
        assert!(out.is_empty());
        assert!(parse_diskstats("garbage\n1 2 3\n", &mut out).is_err());

        let many: String = (0..100)
            .map(|i| format!("8 {i} dm-{i} 1 0 2 0 3 0 4 0 0 0 0\n"))
            .collect();
        parse_diskstats(&many, &mut out).expect("many");
        assert_eq!(out.len(), MAX_DEVICES * 4);
    }
}
