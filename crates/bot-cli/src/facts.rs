//! `bot facts [-F FILTER] [FACT…]`: the values of facts across the fleet, as
//! a table of value → count (like `mco facts`), from the agents' retained
//! status (no request needed: the status carries the facts).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;
use crate::fleet::{self, Client};

/// Show fact values across the fleet with counts.
#[derive(Debug, Clone, Args)]
pub struct FactsArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Only agents matching this filter; repeat to narrow (joined with `and`).
    #[arg(short = 'F', long)]
    pub filter: Vec<String>,
    /// Only online agents: matching agents that are known but offline are
    /// not reported and do not make the exit code 1.
    #[arg(long)]
    pub online: bool,
    /// Print JSON: {fact: {value: [agent names]}}.
    #[arg(long)]
    pub json: bool,
    /// Facts to show (default: the list of fact names with how many agents have each).
    pub facts: Vec<String>,
}

/// The text form of a fact value for grouping.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `bot facts`.
pub async fn run(args: FactsArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let filter = crate::fleet::join_filters(&args.filter)
        .as_deref()
        .map(fleet::parse_filter)
        .transpose()?;
    let mut client = Client::connect(&args.bus, "facts", &shutdown).await?;
    let agents = client.discover(Duration::from_secs(5)).await?;
    client.session.close().await;
    let matched: Vec<_> = agents
        .values()
        .filter(|s| s.online && filter.as_ref().is_none_or(|f| f.matches(*s)))
        .collect();
    let offline = if args.online {
        Vec::new()
    } else {
        fleet::offline(&agents, filter.as_ref())
    };
    if matched.is_empty() {
        eprintln!("no online agent matches");
        fleet::report_offline(&offline);
        return Ok(ExitCode::from(1));
    }
    let mut table: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let names: Vec<String> = if args.facts.is_empty() {
        let mut all: Vec<String> = matched
            .iter()
            .flat_map(|s| s.facts.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    } else {
        args.facts.clone()
    };
    for fact in &names {
        let by_value = table.entry(fact.clone()).or_default();
        for s in &matched {
            let value = match s.facts.get(fact) {
                Some(v) if args.facts.is_empty() => {
                    let _ = v;
                    "(present)".to_owned()
                }
                Some(v) => text(v),
                None => "(missing)".to_owned(),
            };
            by_value.entry(value).or_default().push(s.name.clone());
        }
    }
    // The table is of online agents; offline matches are named on stderr
    // and make the exit code 1 (unless --online).
    let code = if fleet::report_offline(&offline) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&table)?);
        return Ok(code);
    }
    if args.facts.is_empty() {
        println!("{} agents; facts (agents that have each):", matched.len());
        for (fact, by_value) in &table {
            let n = by_value.get("(present)").map_or(0, Vec::len);
            println!("  {fact:<32} {n}");
        }
        return Ok(code);
    }
    for (fact, by_value) in &table {
        println!("{fact}:");
        let width = by_value
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(0)
            .min(60);
        for (value, who) in by_value {
            println!("  {value:<width$}  {:>5}", who.len());
        }
    }
    Ok(code)
}
