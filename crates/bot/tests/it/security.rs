//! The attack table of the security issue, rows 9–20 (signed requests),
//! end to end: a real agent process on each broker, hand-made hostile
//! requests published with the stock `mosquitto_pub`, replies read by a
//! fresh `mosquitto_sub`. Each attack names a marker file that its command
//! would create; a test fails if any marker exists, and each refusal must
//! come back as a `rejected` reply naming the reason (a replayed id gets no
//! second reply: the first copy's reply answers it) and as a line in the
//! agent's audit log. Also: the CLI signs with the operator key the agent
//! trusts, and is refused with a key it does not.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use bot_auth::{SecretKey, Signer, TrustEntry};
use bot_proto::action::{ExecArgs, PingArgs};
use bot_proto::envelope::{Reply, ReplyStatus};
use bot_proto::{Action, Draft};
use bot_testkit::{TempDir, operator_signer, publish, run_bot};
use serde_json::json;

use crate::{Agent, Broker, BrokerKind, Sub, WAIT, bot, both_brokers};

/// Rows 1, 2, 5–8 and "an agent configured by the README's instructions
/// joins a secure `bot up` from another process", with the stock mosquitto
/// tools as the hostile clients. Embedded broker only: the shipped
/// mosquitto configuration does not exist yet.
#[test]
fn secure_bot_up_admits_a_registered_agent_and_holds_it_to_its_topics() -> Result<()> {
    use std::process::Command;
    let dir = TempDir::new("secure-up");
    let data = dir.path().join("data");
    let (mut up, mut out) = secure_up(&data, &["--tls-listen", "127.0.0.1:0"])?;
    let line = out.wait_for("the mqtt line", WAIT, |l| {
        l.starts_with("listening: mqtt://")
    })?;
    let port: u16 = line.rsplit(':').next().unwrap_or_default().parse()?;
    let line = out.wait_for("the mqtts line", WAIT, |l| {
        l.starts_with("listening: mqtts://")
    })?;
    let tls_port: u16 = line.rsplit(':').next().unwrap_or_default().parse()?;
    out.wait_for("the http line", WAIT, |l| {
        l.starts_with("listening: http://")
    })?;
    let url = format!("mqtt://127.0.0.1:{port}");
    let op_pw_file = data.join("broker/operator.password");
    let op_pw = std::fs::read_to_string(&op_pw_file)?.trim().to_owned();
    let op = ["-u", "operator", "-P", op_pw.as_str()];

    // The README's steps: the agent's id, then its login, then its config.
    let state = dir.path().join("agent-state");
    let id = agent_id(&state)?;
    let (code, added, err) = run_bot(
        bot(),
        &[
            "broker",
            "add-agent",
            "--id",
            &id,
            "--name",
            "ext",
            "--data-dir",
            &data.display().to_string(),
        ],
    )?;
    ensure!(code == 0, "{err}");
    let pw = added
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .ok_or_else(|| anyhow!("no password printed: {added}"))?
        .to_owned();
    let pw_file = secret_file(dir.path(), "mqtt.password", &pw)?;
    // As from another machine: over TLS, trusting the CA `bot up` made.
    let _agent = Agent::start(
        bot(),
        "ext",
        &[format!("mqtts://localhost:{tls_port}")],
        &format!(
            "state_dir = {:?}\npassword_file = {:?}\ntls_ca = {:?}\n",
            state.display().to_string(),
            pw_file.display().to_string(),
            data.join("broker/tls/ca.crt").display().to_string()
        ),
    )?;
    let pw_arg = op_pw_file.display().to_string();
    let (code, o, e) = run_bot(bot(), &["ping", "-b", &url, "--password-file", &pw_arg])?;
    ensure!(
        code == 0 && o.contains("ext"),
        "the registered agent answers: {o}\n{e}"
    );

    // The operator watches everything an agent could forge.
    let mut watch = Sub::start_with(port, &["#"], &op)?;
    let agent_login = [
        "-u",
        id.as_str(),
        "-P",
        pw.as_str(),
        "-i",
        "bot-agent-hostile",
    ];
    // Rows 5, 6, 8: requests, BUS, another agent's status and data.
    for topic in [
        "bot/v1/req/all",
        "BUS",
        "bot/v1/status/someone-else",
        "DATA/other",
    ] {
        let _ = bot_testkit::publish_with(port, topic, b"forged", &agent_login);
    }
    bot_testkit::publish_with(port, "test/marker", b"end", &op)?;
    // Everything up to the operator's marker (published after the forgeries).
    loop {
        let (topic, payload) = watch
            .next(WAIT)
            .ok_or_else(|| anyhow!("the operator's marker never came"))?;
        ensure!(
            payload != "forged",
            "a forged publish on {topic} got through"
        );
        if topic == "test/marker" {
            break;
        }
    }
    // Row 7: another agent's requests, or everyone's replies.
    for filter in ["bot/v1/req/agent/someone-else", "bot/v1/reply/#"] {
        let o = bot_testkit::output(
            Command::new("mosquitto_sub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-t",
                    filter,
                    "-W",
                    "3",
                    "-C",
                    "1",
                ])
                .args(agent_login),
        )?;
        let text =
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
        // mosquitto_sub reports a refused SUBACK in words (its exit code is 0).
        ensure!(
            text.contains("All subscription requests were denied"),
            "subscribing to {filter} was allowed: {text}"
        );
    }
    // Row 1: anonymous.
    let o = bot_testkit::output(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        "#",
        "-W",
        "2",
        "-C",
        "1",
    ]))?;
    ensure!(!o.status.success(), "an anonymous subscriber was let in");
    Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()?;
    let _ = up.wait();
    Ok(())
}

/// The shipped mosquitto rules (`docs/mosquitto/acl`, no anonymous
/// clients): the whole protocol works for agents, the CLI and the server's
/// users, and an agent's login cannot forge requests, classic programs or
/// another agent's status, nor read others' requests or replies (rows 1,
/// 2, 5–8 on mosquitto). Watched the way a user would: the operator's own
/// subscriptions, and the real agent's answers to what got through.
#[test]
fn the_shipped_mosquitto_rules_hold_agents_to_their_topics() -> Result<()> {
    use std::process::Command;
    let dir = TempDir::new("mosq-secure");
    let state = dir.path().join("agent-state");
    let id = agent_id(&state)?;
    let broker = Broker::start_mosquitto_secure(
        bot(),
        &[
            ("operator", "op-secret"),
            ("server", "srv-secret"),
            (&id, "agent-secret"),
        ],
    )?;
    let port = broker.port;
    let url = broker.url();
    let agent_pw = secret_file(dir.path(), "agent.password", "agent-secret")?;
    let op_pw = secret_file(dir.path(), "operator.password", "op-secret")?
        .display()
        .to_string();
    let _agent = Agent::start(
        bot(),
        "ext",
        std::slice::from_ref(&url),
        &format!(
            "state_dir = {:?}\npassword_file = {:?}\n",
            state.display().to_string(),
            agent_pw.display().to_string()
        ),
    )?;
    let login = ["--username", "operator", "--password-file", op_pw.as_str()];
    let (code, o, e) = run_bot(bot(), &[&["ping", "-b", &url][..], &login].concat())?;
    ensure!(
        code == 0 && o.contains("ext"),
        "ping through the rules: {o}\n{e}"
    );
    let (code, o, e) = run_bot(
        bot(),
        &[&["run", "-b", &url][..], &login, &["--", "echo", "hello"]].concat(),
    )?;
    ensure!(
        code == 0 && o.contains("hello"),
        "run through the rules: {o}\n{e}"
    );
    // Row 1, 2.
    for args in [&[][..], &["-u", "operator", "-P", "wrong"][..]] {
        ensure!(
            bot_testkit::publish_with(port, "BUS", b"PING", args).is_err(),
            "mosquitto_pub {args:?} was let in"
        );
    }
    let op = ["-u", "operator", "-P", "op-secret"];
    let agent_login = [
        "-u",
        id.as_str(),
        "-P",
        "agent-secret",
        "-i",
        "bot-agent-hostile",
    ];
    let mut watch = Sub::start_with(port, &["RES", "bot/v1/status/#", "bot/v1/reply/#"], &op)?;
    // Skip the retained status of the real agent.
    watch.wait_for("the agent's status", WAIT, |t, _| {
        t.starts_with("bot/v1/status/")
    })?;
    // Rows 6, 5, 8 by the agent's login: a classic PING (the real agent
    // would answer on RES), an unsigned request (it would answer
    // "rejected"), another agent's status.
    let forged_request = json!({"v":1,"kind":"request","id":"forged1","sender":"mallory",
        "created_ms": bot_auth::now_ms(),"nonce":"0123456789abcdef","ttl_ms":60000,
        "action":"ping","args":{},"reply_to":"bot/v1/reply/watch"})
    .to_string();
    bot_testkit::publish_with(port, "BUS", b"PING", &agent_login)?;
    bot_testkit::publish_with(
        port,
        "bot/v1/req/all",
        forged_request.as_bytes(),
        &agent_login,
    )?;
    bot_testkit::publish_with(port, "bot/v1/status/someone-else", b"forged", &agent_login)?;
    // The same by the operator: what getting through looks like.
    bot_testkit::publish_with(port, "BUS", b"PING", &op)?;
    let control = forged_request.replace("forged1", "control1");
    bot_testkit::publish_with(port, "bot/v1/req/all", control.as_bytes(), &op)?;
    let mut pongs = 0;
    let mut replies = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while let Some((topic, payload)) =
        watch.next(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        ensure!(
            topic != "bot/v1/status/someone-else",
            "a forged status got through"
        );
        if topic == "RES" && payload.contains("PONG") {
            pongs += 1;
        }
        if topic == "bot/v1/reply/watch" {
            replies.push(payload);
        }
    }
    ensure!(
        pongs == 1,
        "one PONG (the operator's PING) expected, got {pongs}"
    );
    ensure!(
        replies.len() == 1 && replies[0].contains("control1") && replies[0].contains("rejected"),
        "only the operator's request reached the agent: {replies:?}"
    );
    // Row 7: mosquitto grants the SUBACK but never delivers what the ACL
    // forbids; so the hostile subscriber must receive nothing while the
    // operator publishes on those topics.
    for (filter, topic) in [
        (
            "bot/v1/req/agent/someone-else",
            "bot/v1/req/agent/someone-else",
        ),
        ("bot/v1/reply/#", "bot/v1/reply/someone"),
    ] {
        let spy = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                filter,
                "-W",
                "3",
                "-C",
                "1",
                "-v",
            ])
            .args(agent_login)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(500));
        bot_testkit::publish_with(port, topic, b"secret", &op)?;
        let o = spy.wait_with_output()?;
        let got = String::from_utf8_lossy(&o.stdout);
        ensure!(!got.contains("secret"), "an agent read {topic}: {got}");
    }
    Ok(())
}

/// TLS end to end with a fleet CA made by `bot certs`: a mosquitto with a
/// TLS listener that requires client certificates; the agent and the CLI
/// connect over `mqtts://` with their own certificates. Rows 3 and 4: a
/// plain client on the TLS port and a client trusting another CA are
/// refused, the latter with a message naming the certificate problem; a
/// client without a certificate is refused too.
fn tls_with_a_fleet_ca_and_client_certificates(kind: BrokerKind) -> Result<()> {
    let dir = TempDir::new("tls");
    let d = dir.path().display().to_string();
    for args in [
        &["certs", "init", "--dir", &d][..],
        &[
            "certs",
            "issue",
            "server",
            "server",
            "--san",
            "127.0.0.1",
            "--san",
            "localhost",
            "--dir",
            &d,
        ],
        &["certs", "issue", "operator", "operator", "--dir", &d],
        &["certs", "issue", "agent", "tls-agent", "--dir", &d],
    ] {
        let (code, o, e) = run_bot(bot(), args)?;
        ensure!(code == 0, "bot {args:?}: {o}\n{e}");
    }
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("ca.key"))?.permissions(),
    );
    ensure!(key_mode & 0o077 == 0, "the CA key is mode {key_mode:o}");
    let broker = match kind {
        BrokerKind::Mosquitto => Broker::start_mosquitto_tls(bot(), dir.path(), true)?,
        BrokerKind::Embedded => Broker::start_embedded_tls(bot(), dir.path(), true)?,
    };
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let file = |n: &str| dir.path().join(n).display().to_string();
    let _agent = Agent::start(
        bot(),
        "tls-agent",
        std::slice::from_ref(&url),
        &format!(
            "tls_ca = {:?}\ntls_cert = {:?}\ntls_key = {:?}\n",
            file("ca.crt"),
            file("tls-agent.crt"),
            file("tls-agent.key")
        ),
    )?;
    let (ca, cert, key) = (file("ca.crt"), file("operator.crt"), file("operator.key"));
    let tls = [
        "--tls-ca",
        ca.as_str(),
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
    ];
    let (code, o, e) = run_bot(bot(), &[&["ping", "-b", &url][..], &tls].concat())?;
    ensure!(
        code == 0 && o.contains("tls-agent"),
        "ping over TLS: {o}\n{e}"
    );
    // MQTT over WebSocket over TLS, for clients behind HTTP proxies (the
    // embedded broker's wss listener; Debian's mosquitto 2.0.11 cannot open
    // a websockets listener here, see docs/security.md).
    if let Some(wss_port) = broker.wss_port {
        let wss = format!("wss://localhost:{wss_port}/mqtt");
        let (code, o, e) = run_bot(
            bot(),
            &[&["run", "-b", &wss][..], &tls, &["--", "echo", "over-wss"]].concat(),
        )?;
        ensure!(
            code == 0 && o.contains("over-wss") && o.contains("tls-agent"),
            "run over wss: {o}\n{e}"
        );
    }
    // A user's own view: the stock mosquitto_sub over TLS reads the agent's
    // retained status.
    let o = bot_testkit::output(std::process::Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "--cafile",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "-t",
        "bot/v1/status/+",
        "-C",
        "1",
        "-W",
        "10",
    ]))?;
    let status = String::from_utf8_lossy(&o.stdout);
    ensure!(
        status.contains("\"name\":\"tls-agent\"") && status.contains("\"online\":true"),
        "mosquitto_sub over TLS: {status} {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let short = ["--connect-timeout", "3"];
    // Row 3: plain MQTT on the TLS port.
    let plain = format!("mqtt://127.0.0.1:{}", broker.port);
    let (code, o, e) = run_bot(bot(), &[&["ping", "-b", &plain][..], &short].concat())?;
    ensure!(
        code == 1 && e.contains("cannot connect"),
        "plain client: {code}\n{o}\n{e}"
    );
    // Row 4: trusting another CA.
    let other = TempDir::new("tls-other");
    let od = other.path().display().to_string();
    let (code, _, e) = run_bot(bot(), &["certs", "init", "--dir", &od])?;
    ensure!(code == 0, "{e}");
    let other_ca = other.path().join("ca.crt").display().to_string();
    let wrong = [
        "--tls-ca",
        other_ca.as_str(),
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
    ];
    let (code, o, e) = run_bot(bot(), &[&["ping", "-b", &url][..], &wrong, &short].concat())?;
    ensure!(
        code == 1 && e.contains("certificate"),
        "a client trusting another CA: {code}\n{o}\n{e}"
    );
    // No client certificate.
    let (code, o, e) = run_bot(
        bot(),
        &[&["ping", "-b", &url, "--tls-ca", ca.as_str()][..], &short].concat(),
    )?;
    ensure!(
        code == 1,
        "a client without a certificate: {code}\n{o}\n{e}"
    );
    Ok(())
}

both_brokers!(
    tls_with_a_fleet_ca_and_client_certificates,
    hostile_requests_are_refused_and_nothing_runs,
    the_cli_signs_and_an_untrusted_key_is_refused,
    forged_replies_are_refused_by_the_cli,
);

const REPLIES: &str = "test/sec-replies";

/// A secure `bot up` (no local agent, no plain WebSocket listener) with
/// its data in `data`, loopback ports and `extra` flags; its stdout lines.
fn secure_up(data: &Path, extra: &[&str]) -> Result<(std::process::Child, bot_testkit::Lines)> {
    use std::process::Stdio;
    let mut up = bot_testkit::bot_command(bot())
        .args([
            "up",
            "--no-ws",
            "--no-agent",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("BOT_DATA_DIR", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = bot_testkit::Lines::from_pipe(up.stdout.take().ok_or_else(|| anyhow!("stdout"))?);
    Ok((up, out))
}

/// The id `bot agent --print-id` gives an agent with state in `state`.
fn agent_id(state: &Path) -> Result<String> {
    let (code, id, err) = run_bot(
        bot(),
        &[
            "agent",
            "--print-id",
            "--state-dir",
            &state.display().to_string(),
        ],
    )?;
    ensure!(code == 0, "{err}");
    Ok(id.trim().to_owned())
}

/// `secret` in the file `dir/name`, mode 0600 (as password files must be).
fn secret_file(dir: &Path, name: &str, secret: &str) -> Result<std::path::PathBuf> {
    let f = dir.join(name);
    std::fs::write(&f, format!("{secret}\n"))?;
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(f)
}

fn touch(marker: &Path) -> Action {
    Action::Exec(ExecArgs::command(vec![
        "/usr/bin/touch".into(),
        marker.display().to_string(),
    ]))
}

fn draft(action: Action) -> Draft {
    Draft {
        action,
        filter: None,
        reply_to: REPLIES.into(),
        ttl_ms: 60_000,
    }
}

/// The next reply to `id` within `wait` (other replies are skipped).
fn reply_to(sub: &mut Sub, id: &str, wait: Duration) -> Option<Reply> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (_, payload) = sub.next(left)?;
        if let Ok(r) = Reply::decode(payload.as_bytes())
            && r.request_id == id
        {
            return Some(r);
        }
    }
}

/// Publishes `payload` to the agent and expects a `rejected` reply to `id`
/// whose error contains `why`.
fn expect_rejected(
    port: u16,
    topic: &str,
    sub: &mut Sub,
    id: &str,
    payload: &[u8],
    why: &str,
) -> Result<()> {
    publish(port, topic, payload)?;
    let r = reply_to(sub, id, WAIT).ok_or_else(|| anyhow!("{id}: no reply ({why})"))?;
    ensure!(
        r.status == ReplyStatus::Rejected,
        "{id}: status {:?}, expected rejected ({why}): {r:?}",
        r.status
    );
    let error = r.error.unwrap_or_default();
    ensure!(
        error.contains(why),
        "{id}: error {error:?} does not say {why:?}"
    );
    Ok(())
}

fn hostile_requests_are_refused_and_nothing_runs(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let dir = TempDir::new("attacks");
    let state = dir.path().join("state");
    // A key allowed `ping` only, and one allowed one command line only.
    let pinger = Signer::new(SecretKey::generate()?, "pinger");
    let narrow = Signer::new(SecretKey::generate()?, "narrow");
    let entries = [
        TrustEntry {
            actions: vec!["ping".into()],
            ..TrustEntry::full("pinger", &pinger.public())
        },
        TrustEntry {
            commands: vec!["/bin/echo hello *".into()],
            ..TrustEntry::full("narrow", &narrow.public())
        },
        TrustEntry::full("test-operator", &operator_signer().public()),
    ];
    let trust = toml::to_string(&serde_json::json!({ "trust": entries }))?;
    let mut agent = Agent::start(
        bot(),
        "target",
        &[broker.url()],
        &format!("state_dir = {:?}\n{trust}", state.display().to_string()),
    )?;
    let id = std::fs::read_to_string(state.join("agent-id"))?;
    let topic = bot_proto::topics::request_agent_topic(id.trim());
    let mut sub = Sub::start(broker.port, &[REPLIES])?;
    let op = operator_signer();
    let marker = |n: u32| dir.path().join(format!("ran-{n}"));

    // The operator's genuine request runs: the harness itself is sound.
    let ok = op.request(draft(touch(&marker(0))));
    publish(broker.port, &topic, &ok.encode())?;
    let r =
        reply_to(&mut sub, &ok.id, WAIT).ok_or_else(|| anyhow!("no reply to a signed request"))?;
    ensure!(r.status == ReplyStatus::Ok, "{r:?}");
    ensure!(marker(0).exists(), "the genuine request did not run");

    // 9: unsigned.
    let mut r9 = op.request(draft(touch(&marker(9))));
    r9.sig = None;
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r9.id,
        &r9.encode(),
        "unsigned",
    )?;
    // 10: forged signature under the trusted key's id.
    let mut r10 = op.request(draft(touch(&marker(10))));
    let kid = op.public().id();
    r10.sig = Some(format!("{kid}.{}", "A".repeat(86)));
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r10.id,
        &r10.encode(),
        "bad signature",
    )?;
    // 11: arguments changed after signing (as a man in the middle would).
    let mut r11 = op.request(draft(Action::Ping(PingArgs {})));
    r11.action = "exec".into();
    r11.args = json!({"command": ["/usr/bin/touch", marker(11).display().to_string()]});
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r11.id,
        &r11.encode(),
        "bad signature",
    )?;
    // 12: a key the agent does not know.
    let mallory = Signer::new(SecretKey::generate()?, "mallory");
    let r12 = mallory.request(draft(touch(&marker(12))));
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r12.id,
        &r12.encode(),
        "unknown key",
    )?;
    // 13: a ping-only key asking for exec.
    let r13 = pinger.request(draft(touch(&marker(13))));
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r13.id,
        &r13.encode(),
        "may not request exec",
    )?;
    // ... while its ping is answered.
    let ping = pinger.request(draft(Action::Ping(PingArgs {})));
    publish(broker.port, &topic, &ping.encode())?;
    let r = reply_to(&mut sub, &ping.id, WAIT).ok_or_else(|| anyhow!("no pong"))?;
    ensure!(r.status == ReplyStatus::Ok, "{r:?}");
    // 14: a command outside the key's globs, and a shell (never matched by globs).
    let r14 = narrow.request(draft(touch(&marker(14))));
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r14.id,
        &r14.encode(),
        "may not run",
    )?;
    let r14b = narrow.request(draft(Action::Exec(ExecArgs::shell(format!(
        "/bin/echo hello; touch {}",
        marker(14).display()
    )))));
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r14b.id,
        &r14b.encode(),
        "not shell",
    )?;
    let allowed = narrow.request(draft(Action::Exec(ExecArgs::command(vec![
        "/bin/echo".into(),
        "hello".into(),
        "world".into(),
    ]))));
    publish(broker.port, &topic, &allowed.encode())?;
    let r = reply_to(&mut sub, &allowed.id, WAIT).ok_or_else(|| anyhow!("no reply"))?;
    ensure!(
        r.status == ReplyStatus::Ok && r.data["stdout"] == "hello world\n",
        "{r:?}"
    );
    // 15: expired; 16: dated in the future.
    let now = bot_auth::now_ms();
    let r15 = op.request_at(draft(touch(&marker(15))), "expired15".into(), now - 120_000);
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r15.id,
        &r15.encode(),
        "expired",
    )?;
    let r16 = op.request_at(draft(touch(&marker(16))), "future16".into(), now + 120_000);
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r16.id,
        &r16.encode(),
        "in the future",
    )?;
    // 17: the genuine request replayed: not run again, no second reply.
    std::fs::remove_file(marker(0))?;
    publish(broker.port, &topic, &ok.encode())?;
    agent.log.wait_for("the duplicate line", WAIT, |l| {
        l.contains("duplicate") && l.contains(&ok.id)
    })?;
    ensure!(
        reply_to(&mut sub, &ok.id, Duration::from_millis(500)).is_none(),
        "replay answered"
    );
    ensure!(!marker(0).exists(), "a replayed request ran again");
    // 18: the genuine request's nonce under a new id, signed (a replay that
    // changes only the id would fail the signature; this is the stronger case).
    let mut r18 = op.request(draft(touch(&marker(18))));
    r18.nonce = ok.nonce.clone();
    op.sign(&mut r18);
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r18.id,
        &r18.encode(),
        "replayed",
    )?;
    // 19: oversized; 20: malformed (a bad action, signed or not).
    let big = format!(
        r#"{{"v":1,"kind":"request","id":"big19","reply_to":"{REPLIES}","pad":"{}"}}"#,
        "x".repeat(300 * 1024)
    );
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        "big19",
        big.as_bytes(),
        "262144",
    )?;
    let mut r20 = op.request(draft(Action::Ping(PingArgs {})));
    r20.action = "reboot".into();
    op.sign(&mut r20);
    expect_rejected(
        broker.port,
        &topic,
        &mut sub,
        &r20.id,
        &r20.encode(),
        "unknown action",
    )?;

    for n in [9, 10, 11, 12, 13, 14, 15, 16, 18] {
        ensure!(!marker(n).exists(), "attack {n} ran its command");
    }
    // Every decision is in the audit log.
    let audit = std::fs::read_to_string(state.join("audit.log"))?;
    for code in [
        "unsigned",
        "bad_signature",
        "unknown_key",
        "not_allowed",
        "expired",
        "future",
        "replayed",
        "malformed",
        "\"duplicate\"",
        "\"accepted\"",
        "\"done\"",
    ] {
        ensure!(audit.contains(code), "no {code} in the audit log:\n{audit}");
    }
    ensure!(agent.is_running());
    Ok(())
}

fn the_cli_signs_and_an_untrusted_key_is_refused(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let _agent = Agent::start(bot(), "signed", &[broker.url()], "")?;
    let url = broker.url();
    // The harness's BOT_KEY is the operator key the agent trusts.
    let (code, out, err) = run_bot(bot(), &["ping", "-b", &url, "--wait", "5"])?;
    ensure!(code == 0, "ping with the trusted key: {code}\n{out}\n{err}");
    let dir = TempDir::new("stranger");
    let stranger = dir.path().join("stranger.key");
    SecretKey::generate()?.save(&stranger)?;
    let key = stranger.display().to_string();
    let (code, out, err) = run_bot(
        bot(),
        &[
            "run",
            "-b",
            &url,
            "--key",
            &key,
            "--timeout",
            "5",
            "--",
            "true",
        ],
    )?;
    ensure!(
        code == 1,
        "an untrusted key must fail: {code}\n{out}\n{err}"
    );
    ensure!(
        out.contains("unknown key") || err.contains("unknown key"),
        "the refusal names the reason:\n{out}\n{err}"
    );
    Ok(())
}

/// Attack row 21 on the CLI's side: while `bot ping` waits, replies that
/// claim to come from the real agent (but are signed by another key) and
/// from an agent nobody knows arrive on its reply topic. Both are reported
/// and neither is counted.
fn forged_replies_are_refused_by_the_cli(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let agent = Agent::start(bot(), "honest", &[broker.url()], "")?;
    let id = agent.id()?;
    let mut requests = Sub::start(broker.port, &[bot_proto::topics::REQUEST_BROADCAST])?;
    let url = broker.url();
    // --expect 2: one agent exists, so the CLI keeps listening for --wait s.
    let child = bot_testkit::bot_command(bot())
        .args(["ping", "-b", &url, "--expect", "2", "--wait", "4", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let (_, payload) = requests
        .next(WAIT)
        .ok_or_else(|| anyhow!("the CLI sent no request"))?;
    let request = bot_proto::Request::decode(payload.as_bytes())?;
    let mallory = SecretKey::generate()?;
    for (agent_id, name) in [(id.as_str(), "honest"), ("ghost-id", "ghost")] {
        let mut forged = Reply {
            request_id: request.id.clone(),
            agent_id: agent_id.to_owned(),
            agent_name: name.to_owned(),
            sender: agent_id.to_owned(),
            created_ms: bot_auth::now_ms(),
            nonce: "0123456789abcdef".into(),
            status: ReplyStatus::Ok,
            data: json!({"pong": true}),
            error: None,
            received_ms: bot_auth::now_ms(),
            duration_ms: 0,
            sig: None,
        };
        forged.sig = Some(bot_auth::sign::detached(&mallory, &forged.signing_bytes()));
        publish(broker.port, &request.reply_to, &forged.encode())?;
    }
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["honest", "ghost"] {
        ensure!(
            stderr.contains(&format!("refused a reply claiming to be from {name}")),
            "the forged {name} reply was not reported:\n{stderr}"
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(&stdout).map_err(|e| anyhow!("not JSON ({e}): {stdout}\n{stderr}"))?;
    let answered: Vec<&str> = v["replies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().or(r["agent_name"].as_str()))
        .collect();
    ensure!(answered == ["honest"], "only the genuine reply counts: {v}");
    Ok(())
}

/// Plain listeners beyond loopback are refused unless --insecure, and the
/// message says how to serve other machines (TLS).
#[test]
fn bot_up_refuses_a_plain_listener_beyond_loopback() -> Result<()> {
    let dir = TempDir::new("up-refuse");
    for args in [
        &["--listen", "0.0.0.0:0", "--no-ws"][..],
        &["--listen", "127.0.0.1:0", "--ws-listen", "0.0.0.0:0"],
    ] {
        let out = bot_testkit::output(
            bot_testkit::bot_command(bot())
                .args(["up", "--no-agent", "--no-server"])
                .args(args)
                .env("BOT_DATA_DIR", dir.path()),
        )?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(2)
                && err.contains("0.0.0.0")
                && err.contains("--tls-listen")
                && err.contains("--insecure"),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
    Ok(())
}

/// `bot up --https`: the API over TLS with the certificate `bot up` made;
/// `bot task` on the same machine trusts its CA by itself, and a client
/// trusting another CA is refused.
#[test]
fn the_api_serves_https_with_the_generated_certificate() -> Result<()> {
    let dir = TempDir::new("https-up");
    let data = dir.path().join("data");
    let (mut up, mut out) = secure_up(&data, &["--https"])?;
    let line = out.wait_for("the https line", WAIT, |l| {
        l.starts_with("listening: https://")
    })?;
    let base = line
        .trim_start_matches("listening: ")
        .trim_end_matches("/api")
        .to_owned();
    let token = out
        .wait_for("the token", WAIT, |l| l.starts_with("api token: "))?
        .trim_start_matches("api token: ")
        .to_owned();
    let task = |extra: &[&str], data_dir: &Path| {
        bot_testkit::output(
            bot_testkit::bot_command(bot())
                .args(["task", "list", "--server", &base])
                .args(extra)
                .env("BOT_TOKEN", &token)
                .env("BOT_DATA_DIR", data_dir),
        )
    };
    let o = task(&[], &data)?;
    ensure!(
        o.status.success(),
        "over https: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ca = data.join("broker/tls/ca.crt").display().to_string();
    let o = task(&["--server-ca", &ca], dir.path())?;
    ensure!(
        o.status.success(),
        "with --server-ca: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let other = TempDir::new("https-other");
    let (code, _, e) = run_bot(
        bot(),
        &[
            "certs",
            "init",
            "--dir",
            &other.path().display().to_string(),
        ],
    )?;
    ensure!(code == 0, "{e}");
    let wrong = other.path().join("ca.crt").display().to_string();
    let o = task(&["--server-ca", &wrong], dir.path())?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure!(
        o.status.code() == Some(1) && err.contains("certificate"),
        "trusting another CA: {err}"
    );
    // Plain HTTP on the HTTPS port gets no API answer.
    let plain = base.replacen("https://", "http://", 1);
    let o = bot_testkit::output(
        bot_testkit::bot_command(bot())
            .args(["task", "list", "--server", &plain])
            .env("BOT_TOKEN", &token),
    )?;
    ensure!(!o.status.success(), "plain HTTP was answered");
    let _ = up.kill();
    let _ = up.wait();
    Ok(())
}
