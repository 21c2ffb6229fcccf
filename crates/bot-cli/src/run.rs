//! `bot run [-F FILTER] -- COMMAND ARGS…`: run a command on every matching
//! agent (or `--batch N` agents at a time, or on `--any N` idle agents of a
//! pool), show each node's exit code and output, then a summary: ok, failed
//! (with exit codes), and who did not reply. Exit code 1 when anything failed
//! or did not reply. `--reply-to TOPIC` sends and exits (fire and forget):
//! `bot results --topic TOPIC` collects the replies.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use bot_proto::action::ExecArgs;
use bot_proto::envelope::{Reply, ReplyStatus};
use bot_proto::{Action, topics};
use clap::Args;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::BusArgs;
use crate::fleet::{self, Client};

/// Run a command on many agents at once.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Only agents matching this filter (e.g. 'os=linux and cpus>=4', 'web*', 'tag:db'); repeat to narrow (joined with `and`).
    #[arg(short = 'F', long)]
    pub filter: Vec<String>,
    /// Seconds the command may run on each agent before its process group is killed.
    #[arg(long, default_value_t = 60.0, value_parser = crate::positive_secs)]
    pub timeout: f64,
    /// Run on this many agents at a time (default: all at once).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// Give the job to any N idle agents of --pool (a work queue).
    #[arg(long, requires = "pool", conflicts_with_all = ["batch", "filter"], value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub any: Option<u32>,
    /// Work-queue pool for --any.
    #[arg(long, requires = "any", value_parser = pool_name)]
    pub pool: Option<String>,
    /// Send replies to this topic and exit after printing the request id.
    #[arg(long, value_parser = reply_topic, conflicts_with = "batch")]
    pub reply_to: Option<String>,
    /// Run the command with /bin/sh -c (the arguments are joined with spaces).
    #[arg(long)]
    pub shell: bool,
    /// Only online agents: matching agents that are known but offline are
    /// not reported and do not make the exit code 1.
    #[arg(long)]
    pub online: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds a request stays valid in transit; agents ignore it after that.
    #[arg(long, default_value_t = 60.0, value_parser = crate::positive_secs)]
    pub ttl: f64,
    /// The command and its arguments (after --).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

fn pool_name(s: &str) -> Result<String, String> {
    bot_proto::topics::valid_topic_level(s)
        .map(|()| s.to_owned())
        .map_err(|e| format!("pool {s:?}: {e}"))
}

fn reply_topic(s: &str) -> Result<String, String> {
    bot_proto::topics::valid_publish_topic(s)
        .map(|()| s.to_owned())
        .map_err(|e| format!("reply topic {s:?}: {e}"))
}

fn exec_args(args: &RunArgs) -> Action {
    let a = if args.shell {
        ExecArgs::shell(args.command.join(" "))
    } else {
        ExecArgs::command(args.command.clone())
    };
    Action::Exec(ExecArgs {
        timeout_s: Some(args.timeout),
        ..a
    })
}

/// Runs `bot run`.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let filter = crate::fleet::join_filters(&args.filter)
        .as_deref()
        .map(fleet::parse_filter)
        .transpose()?;
    let signer = args.bus.signer()?;
    // The session does not stop with Ctrl-C: the first one still has to
    // send `cancel` and hear back (see `cancel_running`).
    let mut client = Client::connect(&args.bus, "run", &CancellationToken::new()).await?;
    let ttl = Duration::from_secs_f64(args.ttl);
    let wait = Duration::from_secs_f64(args.timeout) + Duration::from_secs(5);

    if let Some(reply_to) = &args.reply_to {
        let req = fleet::request(
            &signer,
            exec_args(&args),
            crate::fleet::join_filters(&args.filter),
            reply_to,
            ttl,
        );
        match (&args.any, &args.pool) {
            (Some(n), Some(pool)) => {
                for _ in 0..*n {
                    let req = fleet::request(&signer, exec_args(&args), None, reply_to, ttl);
                    client.send(&topics::request_pool_topic(pool), &req).await?;
                    println!("{}", req.id);
                }
            }
            _ => {
                client.send(topics::REQUEST_BROADCAST, &req).await?;
                println!("{}", req.id);
            }
        }
        client.session.close().await;
        return Ok(ExitCode::SUCCESS);
    }

    let mut offline = Vec::new();
    let mut interrupted = false;
    let (replies, expected) = if let (Some(n), Some(pool)) = (args.any, &args.pool) {
        let mut ids = HashSet::new();
        for _ in 0..n {
            let req = fleet::request(&signer, exec_args(&args), None, &client.reply_topic, ttl);
            ids.insert(req.id.clone());
            client.send(&topics::request_pool_topic(pool), &req).await?;
        }
        let replies = client
            .collect(&ids, None, Some(n as usize), wait, args.json, &shutdown)
            .await;
        if replies.len() < n as usize {
            eprintln!(
                "only {} of {n} jobs were taken by pool {pool:?} within {} s",
                replies.len(),
                wait.as_secs()
            );
        }
        (replies, None)
    } else {
        let agents = client.discover(Duration::from_secs(5)).await?;
        let expected = fleet::expected(&agents, filter.as_ref());
        if !args.online {
            offline = fleet::offline(&agents, filter.as_ref());
        }
        if expected.is_empty() {
            client.session.close().await;
            if !offline.is_empty() {
                fleet::report_offline(&offline);
            }
            bail!(
                "no online agent matches{}",
                crate::fleet::join_filters(&args.filter)
                    .as_deref()
                    .map(|f| format!(" filter {f:?}"))
                    .unwrap_or_default()
            );
        }
        if shutdown.is_cancelled() {
            // Interrupted before anything was sent.
            client.session.close().await;
            return Ok(ExitCode::from(130));
        }
        let mut replies = Vec::new();
        let mut expected = expected;
        match args.batch {
            None => {
                let req = fleet::request(
                    &signer,
                    exec_args(&args),
                    crate::fleet::join_filters(&args.filter),
                    &client.reply_topic,
                    ttl,
                );
                let ids = HashSet::from([req.id.clone()]);
                client.send(topics::REQUEST_BROADCAST, &req).await?;
                replies = client
                    .collect(&ids, Some(&expected), None, wait, args.json, &shutdown)
                    .await;
                if shutdown.is_cancelled() {
                    interrupted = true;
                    let more =
                        cancel_running(&mut client, &signer, &req, &expected, &replies, args.json)
                            .await?;
                    replies.extend(more);
                }
            }
            Some(size) => {
                let all: Vec<(String, String)> = expected
                    .iter()
                    .map(|(a, b)| (a.clone(), b.clone()))
                    .collect();
                let mut asked = BTreeMap::new();
                for chunk in all.chunks(size as usize) {
                    let batch: BTreeMap<String, String> = chunk.iter().cloned().collect();
                    let req =
                        fleet::request(&signer, exec_args(&args), None, &client.reply_topic, ttl);
                    let ids = HashSet::from([req.id.clone()]);
                    for id in batch.keys() {
                        client.send(&topics::request_agent_topic(id), &req).await?;
                    }
                    asked.extend(batch.clone());
                    let got = client
                        .collect(&ids, Some(&batch), None, wait, args.json, &shutdown)
                        .await;
                    if shutdown.is_cancelled() {
                        interrupted = true;
                        let more =
                            cancel_running(&mut client, &signer, &req, &batch, &got, args.json)
                                .await?;
                        replies.extend(got);
                        replies.extend(more);
                        // Later batches were never asked: not "no reply".
                        expected = asked;
                        break;
                    }
                    replies.extend(got);
                }
            }
        }
        (replies, Some(expected))
    };
    client.session.close().await;
    let code = report(&args, &replies, expected.as_ref(), &offline);
    Ok(if interrupted {
        ExitCode::from(130)
    } else {
        code
    })
}

/// How long an interrupted `bot run` waits for the agents it told to
/// cancel to say how their command ended.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// The first Ctrl-C: tells the agents of `asked` that have not answered
/// `req` yet to cancel it (a signed `cancel` on each one's request topic),
/// then collects, for up to [`CANCEL_GRACE`], how their commands ended. A
/// second Ctrl-C exits at once (130).
async fn cancel_running(
    client: &mut Client,
    signer: &bot_auth::Signer,
    req: &bot_proto::envelope::Request,
    asked: &BTreeMap<String, String>,
    got: &[Reply],
    quiet: bool,
) -> anyhow::Result<Vec<Reply>> {
    let running: BTreeMap<String, String> = fleet::no_reply(asked, got)
        .into_iter()
        .map(|(id, name)| (id.to_owned(), name.to_owned()))
        .collect();
    if running.is_empty() {
        return Ok(Vec::new());
    }
    eprintln!(
        "interrupted: cancelling the command on {} agent{} still running (Ctrl-C again to quit at once)",
        running.len(),
        if running.len() == 1 { "" } else { "s" }
    );
    let cancel = fleet::request(
        signer,
        Action::Cancel(bot_proto::action::CancelArgs {
            request_id: req.id.clone(),
        }),
        None,
        &client.reply_topic,
        CANCEL_GRACE,
    );
    for id in running.keys() {
        client
            .send(&topics::request_agent_topic(id), &cancel)
            .await?;
    }
    let ids = HashSet::from([req.id.clone()]);
    Ok(client
        .collect(
            &ids,
            Some(&running),
            None,
            CANCEL_GRACE,
            quiet,
            &CancellationToken::new(),
        )
        .await)
}

fn failed(r: &Reply) -> bool {
    r.status != ReplyStatus::Ok
}

fn report(
    args: &RunArgs,
    replies: &[Reply],
    expected: Option<&BTreeMap<String, String>>,
    offline: &[fleet::OfflineAgent],
) -> ExitCode {
    let empty = BTreeMap::new();
    let missing = fleet::no_reply(expected.unwrap_or(&empty), replies);
    let ok = replies.iter().filter(|r| !failed(r)).count();
    let bad: Vec<&Reply> = replies.iter().filter(|r| failed(r)).collect();
    if args.json {
        let v = json!({
            "command": args.command,
            "replies": replies.iter().map(|r| json!({
                "id": r.agent_id, "name": r.agent_name, "status": fleet::status_word(r.status),
                "exit_code": r.data.get("exit_code"), "stdout": r.data.get("stdout"), "stderr": r.data.get("stderr"),
                "error": r.error, "duration_ms": r.duration_ms,
            })).collect::<Vec<_>>(),
            "no_reply": missing.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
            "offline": fleet::offline_json(offline),
            "summary": {"ok": ok, "failed": bad.len(), "no_reply": missing.len(), "offline": offline.len()},
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        for r in replies {
            fleet::print_reply(r, false);
        }
        let expected_n = expected.map_or(replies.len(), BTreeMap::len);
        if offline.is_empty() {
            println!(
                "summary: {ok} ok, {} failed, {} no reply (of {expected_n} expected)",
                bad.len(),
                missing.len(),
            );
        } else {
            println!(
                "summary: {ok} ok, {} failed, {} no reply, {} offline (of {} matching)",
                bad.len(),
                missing.len(),
                offline.len(),
                expected_n + offline.len()
            );
        }
        if !bad.is_empty() {
            let list: Vec<String> = bad
                .iter()
                .map(|r| {
                    let why = match r.data.get("exit_code").and_then(Value::as_i64) {
                        Some(c) => format!("exit {c}"),
                        None => fleet::status_word(r.status).to_owned(),
                    };
                    format!("{} [{why}]", r.agent_name)
                })
                .collect();
            println!("failed: {}", list.join(", "));
        }
    }
    let all = fleet::report_missing(&missing);
    let none_offline = fleet::report_offline(offline);
    if bad.is_empty() && all && none_offline && !replies.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
