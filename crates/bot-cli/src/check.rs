//! `bot check [-F FILTER] NAME`: run the check `NAME` (configured on the
//! agents as `[checks.NAME]`) on every matching agent at once, and print
//! each agent's Nagios state and output, then the counts per state and who
//! did not answer. The request is the signed `check` action: a key trusted
//! for `check` only may use it.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use bot_proto::action::{CheckArgs, CheckResult};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;
use crate::fleet::{self, Client};

/// Run a named check on agents (Nagios semantics) and list their states.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit code: 0 when every matching agent answered OK; 1 when one is WARNING, CRITICAL or UNKNOWN, did not answer, or is offline; 2 for bad usage."
)]
pub struct CheckCmdArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Only agents matching this filter; repeat to narrow (joined with `and`).
    #[arg(short = 'F', long)]
    pub filter: Vec<String>,
    /// Only online agents: matching agents that are known but offline are
    /// not reported and do not make the exit code 1.
    #[arg(long)]
    pub online: bool,
    /// Print JSON: every reply's check result, no-reply and offline lists.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the results (checks time out on the agents).
    #[arg(short = 'w', long, default_value_t = 70.0, value_parser = crate::positive_secs)]
    pub wait: f64,
    /// The check's name (`[checks.NAME]` in the agents' config).
    #[arg(value_parser = check_name)]
    pub name: String,
}

fn check_name(s: &str) -> Result<String, String> {
    bot_proto::action::check_name(s).map(|()| s.to_owned())
}

/// Runs `bot check`.
pub async fn run(args: CheckCmdArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let filter_text = fleet::join_filters(&args.filter);
    let filter = filter_text
        .as_deref()
        .map(fleet::parse_filter)
        .transpose()?;
    let signer = args.bus.signer()?;
    let mut client = Client::connect(&args.bus, "check", &shutdown).await?;
    let wait = Duration::from_secs_f64(args.wait);
    let req = fleet::request(
        &signer,
        bot_proto::Action::Check(CheckArgs {
            name: args.name.clone(),
        }),
        filter_text.clone(),
        &client.reply_topic,
        wait.max(Duration::from_secs(10)),
    );
    let ids = HashSet::from([req.id.clone()]);
    client.start_discovery().await?;
    client
        .send(bot_proto::topics::REQUEST_BROADCAST, &req)
        .await?;
    let agents = client.discover(Duration::from_secs(5)).await?;
    let expected = fleet::expected(&agents, filter.as_ref());
    let offline = if args.online {
        Vec::new()
    } else {
        fleet::offline(&agents, filter.as_ref())
    };
    let replies = client
        .collect(&ids, Some(&expected), None, wait, args.json, &shutdown)
        .await;
    let missing = fleet::no_reply(&expected, &replies);
    client.session.close().await;

    let mut counts: BTreeMap<&str, usize> = ["OK", "WARNING", "CRITICAL", "UNKNOWN"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    let mut all_ok = true;
    let mut rows = Vec::new();
    for r in &replies {
        let (state, text) = match serde_json::from_value::<CheckResult>(r.data.clone()) {
            Ok(c) if r.status == bot_proto::ReplyStatus::Ok => {
                let text = match &c.reason {
                    Some(why) if c.output.is_empty() => why.clone(),
                    Some(why) => format!("{} ({why})", c.output),
                    None => c.output.clone(),
                };
                (c.state, text)
            }
            _ => (
                "UNKNOWN".to_owned(),
                r.error
                    .clone()
                    .unwrap_or_else(|| format!("status {}", fleet::status_word(r.status))),
            ),
        };
        if state != "OK" {
            all_ok = false;
        }
        if let Some(n) = counts.get_mut(state.as_str()) {
            *n += 1;
        }
        rows.push((fleet::label(&r.agent_name, &r.agent_id), state, text, r));
    }
    if args.json {
        let v = serde_json::json!({
            "request_id": req.id,
            "check": args.name,
            "replies": rows.iter().map(|(_, state, text, r)| serde_json::json!({
                "id": r.agent_id, "name": r.agent_name, "state": state, "output": text,
                "result": r.data,
            })).collect::<Vec<_>>(),
            "no_reply": missing.iter().map(|(id, name)| serde_json::json!({"id": id, "name": name})).collect::<Vec<_>>(),
            "offline": fleet::offline_json(&offline),
        });
        println!("{}", fleet::to_json(&v)?);
    } else {
        rows.sort_by(|a, b| state_rank(&b.1).cmp(&state_rank(&a.1)).then(a.0.cmp(&b.0)));
        for (label, state, text, _) in &rows {
            println!("{label:<32} {state:<9} {text}");
        }
        println!(
            "check {}: {} OK, {} WARNING, {} CRITICAL, {} UNKNOWN of {} expected",
            args.name,
            counts["OK"],
            counts["WARNING"],
            counts["CRITICAL"],
            counts["UNKNOWN"],
            expected.len()
        );
    }
    let answered = fleet::report_missing(&missing);
    let none_offline = fleet::report_offline(&offline);
    if replies.is_empty() && expected.is_empty() {
        eprintln!(
            "no known agent matches{}",
            filter_text
                .as_deref()
                .map(|f| format!(" filter {f:?}"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if all_ok && answered && none_offline {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Worst first: CRITICAL, WARNING, UNKNOWN, OK.
fn state_rank(s: &str) -> u8 {
    match s {
        "CRITICAL" => 3,
        "WARNING" => 2,
        "UNKNOWN" => 1,
        _ => 0,
    }
}
