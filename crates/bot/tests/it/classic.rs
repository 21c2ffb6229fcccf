//! The classic protocol, row by row of the table in shared/forth.md, and bad
//! input against a running agent.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bot_testkit::{publish, publish_lines};

use crate::{Agent, Broker, BrokerKind, Sub, WAIT, bot, both_brokers};

both_brokers!(
    command_table,
    selection_and_measuring,
    bad_input_gets_one_line_errors
);

/// A quiet moment to prove that something does NOT arrive. Only used for
/// negative checks; positive checks always wait for the event itself.
const QUIET: Duration = Duration::from_millis(700);

fn is_res(t: &str) -> bool {
    t == "RES"
}

fn command_table(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let url = [broker.url()];
    let mut alpha = Agent::start(bot(), "alpha", &url, "")?;
    let _beta = Agent::start(bot(), "beta", &url, "")?;
    let mut sub = Sub::start(broker.port, &["RES"])?;

    // PING on BUS: every agent answers '<name>':PONG.
    publish(broker.port, "BUS", b"PING")?;
    let mut pongs: Vec<String> = sub
        .collect(2, WAIT, |t, _| is_res(t))?
        .into_iter()
        .map(|m| m.1)
        .collect();
    pongs.sort();
    assert_eq!(pongs, ["'alpha':PONG", "'beta':PONG"]);

    // PING on BUS/alpha: only alpha. A marker sent to beta afterwards proves
    // beta said nothing in between (each agent answers in order).
    publish(broker.port, "BUS/alpha", b"ping")?;
    publish(broker.port, "BUS/beta", b"'marker':")?;
    let got = sub.collect(2, WAIT, |t, _| is_res(t))?;
    let mut got: Vec<String> = got.into_iter().map(|m| m.1).collect();
    got.sort();
    assert_eq!(got, ["\"marker\":", "'alpha':PONG"]);

    // 2: 2: ADD on BUS: a distributed calculator, one 4: per agent.
    publish(broker.port, "BUS", b"2: 2: ADD")?;
    let sums = sub.collect(2, WAIT, |t, _| is_res(t))?;
    assert!(sums.iter().all(|(_, p)| p == "4:"), "{sums:?}");

    // _TEST prints Yo on the agent's stdout (and replies `empty`).
    publish(broker.port, "BUS/alpha", b"_TEST")?;
    alpha
        .stdout
        .wait_for("Yo on alpha's stdout", WAIT, |l| l == "Yo")?;
    let (_, reply) = sub.wait_for("reply to _TEST", WAIT, |t, _| is_res(t))?;
    assert_eq!(reply, "empty");

    // TSSET is effective at once; LUN resets the interval to the default.
    publish(broker.port, "BUS/alpha", b"20: TSSET $interval")?;
    let (_, reply) = sub.wait_for("interval", WAIT, |t, _| is_res(t))?;
    assert_eq!(reply, "20:interval");
    publish(broker.port, "BUS/alpha", b"LUN $interval")?;
    let (_, reply) = sub.wait_for("interval after LUN", WAIT, |t, _| is_res(t))?;
    assert_eq!(reply, "10:interval");
    Ok(())
}

fn selection_and_measuring(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let url = [broker.url()];
    // A long interval, so that a quick second round can only come from TSSET acting at once.
    let config = "interval = 60.0\n";
    let _web1 = Agent::start(bot(), "web1", &url, config)?;
    let _db1 = Agent::start(bot(), "db1", &url, config)?;
    let mut sub = Sub::start(broker.port, &["RES", "DATA/#"])?;
    let mut db1_data = Sub::start(broker.port, &["DATA/db1"])?;

    // SEL with a glob selects web1 only; both agents reply `empty`, and web1
    // measures a whole round at once (replies and samples may interleave).
    publish(broker.port, "BUS", b"'web*': SEL")?;
    let mut replies = Vec::new();
    let mut samples = Vec::new();
    while replies.len() < 2
        || !samples
            .iter()
            .any(|p: &String| p.contains(":core.processing_time:"))
    {
        let (t, p) = sub.next(WAIT).ok_or_else(|| {
            anyhow::anyhow!("after SEL: replies {replies:?}, samples {samples:?}")
        })?;
        match t.as_str() {
            "RES" => replies.push(p),
            "DATA/web1" => samples.push(p),
            other => anyhow::bail!("unexpected message on {other}: {p}"),
        }
    }
    assert_eq!(replies, ["empty", "empty"]);
    for sample in &samples {
        let fields: Vec<&str> = sample.split(':').collect();
        ensure!(
            fields.len() == 4 && fields[0] == "web1",
            "bad sample {sample}"
        );
        ensure!(fields[2].parse::<f64>().is_ok(), "bad value in {sample}");
        ensure!(
            ["GAUGE", "DERIVE", "COUNTER", "ABSOLUTE"].contains(&fields[3]),
            "bad type in {sample}"
        );
    }
    for metric in [
        "cpu.load",
        "stat.intr",
        "stat.ctxt",
        "ps.processes",
        "ps.zombie",
        "files.opened",
    ] {
        ensure!(
            samples
                .iter()
                .any(|s| s.starts_with(&format!("web1:{metric}:"))),
            "no {metric} in {samples:?}"
        );
    }

    // TSSET at once: with the 60 s interval a second round would be a minute
    // away; after `1: TSSET` it comes within the deadline.
    publish(broker.port, "BUS/web1", b"1: TSSET")?;
    sub.wait_for("a second round after TSSET", WAIT, |t, p| {
        t == "DATA/web1" && p.contains(":core.processing_time:")
    })?;

    // UNSEL stops measuring at once: once both agents have replied and the
    // round that may have been in flight has drained, nothing more comes
    // (at a 1 s interval, 1.5 s of silence means measuring stopped).
    publish(broker.port, "BUS", b"'web1': UNSEL")?;
    sub.collect(2, WAIT, |t, _| is_res(t))?;
    while sub.next(QUIET).is_some() {}
    if let Some((t, p)) = sub.next(Duration::from_millis(1500)) {
        anyhow::bail!("still measuring after UNSEL: {t} {p}");
    }
    // db1 did not match 'web*' and never measured.
    if let Some(m) = db1_data.next(Duration::ZERO) {
        anyhow::bail!("db1 measured without being selected: {m:?}");
    }

    Ok(())
}

/// Checks one reply line: a bounded one-line error of the given kind.
fn assert_error(reply: &str, kind: &str) {
    assert!(
        reply.starts_with(&format!("\"{kind}: ")),
        "want {kind}, got {reply:?}"
    );
    assert!(reply.ends_with("\":ERROR"), "{reply:?}");
    assert!(
        reply.chars().count() <= 200,
        "{} chars: {reply:?}",
        reply.chars().count()
    );
    assert!(!reply.contains('\n'));
}

fn bad_input_gets_one_line_errors(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let mut agent = Agent::start(bot(), "victim", &[broker.url()], "")?;
    let mut sub = Sub::start(broker.port, &["RES"])?;
    let huge = vec![b'A'; 1024 * 1024];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unknown word", b"FOO".to_vec(), "UnknownWord"),
        (
            "SELECTED is not SEL",
            b"'x': SELECTED".to_vec(),
            "UnknownWord",
        ),
        ("stack underflow", b"ADD".to_vec(), "StackUnderflow"),
        ("division by zero", b"1: 0: DIV".to_vec(), "DivisionByZero"),
        ("malformed literal", b"12x4:".to_vec(), "BadLiteral"),
        ("unterminated string", b"'abc".to_vec(), "Syntax"),
        ("empty payload", Vec::new(), "Empty"),
        (
            "non-UTF-8 bytes",
            vec![0xff, 0xfe, 0x00, 0x80, b'P'],
            "Encoding",
        ),
        ("1 MiB payload", huge, "TooLarge"),
        ("negative interval", b"-1: TSSET".to_vec(), "OutOfRange"),
        ("infinite interval", b"1e999: TSSET".to_vec(), "BadLiteral"),
        (
            "huge exponent in BXOR",
            b"1e300000: 1: BXOR".to_vec(),
            "BadLiteral",
        ),
        ("internal variable", b"$client".to_vec(), "UnknownVariable"),
    ];
    for (what, payload, want) in &cases {
        publish(broker.port, "BUS/victim", payload)
            .with_context(|| format!("publishing {what}"))?;
        let (_, reply) = sub.wait_for(what, WAIT, |t, _| is_res(t))?;
        assert_error(&reply, want);
        assert!(
            !reply.contains("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "{what}: payload echoed"
        );
        // The agent is still fine: the next PING is answered.
        publish(broker.port, "BUS/victim", b"PING")
            .with_context(|| format!("PING after {what}"))?;
        let (_, pong) = sub.wait_for("PONG after bad input", WAIT, |t, _| is_res(t))?;
        assert_eq!(pong, "'victim':PONG", "after {what}");
    }

    // 200 bad programs in one burst: 200 one-line errors, in order, then PING.
    let burst: Vec<String> = (0..200).map(|i| format!("NOPE{i}")).collect();
    publish_lines(broker.port, "BUS/victim", &burst).context("the burst")?;
    let replies = sub.collect(200, WAIT, |t, _| is_res(t))?;
    for (i, (_, reply)) in replies.iter().enumerate() {
        assert_error(reply, "UnknownWord");
        assert!(
            reply.contains(&format!("NOPE{i}")),
            "reply {i} out of order: {reply}"
        );
    }
    publish(broker.port, "BUS/victim", b"PING")?;
    let (_, pong) = sub.wait_for("PONG after the burst", WAIT, |t, _| is_res(t))?;
    assert_eq!(pong, "'victim':PONG");
    assert!(agent.is_running());
    Ok(())
}

/// Plugins run while selected; their samples are prefixed and published; a
/// slow round is reported as an overrun and the agent raises its interval.
#[test]
fn plugins_overrun_and_auto_raise() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let broker = Broker::start(BrokerKind::Mosquitto, bot())?;
    let plugins = bot_testkit::TempDir::new("plugins");
    let write = |name: &str, body: &str| -> Result<()> {
        let p = plugins.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    };
    write(
        "temp_enabled",
        "echo 'temp.cpu:41:GAUGE fan.rpm:1200.5:GAUGE not-a-sample'",
    )?;
    write("slow_enabled", "sleep 1; echo slow.done:1:GAUGE")?;
    write("ignored", "echo ignored.metric:1:GAUGE")?;
    let config = format!(
        "interval = 0.5\nplugins = {:?}\ncollectors = [\"load\"]\n",
        plugins.path().display().to_string()
    );
    let _agent = Agent::start(bot(), "plug", &[broker.url()], &config)?;
    let mut sub = Sub::start(broker.port, &["RES", "DATA/plug"])?;
    publish(broker.port, "BUS", b"'plug': SEL")?;
    let mut samples = Vec::new();
    while !samples
        .iter()
        .any(|s: &String| s.contains(":core.overrun:"))
    {
        let (t, p) = sub
            .next(WAIT)
            .ok_or_else(|| anyhow::anyhow!("no overrun; got {samples:?}"))?;
        if t == "DATA/plug" {
            samples.push(p);
        }
    }
    for want in [
        "plug:temp.cpu:41:GAUGE",
        "plug:fan.rpm:1200.5:GAUGE",
        "plug:slow.done:1:GAUGE",
        "plug:plugin.temp.malformed:1:GAUGE",
    ] {
        ensure!(
            samples.iter().any(|s| s == want),
            "missing {want} in {samples:?}"
        );
    }
    ensure!(
        !samples.iter().any(|s| s.contains("ignored")),
        "a plugin without _enabled ran"
    );
    ensure!(
        samples.iter().any(|s| s.starts_with("plug:cpu.load:")),
        "no built-in sample"
    );
    // The interval was raised from 0.5 s to 1.5 × the round (> 1 s).
    publish(broker.port, "BUS/plug", b"$interval")?;
    let (_, reply) = sub.wait_for("the raised interval", WAIT, |t, _| t == "RES")?;
    let secs: f64 = reply.trim_end_matches(":interval").parse()?;
    ensure!(secs >= 1.5, "interval not raised: {reply}");
    Ok(())
}
