//! `ps.*`: processes counted by state, from /proc/<pid>/stat.

use super::{Collector, Number, Sample};

/// The process-state collector. Keeps one read buffer between rounds.
#[derive(Debug, Default)]
pub struct Ps {
    buf: String,
}

/// Process counts by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// All processes seen.
    pub processes: i64,
    /// R
    pub runnable: i64,
    /// S
    pub sleeping: i64,
    /// D
    pub uninterruptible: i64,
    /// Z
    pub zombie: i64,
    /// T, t
    pub stopped: i64,
    /// W
    pub paging: i64,
    /// X, x
    pub dead: i64,
    /// I
    pub idle: i64,
}

impl Counts {
    /// Counts one /proc/<pid>/stat line. The state is the first field after
    /// the command name, which is in parentheses and may itself contain spaces
    /// and parentheses: take the text after the last ')'.
    pub fn add_stat_line(&mut self, line: &str) {
        let Some(state) = line
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
        else {
            return;
        };
        self.processes += 1;
        match state {
            'R' => self.runnable += 1,
            'S' => self.sleeping += 1,
            'D' => self.uninterruptible += 1,
            'Z' => self.zombie += 1,
            'T' | 't' => self.stopped += 1,
            'W' => self.paging += 1,
            'X' | 'x' => self.dead += 1,
            'I' => self.idle += 1,
            _ => {}
        }
    }

    /// The samples.
    pub fn samples(&self, out: &mut Vec<Sample>) {
        for (metric, v) in [
            ("ps.processes", self.processes),
            ("ps.uninterruptible", self.uninterruptible),
            ("ps.runnable", self.runnable),
            ("ps.sleeping", self.sleeping),
            ("ps.idle", self.idle),
            ("ps.stopped", self.stopped),
            ("ps.paging", self.paging),
            ("ps.dead", self.dead),
            ("ps.zombie", self.zombie),
        ] {
            out.push(Sample::gauge(metric, Number::Int(v)));
        }
    }
}

impl Collector for Ps {
    fn name(&self) -> &'static str {
        "ps"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        use std::io::Read;
        let mut counts = Counts::default();
        for entry in std::fs::read_dir("/proc")? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            // A process may exit between read_dir and open: skip it.
            let Ok(mut f) = std::fs::File::open(format!("/proc/{name}/stat")) else {
                continue;
            };
            self.buf.clear();
            if f.read_to_string(&mut self.buf).is_ok() {
                counts.add_stat_line(&self.buf);
            }
        }
        counts.samples(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_states_even_with_odd_command_names() {
        let mut c = Counts::default();
        c.add_stat_line("1 (systemd) S 0 1 1");
        c.add_stat_line("2 (a) b) R 1 2");
        c.add_stat_line("3 (x y) Z 1");
        c.add_stat_line("4 (kworker/0:1) I 2");
        c.add_stat_line("5 (dd) D 1");
        c.add_stat_line("6 (vi) T 1");
        c.add_stat_line("garbage without parens");
        assert_eq!(
            c,
            Counts {
                processes: 6,
                runnable: 1,
                sleeping: 1,
                uninterruptible: 1,
                zombie: 1,
                stopped: 1,
                idle: 1,
                ..Counts::default()
            }
        );
        let mut out = Vec::new();
        c.samples(&mut out);
        assert_eq!(out[0].line("badass"), "badass:ps.processes:6:GAUGE");
        assert_eq!(out.len(), 9);
    }
}
