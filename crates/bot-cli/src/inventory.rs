//! `bot inventory NODE`: everything known about one agent (by name or id
//! prefix): its retained status, facts, and a live `status` request.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;
use crate::fleet::{self, Client};

/// Show one agent in full.
#[derive(Debug, Clone, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the agent's live answer.
    #[arg(long, default_value_t = 5.0, value_parser = crate::positive_secs)]
    pub timeout: f64,
    /// Agent name, or id (or a unique prefix of it).
    pub node: String,
}

/// Runs `bot inventory`.
pub async fn run(args: InventoryArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let mut client = Client::connect(&args.bus, "inventory", &shutdown).await?;
    let agents = client.discover(Duration::from_secs(5)).await?;
    let found: Vec<_> = agents
        .values()
        .filter(|s| s.name == args.node || s.id.starts_with(&args.node))
        .collect();
    let status = match found.as_slice() {
        [one] => (*one).clone(),
        [] => bail!(
            "no known agent named {:?} (or with an id starting so)",
            args.node
        ),
        many => bail!(
            "{:?} is ambiguous: {}",
            args.node,
            many.iter()
                .map(|s| fleet::label(&s.name, &s.id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut live = None;
    if status.online {
        let req = fleet::request(
            &args.bus.signer()?,
            bot_proto::Action::Status(bot_proto::action::StatusArgs {}),
            None,
            &client.reply_topic,
            Duration::from_secs(30),
        );
        client
            .send(&bot_proto::topics::request_agent_topic(&status.id), &req)
            .await?;
        let ids = HashSet::from([req.id.clone()]);
        let expected = std::collections::BTreeMap::from([(status.id.clone(), status.name.clone())]);
        let replies = client
            .collect(
                &ids,
                Some(&expected),
                None,
                Duration::from_secs_f64(args.timeout),
                true,
                &shutdown,
            )
            .await;
        live = replies.into_iter().next();
    }
    client.session.close().await;
    if args.json {
        let v = json!({ "status": serde_json::from_slice::<serde_json::Value>(&status.encode())?, "live": live.as_ref().map(|r| &r.data) });
        println!("{}", fleet::to_json(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", fleet::label(&status.name, &status.id));
    println!("  id:        {}", status.id);
    println!(
        "  state:     {}",
        if status.online { "online" } else { "offline" }
    );
    println!("  hostname:  {}", status.hostname);
    println!("  ips:       {}", status.ips.join(", "));
    println!("  version:   {}", status.version);
    println!("  tags:      {}", status.tags.join(", "));
    println!("  pools:     {}", status.pools.join(", "));
    if let Some(r) = &live {
        println!("  uptime:    {} s", r.data["uptime_s"]);
        println!(
            "  measuring: {} (interval {} s)",
            r.data["selected"], r.data["interval_s"]
        );
    } else if status.online {
        println!("  (no live answer within {} s)", args.timeout);
    }
    println!("facts:");
    for (k, v) in &status.facts {
        println!("  {k:<24} {}", crate::facts::text(v));
    }
    Ok(ExitCode::SUCCESS)
}
