//! The agent survives its broker: restarts, outages, failover between brokers,
//! and stops cleanly on SIGTERM.

use anyhow::Result;
use bot_testkit::{free_port, publish};

use crate::{Agent, Broker, BrokerKind, Sub, WAIT, bot, both_brokers};

both_brokers!(
    broker_restart_under_a_running_agent,
    sigterm_stops_the_agent_cleanly
);

/// Fast reconnection for tests (the default backoff tops out at 30 s).
const FAST: &str = "backoff_max = 1.0\nkeep_alive = 5\n";

fn broker_restart_under_a_running_agent(kind: BrokerKind) -> Result<()> {
    let mut broker = Broker::start(kind, bot())?;
    let mut agent = Agent::start(bot(), "phoenix", &[broker.url()], FAST)?;
    broker.restart()?;
    // The agent notices, reconnects with backoff, resubscribes.
    agent.wait_ready()?;
    let mut sub = Sub::start(broker.port, &["RES"])?;
    publish(broker.port, "BUS", b"PING")?;
    let (_, pong) = sub.wait_for("PONG after restart", WAIT, |t, _| t == "RES")?;
    assert_eq!(pong, "'phoenix':PONG");
    assert!(
        agent.is_running(),
        "the agent must not exit on a broker outage"
    );
    Ok(())
}

#[test]
fn fails_over_to_the_next_broker_in_order() -> Result<()> {
    let dead = format!("mqtt://127.0.0.1:{}", free_port());
    let live = Broker::start(BrokerKind::Mosquitto, bot())?;
    let agent = Agent::start(bot(), "nomad", &[dead.clone(), live.url()], FAST)?;
    // It logged the dead broker, then got ready on the live one.
    assert!(
        agent
            .log
            .seen
            .iter()
            // The URL is logged with the agent's user name: match host:port.
            .any(|l| l.contains("cannot connect")
                && l.contains(dead.trim_start_matches("mqtt://"))),
        "no failover logged: {:?}",
        agent.log.seen
    );
    let mut sub = Sub::start(live.port, &["RES"])?;
    publish(live.port, "BUS/nomad", b"PING")?;
    let (_, pong) = sub.wait_for("PONG via the second broker", WAIT, |t, _| t == "RES")?;
    assert_eq!(pong, "'nomad':PONG");
    Ok(())
}

#[test]
fn waits_for_a_broker_that_is_not_up_yet() -> Result<()> {
    // The agent starts first, against a port where nothing listens yet.
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut agent = Agent::spawn(bot(), "early", &[url], FAST)?;
    agent
        .log
        .wait_for("a failed attempt", WAIT, |l| l.contains("cannot connect"))?;
    let broker = Broker::start_at(BrokerKind::Mosquitto, bot(), port)?;
    agent.wait_ready()?;
    let mut sub = Sub::start(broker.port, &["RES"])?;
    publish(broker.port, "BUS/early", b"PING")?;
    let (_, pong) = sub.wait_for("PONG from the early agent", WAIT, |t, _| t == "RES")?;
    assert_eq!(pong, "'early':PONG");
    Ok(())
}

fn sigterm_stops_the_agent_cleanly(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let mut agent = Agent::start(bot(), "leaver", &[broker.url()], "")?;
    let id = agent.id()?;
    let status = agent.terminate()?;
    assert!(status.success(), "exit status {status}");
    agent
        .log
        .wait_for("the stop line", WAIT, |l| l.contains("agent stopped"))?;
    // Read back as a user would: a fresh subscriber gets the retained
    // status, which says offline (a clean DISCONNECT suppresses the will,
    // so the agent must have published it, acknowledged, before leaving).
    let topic = format!("bot/v1/status/{id}");
    let mut sub = Sub::start(broker.port, &[topic.as_str()])?;
    let (_, status) = sub
        .next(WAIT)
        .ok_or_else(|| anyhow::anyhow!("no retained status for {id}"))?;
    assert!(
        status.contains("\"online\":false"),
        "after a clean stop the retained status is {status}"
    );
    Ok(())
}
