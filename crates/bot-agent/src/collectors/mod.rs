//! Built-in metric collectors. Each one has the same shape: a `parse_*`
//! function from the text of a /proc file to samples (pure, unit-tested with
//! fixtures) and a [`Collector`] that reads the file. They read /proc
//! directly: no shelling out, no extra crates.

mod files;
mod load;
pub(crate) mod memory;
mod ps;
mod stat;

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
            assert!(out.len() > before, "{} produced nothing", c.name());
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
        ] {
            assert!(metrics.contains(&want), "missing {want} in {metrics:?}");
        }
    }
}
