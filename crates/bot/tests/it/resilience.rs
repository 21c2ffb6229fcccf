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

/// Issue 12: idle sockets cannot take `bot up`'s descriptors. Under a
/// descriptor limit of 1,024, 1,500 sockets that never send CONNECT are
/// opened on the MQTT port: the broker closes the ones beyond its cap at
/// once (and says so), so the health route still answers and the local
/// agent still answers a ping sent through the API, while they are held.
/// Before, the process ran out of descriptors and both stopped.
#[test]
fn bot_up_keeps_its_agent_and_api_under_an_idle_socket_flood() -> Result<()> {
    use std::process::Stdio;
    use std::time::Duration;
    let state = bot_testkit::TempDir::new("up-flood");
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=1024:1024").arg(bot());
    let mut up = cmd
        .env("BOT_STATE_DIR", state.path())
        .env("BOT_DATA_DIR", state.path().join("server"))
        .env("BOT_LOG", "info")
        .args(["up", "--listen", "127.0.0.1:0", "--no-ws"])
        .args(["--http", "127.0.0.1:0", "--name", "flooded"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let result = (|| -> Result<()> {
        let no_pipe = || anyhow::anyhow!("no pipe");
        let mut out = bot_testkit::Lines::from_pipe(up.stdout.take().ok_or_else(no_pipe)?);
        let mut log = bot_testkit::Lines::from_pipe(up.stderr.take().ok_or_else(no_pipe)?);
        let mqtt = out.wait_for("the mqtt line", WAIT, |l| {
            l.starts_with("listening: mqtt://")
        })?;
        let mqtt = mqtt.trim_start_matches("listening: mqtt://").to_owned();
        let http = out.wait_for("the http line", WAIT, |l| {
            l.starts_with("listening: http://")
        })?;
        let base = http
            .trim_start_matches("listening: ")
            .trim_end_matches("/api")
            .to_owned();
        let token = out.wait_for("the token line", WAIT, |l| l.starts_with("api token: "))?;
        let token = token.trim_start_matches("api token: ").to_owned();
        // The caps were fitted to the limit, and the log says so.
        log.wait_for("the descriptor warning", WAIT, |l| {
            l.contains("descriptor limit") && l.contains("pending CONNECTs")
        })?;
        log.wait_for("the local agent's ready line", WAIT, |l| {
            l.contains("ready: listening on BUS")
        })?;
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let ping = |what: &str| -> Result<()> {
            let mut r = http
                .post(&format!("{base}/api/call"))
                .header("Authorization", &format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(br#"{"action":"ping","filter":"flooded","timeout_s":5}"#)?;
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string()?;
            anyhow::ensure!(
                status == 200 && body.contains(r#""status":"ok""#),
                "{what}: {status} {body}"
            );
            Ok(())
        };
        // The server learns of its agent from the agent's status.
        let deadline = std::time::Instant::now() + WAIT;
        while let Err(e) = ping("before the flood") {
            anyhow::ensure!(std::time::Instant::now() < deadline, "{e}");
            std::thread::sleep(Duration::from_millis(50));
        }

        let mut idle = Vec::new();
        for i in 0..1_500 {
            match std::net::TcpStream::connect(&mqtt) {
                Ok(s) => idle.push(s),
                Err(e) => anyhow::bail!("connection {i} refused by the kernel: {e}"),
            }
        }
        log.wait_for("the listener-full warning", WAIT, |l| {
            l.contains("full") && l.contains("have not sent CONNECT")
        })?;
        // While every idle socket the broker kept is still held:
        let mut r = http.get(&format!("{base}/api/health")).call()?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string()?;
        anyhow::ensure!(status == 200, "health during the flood: {status} {body}");
        ping("during the flood")?;
        // How many the broker kept open: those beyond its cap were closed.
        let mut kept = 0;
        for s in &idle {
            s.set_nonblocking(true)?;
            let mut byte = [0u8; 1];
            match std::io::Read::read(&mut &*s, &mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => kept += 1,
                _ => {}
            }
        }
        anyhow::ensure!(
            kept > 0 && kept < 1_024,
            "{kept} idle sockets held under a limit of 1,024"
        );
        eprintln!("idle sockets the broker kept: {kept} of {}", idle.len());
        drop(idle);
        Ok(())
    })();
    let _ = up.kill();
    let _ = up.wait();
    result
}

/// A server whose standard output is closed once it has started (a
/// supervisor, `bot server | head -1`) keeps serving: printing its start
/// lines must not kill it (it did, flakily, when a reader went away early).
#[test]
fn a_server_with_a_closed_stdout_keeps_serving() -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let broker = Broker::start(BrokerKind::Mosquitto, bot())?;
    let dir = bot_testkit::TempDir::new("closed-stdout");
    let mut server = bot_testkit::bot_command(bot())
        .args(["server", "--broker", &broker.url(), "--http", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("BOT_API_TOKENS", "t=closed-stdout-0123456789")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| -> Result<()> {
        let stdout = server
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("stdout"))?;
        let mut first = String::new();
        // Read the first line only, then close the pipe.
        BufReader::new(stdout).read_line(&mut first)?;
        anyhow::ensure!(first.starts_with("listening: http://"), "{first}");
        let base = first
            .trim()
            .trim_start_matches("listening: ")
            .trim_end_matches("/api")
            .to_owned();
        std::thread::sleep(std::time::Duration::from_millis(500));
        anyhow::ensure!(
            server.try_wait()?.is_none(),
            "the server died with its stdout closed"
        );
        let r = ureq::get(&format!("{base}/api/health")).call()?;
        anyhow::ensure!(r.status() == 200);
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
