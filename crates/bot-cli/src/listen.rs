//! `bot listen`: print what flows on the bus, one `topic payload` line per
//! message, like `mosquitto_sub -v`; on a terminal, control characters are
//! shown escaped (a payload could otherwise retitle or drive the terminal).

use std::io::Write;
use std::process::ExitCode;

use bot_bus::{Event, Qos};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;

/// Print messages from the bus as `topic payload` lines.
///
/// On a terminal, control characters (ESC, BEL, newlines…) are shown
/// escaped (`\x1b`); into a pipe or file, payloads pass unchanged.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Exit after this many messages.
    #[arg(short = 'C', long)]
    pub count: Option<u64>,
    /// Exit after this many seconds.
    #[arg(short = 'W', long, value_parser = crate::positive_secs)]
    pub timeout: Option<f64>,
    /// Topic filters (MQTT wildcards allowed).
    #[arg(default_values_t = ["RES/#".to_string(), "DATA/#".to_string()], value_parser = filter)]
    pub topics: Vec<String>,
}

/// Validates a subscription filter: `#` only last and alone in its level, `+` alone in its level.
pub fn filter(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 65_535 {
        return Err(format!("topic filter {s:?} must be 1..65535 bytes"));
    }
    let levels: Vec<&str> = s.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err(format!(
                "topic filter {s:?}: '#' must be a whole last level"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("topic filter {s:?}: '+' must be a whole level"));
        }
    }
    Ok(s.to_owned())
}

/// Runs `bot listen`.
pub async fn run(args: ListenArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let subs = args
        .topics
        .iter()
        .map(|t| (t.clone(), Qos::AtMostOnce))
        .collect();
    let mut session = crate::connect(&args.bus, "listen", subs, &shutdown).await?;
    eprintln!("listening on {}", args.topics.join(" "));
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + std::time::Duration::from_secs_f64(s));
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    // On a terminal, bytes from the bus could retitle it or worse (ESC
    // sequences): they are shown escaped. Piped, they pass unchanged.
    let terminal = std::io::IsTerminal::is_terminal(&stdout);
    loop {
        if args.count.is_some_and(|c| seen >= c) {
            break;
        }
        let ev = tokio::select! {
            ev = session.events.recv() => ev,
            () = shutdown.cancelled() => break,
            () = sleep_until(deadline) => break,
        };
        match ev {
            Some(Event::Message(m)) => {
                seen += 1;
                let mut out = stdout.lock();
                // Raw bytes, like mosquitto_sub; a failed write (closed pipe) ends the command.
                let (topic, payload) = if terminal {
                    (
                        escape_controls(m.topic.as_bytes()),
                        escape_controls(&m.payload),
                    )
                } else {
                    (m.topic.as_bytes().to_vec(), m.payload.to_vec())
                };
                let ok = out.write_all(&topic).is_ok()
                    && out.write_all(b" ").is_ok()
                    && out.write_all(&payload).is_ok()
                    && out.write_all(b"\n").is_ok()
                    && out.flush().is_ok();
                if !ok {
                    break;
                }
            }
            Some(Event::Disconnected { broker, reason }) => {
                eprintln!("disconnected from {broker}: {reason}; reconnecting")
            }
            Some(_) => {}
            None => break,
        }
    }
    session.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// `bytes` with control characters (C0, DEL, C1) and invalid UTF-8 shown
/// escaped (`\x1b`, `\u{9b}`), so that nothing from the bus can drive the
/// terminal; tabs are kept, newlines escaped (one message, one line).
pub fn escape_controls(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\t' || !c.is_control() {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_bytes_are_escaped() {
        let shown = super::escape_controls(b"\x1b]0;title\x07ok\tx\n\xc2\x9b");
        assert_eq!(
            String::from_utf8_lossy(&shown),
            "\\x1b]0;title\\x07ok\tx\\x0a\\u{9b}"
        );
        assert_eq!(
            super::escape_controls("né 4:".as_bytes()),
            "né 4:".as_bytes()
        );
    }
}
