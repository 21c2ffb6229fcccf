//! `net.*` per network interface from /proc/net/dev (DERIVE, since the
//! interface came up): `net.rx_bytes`, `net.tx_bytes`, `net.rx_packets`,
//! `net.tx_packets`, `net.rx_errors`, `net.tx_errors`; label `iface`
//! (`lo` included), at most [`MAX_IFACES`] interfaces.

use std::collections::HashSet;

use super::{Collector, Sample, bad_data, read_proc};

/// Most interfaces reported in one round.
pub const MAX_IFACES: usize = 64;

/// The network collector.
#[derive(Debug)]
pub struct Net;

/// The metrics and their column after the `iface:` (receive: bytes
/// packets errs drop fifo frame compressed multicast; transmit: bytes
/// packets errs …).
const COLUMNS: [(&str, usize); 6] = [
    ("net.rx_bytes", 0),
    ("net.tx_bytes", 8),
    ("net.rx_packets", 1),
    ("net.tx_packets", 9),
    ("net.rx_errors", 2),
    ("net.tx_errors", 10),
];

/// Parses /proc/net/dev into samples (the two header lines have no `:`).
pub fn parse_net_dev(text: &str, out: &mut Vec<Sample>) -> std::io::Result<()> {
    let mut seen = HashSet::new();
    for line in text.lines() {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        let iface = iface.trim();
        let f: Vec<i64> = rest
            .split_ascii_whitespace()
            .map_while(|v| v.parse::<i64>().ok().filter(|v| *v >= 0))
            .collect();
        if iface.is_empty() || iface.contains(char::is_whitespace) || f.len() < 11 {
            continue;
        }
        if seen.contains(iface) {
            continue;
        }
        if seen.len() == MAX_IFACES {
            break;
        }
        seen.insert(iface);
        for (metric, col) in COLUMNS {
            if let Some(v) = f.get(col) {
                out.push(Sample::derive(metric, *v).label("iface", iface));
            }
        }
    }
    if seen.is_empty() {
        return Err(bad_data("/proc/net/dev: no interface"));
    }
    Ok(())
}

impl Collector for Net {
    fn name(&self) -> &'static str {
        "net"
    }
    fn collect(&mut self, out: &mut Vec<Sample>) -> std::io::Result<()> {
        parse_net_dev(&read_proc("/proc/net/dev")?, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo: 11010638959 4138558    0  117    0     0          0         0 11010638959 4138558    0    0    0     0       0          0\n  \
eth0: 273610219   20570    3    0    0     0          0         0  1720737   20702    7    0    0     0       0          0\n\
wlan0:1 2 3\n\
bad0: x 1 2 3 4 5 6 7 8 9 10 11\n\
docker0:  100 2 0 0 0 0 0 0 200 3 0 0 0 0 0 0\n\
garbage\n";
        let mut out = Vec::new();
        parse_net_dev(text, &mut out).expect("parse");
        let lines: Vec<String> = out.iter().map(|s| s.line("h")).collect();
        assert_eq!(
            lines[6..12],
            [
                "h:net.rx_bytes.eth0:273610219:DERIVE",
                "h:net.tx_bytes.eth0:1720737:DERIVE",
                "h:net.rx_packets.eth0:20570:DERIVE",
                "h:net.tx_packets.eth0:20702:DERIVE",
                "h:net.rx_errors.eth0:3:DERIVE",
                "h:net.tx_errors.eth0:7:DERIVE",
            ]
        );
        let ifaces: Vec<&str> = out
            .iter()
            .filter(|s| s.metric == "net.rx_bytes")
            .filter_map(|s| s.label_value("iface"))
            .collect();
        assert_eq!(ifaces, ["lo", "eth0", "docker0"]);
        assert!(out.iter().all(|s| s.validate().is_ok()));
        assert!(parse_net_dev("Inter-|\n face |\n", &mut out).is_err());

        out.clear();
        let many: String = (0..100)
            .map(|i| format!("veth{i}: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"))
            .collect();
        parse_net_dev(&many, &mut out).expect("many");
        assert_eq!(out.len(), MAX_IFACES * 6);
    }
}
