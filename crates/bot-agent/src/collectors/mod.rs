//! Built-in metric collectors. Each one has the same shape: a `parse_*`
//! function from the text of a /proc file to samples (pure, unit-tested with
//! fixtures) and a [`Collector`] that reads the file. They read /proc
//! directly: no shelling out, no extra crates.
//!
//! - `load`: `cpu.load`, `cpu.load5`, `cpu.load15` (/proc/loadavg).
//! - `cpu`: `cpu.usage`, `cpu.user`, `cpu.system`, `cpu.iowait`,
//!   `cpu.steal` in percent since the previous round, label `cpu`
//!   (`total`, `0`, `1`, …) (/proc/stat).
//! - `memory`: `memory.*` in bytes, with `memory.used`,
//!   `memory.used_percent` and `memory.swap_used` (/proc/meminfo).
//! - `disk`: `disk.total`, `disk.used`, `disk.free`, `disk.used_percent`,
//!   label `mount` (/proc/self/mounts and statvfs).
//! - `diskio`: `diskio.read_bytes`, `diskio.write_bytes`, `diskio.reads`,
//!   `diskio.writes`, label `device` (/proc/diskstats).
//! - `net`: `net.{rx,tx}_{bytes,packets,errors}`, label `iface`
//!   (/proc/net/dev).
//! - `uptime`: `uptime` in seconds (/proc/uptime).
//! - `stat`: `stat.*`, interrupts, context switches, forks, running and
//!   blocked processes (/proc/stat).
//! - `ps`: `ps.*`, processes by state (`/proc/<pid>/stat`).
//! - `files`: `files.opened` (/proc/sys/fs/file-nr).

mod cpu;
mod disk;
mod diskio;
mod files;
mod load;
pub(crate) mod memory;
mod net;
mod ps;
mod stat;
mod uptime;

pub use bot_proto::metrics::{Kind, Number, Sample};

/// A built-in collector.
pub trait Collector: Send {
    /// Its configuration name (`load`, `stat`, …).
    fn name(&self) -> &'static str;
    /// Appends this round's samples. An error is reported as a `core.collector_error` sample.
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()>;
}

/// Builds the named collectors (names were validated with the config).
pub fn build(names: &[String]) -> Vec<Box<dyn Collector>> {
    names
        .iter()
        .filter_map(|n| -> Option<Box<dyn Collector>> {
            match n.as_str() {
                "load" => Some(Box::new(load::Load)),
                "cpu" => Some(Box::new(cpu::Cpu::default())),
                "disk" => Some(Box::new(disk::Disk)),
                "diskio" => Some(Box::new(diskio::DiskIo)),
                "net" => Some(Box::new(net::Net)),
                "uptime" => Some(Box::new(uptime::Uptime)),
                "stat" => Some(Box::new(stat::Stat)),
                "ps" => Some(Box::new(ps::Ps::default())),
                "files" => Some(Box::new(files::Files)),
                "memory" => Some(Box::new(memory::Memory)),
                _ => None,
            }
        })
        .collect()
}

/// Reads a small /proc file into a string.
fn read_proc(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

fn bad_data(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_collects_on_this_machine() {
        let names: Vec<String> = crate::config::COLLECTORS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut collectors = build(&names);
        assert_eq!(collectors.len(), names.len());
        let mut out = Vec::new();
        for c in collectors.iter_mut() {
            let before = out.len();
            c.collect(&mut out)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name()));
            // A container may have no block device at all.
            if c.name() != "diskio" {
                assert!(out.len() > before, "{} produced nothing", c.name());
            }
        }
        let metrics: Vec<&str> = out.iter().map(|s| s.metric.as_str()).collect();
        for want in [
            "cpu.load",
            "stat.procs_running",
            "stat.procs_blocked",
            "stat.intr",
            "stat.ctxt",
            "stat.processes",
            "ps.processes",
            "ps.uninterruptible",
            "ps.runnable",
            "ps.sleeping",
            "ps.idle",
            "ps.stopped",
            "ps.paging",
            "ps.dead",
            "ps.zombie",
            "files.opened",
            "memory.total",
            "memory.available",
            "memory.used",
            "memory.used_percent",
            "cpu.usage",
            "cpu.user",
            "cpu.system",
            "uptime",
            "net.rx_bytes",
            "net.tx_bytes",
            "disk.total",
            "disk.used_percent",
        ] {
            assert!(metrics.contains(&want), "missing {want} in {metrics:?}");
        }
        for s in &out {
            assert_eq!(s.validate(), Ok(()), "{s:?}");
        }
        assert!(
            out.iter()
                .any(|s| s.metric == "cpu.usage" && s.label_value("cpu") == Some("total"))
        );
        assert!(
            out.iter()
                .any(|s| s.metric == "disk.total" && s.label_value("mount") == Some("/"))
        );
    }
}
