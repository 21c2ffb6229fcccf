//! `files.opened` (file handles in use) from /proc/sys/fs/file-nr.

use super::{Collector, Number, Sample, bad_data, read_proc};

/// The open-files collector.
#[derive(Debug)]
pub struct Files;

/// Parses /proc/sys/fs/file-nr (`allocated free max`): in use = allocated − free.
pub fn parse_file_nr(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let mut f = text.split_ascii_whitespace().map(|x| x.parse::<i64>());
    match (f.next(), f.next(), f.next()) {
        (Some(Ok(allocated)), Some(Ok(free)), Some(Ok(max))) => {
            out.push(Sample::gauge(
                "files.opened",
                Number::Int(allocated.saturating_sub(free)),
            ));
            out.push(Sample::gauge("files.max", Number::Int(max)));
            Ok(())
        }
        _ => Err(bad_data("/proc/sys/fs/file-nr: expected three integers")),
    }
}

impl Collector for Files {
    fn name(&self) -> &'static str {
        "files"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        parse_file_nr(&read_proc("/proc/sys/fs/file-nr")?, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_nr() {
        let mut out = Vec::new();
        parse_file_nr("17184\t0\t9223372036854775807\n", &mut out).expect("parse");
        assert_eq!(out[0].line("badass"), "badass:files.opened:17184:GAUGE");
        assert!(parse_file_nr("1 2", &mut out).is_err());
    }
}
