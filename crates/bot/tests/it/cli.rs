//! The operator commands against real agents: `bot ping`, `bot pub`,
//! `bot listen`, and their usage errors.

use anyhow::Result;
use bot_testkit::run_bot;

use crate::{Agent, Broker, BrokerKind, Sub, WAIT, bot, both_brokers};

both_brokers!(
    ping_lists_every_agent_with_its_round_trip_time,
    pub_and_listen_round_trip,
    a_closed_pipe_ends_the_command_quietly
);

/// `bot ping --classic | head -1`: when the reader has gone, the command
/// ends quietly with 141 (as if killed by SIGPIPE), not with a panic; so
/// does every other command that prints.
fn a_closed_pipe_ends_the_command_quietly(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let url = broker.url();
    let _a = Agent::start(bot(), "piped", std::slice::from_ref(&url), "")?;
    // Every command that prints (issue 9 item 4), against a live agent.
    for args in [
        &["ping", "--classic", "-b", url.as_str()][..],
        &["ping", "-b", url.as_str()][..],
        &["ping", "-b", url.as_str(), "--json"][..],
        &["run", "-b", url.as_str(), "--", "echo", "hi"][..],
        &["run", "-b", url.as_str(), "--json", "--", "echo", "hi"][..],
        &["facts", "-b", url.as_str()][..],
        &["facts", "-b", url.as_str(), "--json", "os"][..],
        &["inventory", "-b", url.as_str(), "piped"][..],
        &["agent", "--print-config", "--name", "x"][..],
        &["keys", "list"][..],
        &["--help"][..],
    ] {
        let mut child = bot_testkit::bot_command(bot())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        drop(child.stdout.take()); // the reader is gone before anything is printed
        let out = child.wait_with_output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(!err.contains("panicked"), "{args:?}: {err}");
        // clap prints help itself and ignores the broken pipe: quiet, 0.
        let quiet_codes: &[i32] = if args == ["--help"] {
            &[0, 141]
        } else {
            &[141]
        };
        anyhow::ensure!(
            out.status.code().is_some_and(|c| quiet_codes.contains(&c)),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
    Ok(())
}

fn ping_lists_every_agent_with_its_round_trip_time(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let url = broker.url();
    let _a = Agent::start(bot(), "one", std::slice::from_ref(&url), "")?;
    let _b = Agent::start(bot(), "two", std::slice::from_ref(&url), "")?;
    let (code, out, err) = run_bot(
        bot(),
        &[
            "ping",
            "--classic",
            "--broker",
            &url,
            "--expect",
            "2",
            "--wait",
            "20",
        ],
    )?;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let mut names: Vec<&str> = lines[..2]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    names.sort();
    assert_eq!(names, ["one", "two"]);
    assert!(lines[..2].iter().all(|l| l.ends_with(" ms")), "{out}");
    assert!(lines[2].starts_with("2 agents answered"), "{out}");

    // Nobody at BUS/ghost: exit code 1 and a clear message.
    let (code, out, err) = run_bot(
        bot(),
        &[
            "ping",
            "--classic",
            "--broker",
            &url,
            "-t",
            "BUS/ghost",
            "--wait",
            "0.5",
        ],
    )?;
    assert_eq!(code, 1, "{out} {err}");
    assert!(out.contains("0 agents answered"), "{out}");
    assert!(err.contains("no agent answered"), "{err}");
    Ok(())
}

fn pub_and_listen_round_trip(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let url = broker.url();
    let _calc = Agent::start(bot(), "calc", std::slice::from_ref(&url), "")?;
    let mut sub = Sub::start(broker.port, &["RES"])?;
    let (code, out, err) = run_bot(bot(), &["pub", "--broker", &url, "6: 7: MUL"])?;
    assert_eq!(code, 0, "{out} {err}");
    let (_, reply) = sub.wait_for("42", WAIT, |t, _| t == "RES")?;
    assert_eq!(reply, "42:");

    // bot listen prints `topic payload` lines like mosquitto_sub -v.
    let mut listen = bot_testkit::bot_command(bot())
        .args(["listen", "--broker", &url, "-C", "1", "-W", "20", "RES"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = listen
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = bot_testkit::Lines::from_pipe(stderr);
    lines.wait_for("listen's ready line", WAIT, |l| {
        l.starts_with("listening on")
    })?;
    bot_testkit::publish(broker.port, "BUS/calc", b"1: 2: ADD")?;
    let out = listen.wait_with_output()?;
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "RES 3:\n");
    Ok(())
}

#[test]
fn unreachable_broker_is_a_clear_error() -> Result<()> {
    let url = format!("mqtt://127.0.0.1:{}", bot_testkit::free_port());
    let (code, _out, err) = run_bot(bot(), &["ping", "--broker", &url, "--connect-timeout", "1"])?;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot connect to") && err.contains(&url),
        "{err}"
    );
    Ok(())
}

#[test]
fn usage_errors_name_the_bad_value() -> Result<()> {
    let cases: [(&[&str], &str); 6] = [
        (&["ping", "--broker", "foo://x"], "unknown scheme \"foo\""),
        (&["ping", "--wait=-1"], "\"-1\""),
        (&["pub", "-t", "BUS/#", "PING"], "wildcard"),
        (&["pub", "-q", "2", "PING"], "QoS \"2\""),
        (&["listen", "a/#/b"], "'#' must be a whole last level"),
        (
            &["agent", "--interval", "0", "--broker", "mqtt://127.0.0.1:1"],
            "interval: 0",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = run_bot(bot(), args)?;
        assert_eq!(code, 2, "{args:?}: {out} {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
    }
    Ok(())
}

#[test]
fn agent_config_file_problems_are_reported_with_file_and_key() -> Result<()> {
    let dir = bot_testkit::TempDir::new("conf");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "intervall = 3\n")?;
    let (code, _, err) = run_bot(
        bot(),
        &["agent", "--config", path.to_str().unwrap_or_default()],
    )?;
    assert_eq!(code, 2);
    assert!(
        err.contains("agent.toml") && err.contains("intervall"),
        "{err}"
    );
    let (code, out, err) = run_bot(bot(), &["agent", "--print-config", "--name", "x"])?;
    assert_eq!(code, 0, "{err}");
    let parsed = bot_agent_config(&out);
    assert!(parsed, "--print-config output does not parse back:\n{out}");
    Ok(())
}

fn bot_agent_config(text: &str) -> bool {
    text.contains("name = \"x\"") && text.contains("[limits]") && text.contains("interval = 10.0")
}

#[test]
fn help_is_available_for_every_command() -> Result<()> {
    for cmd in [
        "up",
        "server",
        "agent",
        "pub",
        "listen",
        "ping",
        "facts",
        "inventory",
        "run",
        "results",
    ] {
        let (code, out, _) = run_bot(bot(), &[cmd, "--help"])?;
        assert_eq!(code, 0, "{cmd}");
        assert!(out.contains("Usage: bot"), "{cmd}: {out}");
        assert!(out.contains("--broker"), "{cmd} lacks --broker: {out}");
    }
    let (code, out, _) = run_bot(bot(), &["--help"])?;
    assert_eq!(code, 0);
    snapshot("help.txt", &out, include_str!("snapshots/help.txt"));
    let (code, out, _) = run_bot(bot(), &["run", "--help"])?;
    assert_eq!(code, 0);
    snapshot("run-help.txt", &out, include_str!("snapshots/run-help.txt"));
    Ok(())
}

/// Compares with a checked-in snapshot; set BOT_UPDATE_SNAPSHOTS=1 to rewrite it.
fn snapshot(file: &str, actual: &str, expected: &str) {
    if std::env::var_os("BOT_UPDATE_SNAPSHOTS").is_some() {
        let path = format!("{}/tests/it/snapshots/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, actual).expect("write snapshot");
        return;
    }
    assert_eq!(
        actual, expected,
        "snapshot {file} changed; rerun with BOT_UPDATE_SNAPSHOTS=1 and review the diff"
    );
}

/// `bot up` alone: the embedded broker, a local agent answering PING, MQTT 5
/// clients welcome, and a clean stop on SIGTERM.
#[test]
fn bot_up_runs_broker_and_local_agent_and_stops_on_sigterm() -> Result<()> {
    use std::process::{Command, Stdio};
    let state = bot_testkit::TempDir::new("up-state");
    let mut up = bot_testkit::bot_command(bot())
        .env("BOT_STATE_DIR", state.path())
        .env("BOT_DATA_DIR", state.path().join("server"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--ws-listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--name",
            "local",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut out =
        bot_testkit::Lines::from_pipe(up.stdout.take().ok_or_else(|| anyhow::anyhow!("stdout"))?);
    let mut log =
        bot_testkit::Lines::from_pipe(up.stderr.take().ok_or_else(|| anyhow::anyhow!("stderr"))?);
    let mqtt = out.wait_for("the mqtt line", WAIT, |l| {
        l.starts_with("listening: mqtt://")
    })?;
    let ws = out.wait_for("the ws line", WAIT, |l| l.starts_with("listening: ws://"))?;
    assert!(ws.ends_with("/mqtt"), "{ws}");
    out.wait_for("the mqtt login line", WAIT, |l| {
        l.starts_with("mqtt login: user operator") && l.contains("operator.password")
    })?;
    let port: u16 = mqtt.rsplit(':').next().unwrap_or_default().parse()?;
    let http = out.wait_for("the http line", WAIT, |l| {
        l.starts_with("listening: http://")
    })?;
    let http = http
        .trim_start_matches("listening: ")
        .trim_end_matches("/api")
        .to_owned();
    // The dashboard is served at `/`, with its CSP.
    let dash = out.wait_for("the dashboard line", WAIT, |l| {
        l.starts_with("dashboard: http://")
    })?;
    anyhow::ensure!(dash.contains(&format!("{http}/ ")), "{dash} vs {http}");
    let page = ureq::get(&format!("{http}/")).call()?;
    anyhow::ensure!(
        page.headers()
            .get("content-security-policy")
            .is_some_and(|v| v.to_str().unwrap_or("").contains("script-src 'self'")),
        "{:?}",
        page.headers()
    );
    let token = out.wait_for("the token line", WAIT, |l| l.starts_with("api token: "))?;
    let token = token.trim_start_matches("api token: ").to_owned();
    log.wait_for("the local agent's ready line", WAIT, |l| {
        l.contains("ready: listening on BUS")
    })?;

    // Secure by default: the stock tools need the generated login.
    let pw_file = state.path().join("server/broker/operator.password");
    let pw = std::fs::read_to_string(&pw_file)?.trim().to_owned();
    let login = ["-u", "operator", "-P", pw.as_str()];
    // Rows 1 and 2 with mosquitto's own tools: anonymous and a wrong password.
    for args in [&[][..], &["-u", "operator", "-P", "wrong"][..]] {
        assert!(
            bot_testkit::publish_with(port, "BUS", b"PING", args).is_err(),
            "mosquitto_pub {args:?} was let in"
        );
    }
    // An MQTT 5 subscriber gets the local agent's PONG.
    let mut sub = Sub::start_with(port, &["RES"], &[&["-V", "mqttv5"][..], &login].concat())?;
    bot_testkit::publish_with(port, "BUS", b"PING", &login)?;
    let (_, pong) = sub.wait_for("PONG from the local agent", WAIT, |t, _| t == "RES")?;
    assert_eq!(pong, "'local':PONG");
    // `bot ping` logs in with the password file and the local agent answers.
    let (code, ping_out, ping_err) = run_bot(
        bot(),
        &[
            "ping",
            "-b",
            &format!("mqtt://127.0.0.1:{port}"),
            "--password-file",
            &pw_file.display().to_string(),
        ],
    )?;
    assert_eq!(code, 0, "{ping_out}\n{ping_err}");
    assert!(ping_out.contains("local"), "{ping_out}");

    // The server sees the local agent; `bot task` runs a command on it.
    let run = bot_testkit::output(
        bot_testkit::bot_command(bot())
            .args([
                "task", "submit", "--server", &http, "-T", "local", "--watch", "--json",
            ])
            .args(["--", "echo", "hello-from-task"])
            .env("BOT_TOKEN", &token),
    )?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "bot task submit: {}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    let task: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(task["state"], "SUCCEEDED", "{task:#}");
    assert_eq!(
        task["targets"][0]["stdout"], "hello-from-task\n",
        "{task:#}"
    );
    assert_eq!(task["targets"][0]["agent_name"], "local", "{task:#}");
    // Without the token the API refuses, and says how to get one.
    let denied = bot_testkit::output(
        bot_testkit::bot_command(bot())
            .args(["task", "list", "--server", &http])
            .env_remove("BOT_TOKEN"),
    )?;
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("token"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );

    Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()?;
    let status = up.wait()?;
    assert!(status.success(), "bot up exited with {status}");
    log.wait_for("the agent's stop line", WAIT, |l| {
        l.contains("agent stopped")
    })?;
    Ok(())
}

#[test]
fn bot_up_reports_a_taken_port() -> Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let (code, _, err) = run_bot(
        bot(),
        &[
            "up",
            "--no-ws",
            "--no-server",
            "--no-agent",
            "--listen",
            &addr,
        ],
    )?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot start the embedded broker") && err.contains(&addr),
        "{err}"
    );
    Ok(())
}

#[test]
fn bot_up_stops_with_a_clear_error_when_its_agent_cannot_start() -> Result<()> {
    let dir = bot_testkit::TempDir::new("badstate");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory")?;
    let out = bot_testkit::output(
        bot_testkit::bot_command(bot())
            .args([
                "up",
                "--no-ws",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .env("BOT_STATE_DIR", file.join("state"))
            .env("BOT_DATA_DIR", dir.path().join("server")),
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("local agent failed") && err.contains("a-file"),
        "{err}"
    );
    Ok(())
}

/// `bot server`: a missing broker and a bad configuration file are usage
/// errors (exit 2) naming the problem; a file's brokers and tokens are used.
#[test]
fn bot_server_configuration_errors_and_file() -> Result<()> {
    let dir = bot_testkit::TempDir::new("server-config");
    let (code, _, err) = run_bot(
        bot(),
        &["server", "--data-dir", &dir.path().display().to_string()],
    )?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs a broker"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "htp = \"127.0.0.1:0\"\n")?;
    let (code, _, err) = run_bot(
        bot(),
        &["server", "--server-config", &bad.display().to_string()],
    )?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("htp") && err.contains("bad.toml"), "{err}");

    let short = dir.path().join("short.toml");
    std::fs::write(&short, "[[tokens]]\nname = \"ops\"\nsecret = \"short\"\n")?;
    let (code, _, err) = run_bot(
        bot(),
        &[
            "server",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--server-config",
            &short.display().to_string(),
        ],
    )?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"ops\"") && err.contains("16"), "{err}");
    Ok(())
}

/// Issue 12: `bot task watch` against a server that accepts connections
/// but never answers ends at Ctrl-C (130), not at its HTTP timeout.
#[test]
fn task_watch_ends_at_ctrl_c_when_the_server_never_answers() -> Result<()> {
    use std::process::Stdio;
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", silent.local_addr()?);
    // Accept and hold every connection, answering nothing.
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for c in silent.incoming().flatten() {
            if let Ok(mut v) = keep.lock() {
                v.push(c);
            }
        }
    });
    let mut watch = bot_testkit::bot_command(bot())
        .args(["task", "watch", "0123456789abcdef", "--server", &url])
        .env("BOT_TOKEN", "0123456789abcdef0123")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // Wait until the request is being held.
    let deadline = std::time::Instant::now() + WAIT;
    while held.lock().map(|v| v.is_empty()).unwrap_or(true) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "watch never connected"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Ended by the signal, well before the 30 s HTTP timeout.
    let status = bot_testkit::interrupt(
        &mut watch,
        std::time::Duration::from_secs(10),
        "bot task watch",
    )?;
    assert_eq!(status.code(), Some(130), "{status:?}");
    Ok(())
}
