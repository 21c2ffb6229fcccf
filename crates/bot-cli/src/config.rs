//! `bot config show NODE` and `bot config set NODE|-F FILTER KEY=VALUE…`:
//! an agent's live measuring settings (on or off, the interval, which
//! collectors run), through the server's HTTP API like `bot task`. The
//! server stores them and sends them to the agent, which applies them at
//! once and reports them in its status; `show` prints both, and whether
//! they agree.

use std::process::ExitCode;
use std::time::Duration;

use bot_proto::api::{AgentConfigChange, AgentConfigView};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::task::client::{ApiClient, ServerArgs};

/// Agents' live measuring settings.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `bot config` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Show an agent's measuring settings: what the server wants, what the
    /// agent reports in force, and whether they agree.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        /// The agent's id or name.
        node: String,
        /// Print the server's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Change agents' measuring settings, at once, without a restart:
    /// `enabled=true|false`, `interval=5s` (or 500ms, 1m; a bare number is
    /// seconds), `collectors=cpu,memory` (names: load, cpu, memory, disk,
    /// diskio, net, uptime, stat, ps, files). Settings not given keep their
    /// value.
    #[command(
        after_help = "Examples:\n  bot config set web1 collectors=cpu,memory interval=5 enabled=true\n  bot config set -F 'tag:web' enabled=false"
    )]
    Set {
        #[command(flatten)]
        server: ServerArgs,
        /// Agents matching this filter (repeatable: joined with `and`).
        #[arg(short = 'F', long = "filter", value_name = "FILTER")]
        filter: Vec<String>,
        /// The agent (id or name) when no `-F` is given, then KEY=VALUE settings.
        #[arg(value_name = "NODE|KEY=VALUE", num_args = 1.., required = true)]
        args: Vec<String>,
        /// Print the server's JSON answers, one per line.
        #[arg(long)]
        json: bool,
    },
}

/// Parses `KEY=VALUE` settings into a change; the error names the bad one.
pub fn parse_settings(items: &[String]) -> Result<AgentConfigChange, String> {
    let mut change = AgentConfigChange::default();
    if items.is_empty() {
        return Err("nothing to set: give enabled=, interval= or collectors=".into());
    }
    for item in items {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!(
                "{item:?}: expected KEY=VALUE (enabled=, interval=, collectors=)"
            ));
        };
        match key.trim() {
            "enabled" => {
                change.enabled = Some(match value.trim() {
                    "true" | "on" | "yes" | "1" => true,
                    "false" | "off" | "no" | "0" => false,
                    v => return Err(format!("enabled: {v:?} is not true or false")),
                });
            }
            "interval" => {
                let v = value.trim();
                let d = match v.parse::<f64>() {
                    Ok(secs) if secs.is_finite() && secs > 0.0 => Duration::from_secs_f64(secs),
                    Ok(_) => return Err(format!("interval: {v:?} must be positive")),
                    Err(_) => humantime::parse_duration(v)
                        .map_err(|e| format!("interval: {v:?}: {e} (e.g. 5s, 500ms, 1m)"))?,
                };
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                let (lo, hi) = (
                    bot_proto::metrics::MIN_INTERVAL_MS,
                    bot_proto::metrics::MAX_INTERVAL_MS,
                );
                if !(lo..=hi).contains(&ms) {
                    return Err(format!(
                        "interval: {v:?} is outside 100ms..=24h ({lo}..={hi} ms)"
                    ));
                }
                change.interval_ms = Some(ms);
            }
            "collectors" => {
                let list: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                for c in &list {
                    if !bot_proto::metrics::COLLECTORS.contains(&c.as_str()) {
                        return Err(format!(
                            "collectors: unknown collector {c:?} (known: {})",
                            bot_proto::metrics::COLLECTORS.join(", ")
                        ));
                    }
                }
                change.collectors = Some(list);
            }
            k => {
                return Err(format!(
                    "unknown setting {k:?} (settings: enabled, interval, collectors)"
                ));
            }
        }
    }
    Ok(change)
}

fn fmt_interval(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The human view of a config.
pub fn render(name: &str, v: &AgentConfigView) -> String {
    let mut out = format!("agent {name} ({})\n", v.agent_id);
    let (wanted_title, w) = match &v.wanted {
        Some(w) => (
            format!("wanted (revision {}, by {})", w.revision, w.updated_by),
            Some((w.enabled, w.interval_ms, w.collectors.join(","))),
        ),
        None => ("wanted (none set)".to_owned(), None),
    };
    let f = v
        .in_force
        .as_ref()
        .map(|m| (m.enabled, m.interval_ms, m.collectors.join(",")));
    let cell = |x: Option<String>| x.unwrap_or_else(|| "-".to_owned());
    let width = wanted_title.len().max(12);
    out += &format!("{:<12}{:<width$}  in force\n", "", wanted_title);
    let on = |b: bool| if b { "on" } else { "off" }.to_owned();
    for (label, a, b) in [
        (
            "measuring",
            w.as_ref().map(|w| on(w.0)),
            f.as_ref().map(|f| on(f.0)),
        ),
        (
            "interval",
            w.as_ref().map(|w| fmt_interval(w.1)),
            f.as_ref().map(|f| fmt_interval(f.1)),
        ),
        (
            "collectors",
            w.as_ref().map(|w| w.2.clone()),
            f.as_ref().map(|f| f.2.clone()),
        ),
    ] {
        out += &format!("{label:<12}{:<width$}  {}\n", cell(a), cell(b));
    }
    let state = match (&v.wanted, &v.in_force) {
        _ if v.in_sync && v.wanted.is_none() => {
            "state: the agent runs its own settings (none set on the server)".to_owned()
        }
        _ if v.in_sync => "state: in sync".to_owned(),
        (_, None) => "state: waiting for the agent to report its settings".to_owned(),
        (Some(w), Some(m)) if m.revision == w.revision && m.local => format!(
            "state: changed on the agent (classic SEL/UNSEL/TSSET/LUN) since revision {}",
            w.revision
        ),
        (Some(w), Some(_)) => format!(
            "state: applying (the agent has not reported revision {} yet)",
            w.revision
        ),
        (None, Some(_)) => "state: in sync".to_owned(),
    };
    out += &state;
    out.push('\n');
    out
}

fn client(server: &ServerArgs) -> Option<ApiClient> {
    ApiClient::from_args(server)
        .map_err(|e| eprintln!("bot: {e}"))
        .ok()
}

/// Runs `bot config`.
pub async fn run(args: ConfigArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match args.command {
        ConfigCommand::Show { server, node, json } => {
            let Some(client) = client(&server) else {
                return Ok(ExitCode::from(2));
            };
            let v = tokio::select! {
                () = shutdown.cancelled() => return Ok(ExitCode::from(130)),
                r = client.agent_config(&node) => r?,
            };
            if json {
                println!("{}", serde_json::to_string(&v)?);
            } else {
                print!("{}", render(&node, &v));
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Set {
            server,
            filter,
            args,
            json,
        } => {
            let (targets, settings) = if filter.is_empty() {
                (Some(args[0].clone()), &args[1..])
            } else {
                (None, &args[..])
            };
            let change = match parse_settings(settings) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("bot config set: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let Some(client) = client(&server) else {
                return Ok(ExitCode::from(2));
            };
            let nodes: Vec<(String, String)> = match targets {
                Some(n) => vec![(n.clone(), n)],
                None => {
                    let f = crate::fleet::join_filters(&filter).unwrap_or_default();
                    let agents = tokio::select! {
                        () = shutdown.cancelled() => return Ok(ExitCode::from(130)),
                        r = client.agents(&f) => r?,
                    };
                    if agents.is_empty() {
                        eprintln!("bot config set: no known agent matches {f}");
                        return Ok(ExitCode::from(1));
                    }
                    agents.into_iter().map(|a| (a.id, a.name)).collect()
                }
            };
            let mut failed = 0;
            for (id, name) in &nodes {
                let r = tokio::select! {
                    () = shutdown.cancelled() => return Ok(ExitCode::from(130)),
                    r = client.put_agent_config(id, &change) => r,
                };
                match r {
                    Ok(v) if json => println!("{}", serde_json::to_string(&v)?),
                    Ok(v) => {
                        let w = v.wanted.as_ref();
                        println!(
                            "{name}: revision {} sent (measuring {}, interval {}, collectors {})",
                            w.map_or(0, |w| w.revision),
                            if w.is_some_and(|w| w.enabled) {
                                "on"
                            } else {
                                "off"
                            },
                            w.map_or_else(|| "-".into(), |w| fmt_interval(w.interval_ms)),
                            w.map_or_else(String::new, |w| w.collectors.join(","))
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("bot config set: {name}: {e}");
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn settings_parse_and_bad_ones_are_named() {
        let c = parse_settings(&s(&["collectors=cpu,memory", "interval=5", "enabled=true"]))
            .expect("parse");
        assert_eq!(c.collectors, Some(s(&["cpu", "memory"])));
        assert_eq!(c.interval_ms, Some(5_000));
        assert_eq!(c.enabled, Some(true));
        assert_eq!(
            parse_settings(&s(&["interval=500ms"])).map(|c| c.interval_ms),
            Ok(Some(500))
        );
        for (bad, says) in [
            (&["interval=50ms"][..], "outside"),
            (&["interval=soon"], "interval"),
            (&["enabled=maybe"], "enabled"),
            (&["collectors=gpu"], "unknown collector \"gpu\""),
            (&["colour=red"], "unknown setting"),
            (&["cpu"], "KEY=VALUE"),
            (&[], "nothing to set"),
        ] {
            let e = parse_settings(&s(bad)).expect_err("refused");
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
