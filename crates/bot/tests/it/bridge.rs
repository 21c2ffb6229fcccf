//! `bot bridge nagios` against a real Nagios 4 (Debian's `nagios4-core`):
//! check results from a real agent become passive results, proven by
//! Nagios's own log and status file; Nagios restarted mid-stream and the
//! bridge restarted (its persistent session) lose nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use bot_proto::{Action, Draft, topics};
use bot_testkit::{Lines, TempDir};

use crate::{Agent, Broker, BrokerKind, WAIT, bot};

const NAGIOS: &str = "/usr/sbin/nagios4";

/// A Nagios 4 in a directory of its own: passive checks only, state not
/// retained, the status file written every second.
struct Nagios {
    dir: PathBuf,
    child: Option<Child>,
}

impl Nagios {
    fn new(dir: &Path) -> Result<Nagios> {
        let d = dir.display();
        std::fs::create_dir_all(dir.join("spool"))?;
        std::fs::create_dir_all(dir.join("rw"))?;
        let user = nix_user();
        std::fs::write(
            dir.join("nagios.cfg"),
            format!(
                "log_file={d}/nagios.log\ncfg_file={d}/objects.cfg\nstatus_file={d}/status.dat\n\
                 status_update_interval=1\ncommand_file={d}/rw/nagios.cmd\ncheck_external_commands=1\n\
                 command_check_interval=-1\nlock_file={d}/nagios.lock\ntemp_file={d}/nagios.tmp\n\
                 temp_path={d}\ncheck_result_path={d}/spool\ncheck_result_reaper_frequency=1\n\
                 retain_state_information=0\nstate_retention_file={d}/retention.dat\n\
                 object_cache_file={d}/objects.cache\nprecached_object_file={d}/objects.precache\n\
                 nagios_user={user}\nnagios_group={user}\nlog_passive_checks=1\nlog_external_commands=1\n\
                 accept_passive_service_checks=1\naccept_passive_host_checks=1\nenable_notifications=0\n\
                 execute_service_checks=0\nexecute_host_checks=0\n"
            ),
        )?;
        let service = |name: &str| {
            format!(
                "define service {{\n host_name web1\n service_description {name}\n check_command noop\n \
                 max_check_attempts 1\n check_interval 1\n retry_interval 1\n check_period 24x7\n \
                 active_checks_enabled 0\n passive_checks_enabled 1\n contacts nobody\n \
                 notification_period 24x7\n notification_interval 0\n}}\n"
            )
        };
        let days: String = [
            "sunday",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
        ]
        .iter()
        .map(|d| format!(" {d} 00:00-24:00\n"))
        .collect();
        std::fs::write(
            dir.join("objects.cfg"),
            format!(
                "define timeperiod {{\n timeperiod_name 24x7\n alias 24x7\n{days}}}\n\
                 define command {{\n command_name noop\n command_line /bin/true\n}}\n\
                 define contact {{\n contact_name nobody\n service_notification_period 24x7\n \
                 host_notification_period 24x7\n service_notification_options n\n \
                 host_notification_options n\n service_notification_commands noop\n \
                 host_notification_commands noop\n}}\n\
                 define host {{\n host_name web1\n address 127.0.0.1\n check_command noop\n \
                 max_check_attempts 1\n check_period 24x7\n active_checks_enabled 0\n \
                 passive_checks_enabled 1\n contacts nobody\n notification_period 24x7\n \
                 notification_interval 0\n}}\n{}{}",
                service("tick"),
                service("warn")
            ),
        )?;
        Ok(Nagios {
            dir: dir.to_owned(),
            child: None,
        })
    }

    fn command_file(&self) -> PathBuf {
        self.dir.join("rw/nagios.cmd")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nagios.log")).unwrap_or_default()
    }

    /// Starts Nagios (foreground) and waits until it reads its command file.
    fn start(&mut self) -> Result<()> {
        let before = self
            .log()
            .matches("Successfully launched command file worker")
            .count();
        let child = Command::new(NAGIOS)
            .arg(self.dir.join("nagios.cfg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run nagios4")?;
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while self
            .log()
            .matches("Successfully launched command file worker")
            .count()
            <= before
        {
            ensure!(
                Instant::now() < deadline,
                "Nagios did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGTERM, and waits for it to exit.
    fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            let ok = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()?
                .success();
            ensure!(ok, "kill -TERM nagios failed");
            c.wait()?;
        }
        Ok(())
    }

    /// The `key=value` lines of the status file's block for `kind`
    /// (`hoststatus`, `servicestatus`) of `service` (or the host's).
    fn status(&self, kind: &str, service: Option<&str>) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.join("status.dat")).ok()?;
        text.split(&format!("{kind} {{"))
            .skip(1)
            .map(|block| {
                block
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .lines()
                    .map(|l| l.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .find(|lines| {
                lines.iter().any(|l| l == "host_name=web1")
                    && service.is_none_or(|s| lines.contains(&format!("service_description={s}")))
            })
    }

    /// Waits until the status block holds every `wanted` line.
    fn wait_status(&self, kind: &str, service: Option<&str>, wanted: &[&str]) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.status(kind, service);
            if got
                .as_ref()
                .is_some_and(|g| wanted.iter().all(|w| g.iter().any(|l| l == w)))
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "Nagios's {kind} of {service:?} never had {wanted:?}: {got:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The outputs of the passive results of `service` Nagios processed.
    fn results(&self, service: &str) -> Vec<String> {
        let head = format!("EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;web1;{service};");
        self.log()
            .lines()
            .filter_map(|l| l.split_once(&head).map(|(_, rest)| rest.to_owned()))
            .collect()
    }
}

impl Drop for Nagios {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The user Nagios runs as: this one (root in CI; Nagios drops to it).
fn nix_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

/// A running `bot bridge nagios`.
struct Bridge {
    child: Child,
    _out: Lines,
    _err: Lines,
}

impl Bridge {
    fn start(broker: &str, file: &Path, session: &str) -> Result<Bridge> {
        Bridge::start_with(broker, file, session, &[])
    }

    fn start_with(broker: &str, file: &Path, session: &str, extra: &[&str]) -> Result<Bridge> {
        let mut child = bot_testkit::bot_command(bot())
            .args([
                "bridge",
                "nagios",
                "-b",
                broker,
                "--host-fact",
                "nagios_host",
            ])
            .args(["--session", session])
            .args(extra)
            .arg("--command-file")
            .arg(file)
            .env("BOT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run bot bridge nagios")?;
        let mut out = Lines::from_pipe(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let err = Lines::from_pipe(child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?);
        if let Err(e) = out.wait_for("the bridge's start line", WAIT, |l| {
            l.starts_with("bridging ")
        }) {
            let _ = child.kill();
            return Err(e);
        }
        Ok(Bridge {
            child,
            _out: out,
            _err: err,
        })
    }

    fn stop(&mut self) -> Result<()> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?
            .success();
        ensure!(ok, "kill -TERM failed");
        let status = self.child.wait()?;
        ensure!(status.success(), "bot bridge exited with {status}");
        Ok(())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks `agent` to run check `name`, results to the check results topic.
fn ask(broker_port: u16, agent: &str, name: &str) -> Result<()> {
    let r = bot_testkit::operator_signer().request(Draft {
        action: Action::Check(bot_proto::action::CheckArgs { name: name.into() }),
        filter: None,
        reply_to: topics::CHECK_RESULTS.into(),
        ttl_ms: 60_000,
    });
    bot_testkit::publish(
        broker_port,
        &topics::request_agent_topic(agent),
        &r.encode(),
    )
}

/// Waits until Nagios has processed `n` results of `tick`.
fn wait_ticks(nagios: &Nagios, n: usize) -> Result<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = nagios.results("tick");
        if got.len() >= n {
            return Ok(got);
        }
        ensure!(
            Instant::now() < deadline,
            "Nagios processed {} of {n} results: {got:#?}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn nagios_bridge_feeds_a_real_nagios(kind: BrokerKind) -> Result<()> {
    ensure!(
        Path::new(NAGIOS).exists(),
        "{NAGIOS} is missing: run scripts/test.sh (apt-get install nagios4-core)"
    );
    let broker = Broker::start(kind, bot())?;
    let dir = TempDir::new("nagios");
    let mut nagios = Nagios::new(dir.path())?;
    nagios.start()?;
    let toml = "[facts]\nnagios_host = \"web1\"\n\
                [checks.tick]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"TICK OK - $(date +%s%N)|n=1;2;3\\\"\"]\n\
                [checks.warn]\ncommand = [\"/usr/lib/nagios/plugins/check_dummy\", \"1\", \"odd\"]\n";
    let mut agent = Agent::start(bot(), "nagioshost", &[broker.url()], toml)?;
    let id = agent.id()?;
    let session = format!(
        "t{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut bridge = Bridge::start(&broker.url(), &nagios.command_file(), &session)?;
    // The agent's retained status: its host UP.
    nagios.wait_status(
        "hoststatus",
        None,
        &["current_state=0", "plugin_output=bot agent online"],
    )?;

    // Results, state and performance data.
    ask(broker.port, &id, "warn")?;
    nagios.wait_status(
        "servicestatus",
        Some("warn"),
        &["current_state=1", "plugin_output=WARNING: odd"],
    )?;
    for _ in 0..5 {
        ask(broker.port, &id, "tick")?;
    }
    wait_ticks(&nagios, 5)?;
    nagios.wait_status(
        "servicestatus",
        Some("tick"),
        &["current_state=0", "performance_data=n=1;2;3"],
    )?;

    // Nagios stops; results go on; it comes back: they arrive.
    nagios.stop()?;
    for _ in 0..5 {
        ask(broker.port, &id, "tick")?;
    }
    std::thread::sleep(Duration::from_secs(1));
    nagios.start()?;
    for _ in 0..5 {
        ask(broker.port, &id, "tick")?;
    }
    wait_ticks(&nagios, 15)?;

    // The bridge stops; results go on; it comes back with its session:
    // the broker kept them.
    bridge.stop()?;
    for _ in 0..3 {
        ask(broker.port, &id, "tick")?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut bridge = Bridge::start(&broker.url(), &nagios.command_file(), &session)?;
    let ticks = wait_ticks(&nagios, 18)?;
    let mut distinct = ticks.clone();
    distinct.sort();
    distinct.dedup();
    ensure!(
        ticks.len() == 18 && distinct.len() == 18,
        "lost or doubled results: {ticks:#?}"
    );
    ensure!(
        ticks.iter().all(|t| t.starts_with("0;TICK OK - ")),
        "{ticks:#?}"
    );

    // The agent goes: its host DOWN.
    agent.terminate()?;
    nagios.wait_status(
        "hoststatus",
        None,
        &["current_state=1", "plugin_output=bot agent offline"],
    )?;
    bridge.stop()?;
    Ok(())
}

/// The bridge inside `bot server` (`--nagios-command-file`), fed by a
/// schedule: schedule → agent → durable results topic → Nagios.
fn the_server_runs_the_bridge_for_its_schedules(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let dir = TempDir::new("nagios-in-server");
    let mut nagios = Nagios::new(&dir.path().join("nagios"))?;
    nagios.start()?;
    let toml = "[facts]\nnagios_host = \"web1\"\n\
                [checks.tick]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"TICK OK - $(date +%s%N)\\\"\"]\n";
    let _agent = Agent::start(bot(), "scheduled", &[broker.url()], toml)?;
    let db = format!("sqlite:{}/bot.db", dir.path().display());
    let cmd = nagios.command_file().display().to_string();
    let server = crate::tasks::Server::start_with(
        &broker.server_url(),
        &db,
        &dir.path().join("server"),
        &[
            ("BOT_NAGIOS_COMMAND_FILE", cmd.as_str()),
            ("BOT_NAGIOS_HOST_FACT", "nagios_host"),
        ],
    )?;
    server.wait_agents(1)?;
    let (status, v) = server.post(
        "/api/schedules",
        &serde_json::json!({"name": "tick", "every_s": 1, "check": "tick", "filter": "scheduled"}),
    )?;
    ensure!(status == 201, "{v}");
    nagios.wait_status(
        "hoststatus",
        None,
        &["current_state=0", "plugin_output=bot agent online"],
    )?;
    let ticks = wait_ticks(&nagios, 3)?;
    ensure!(
        ticks.iter().all(|t| t.starts_with("0;TICK OK - ")),
        "{ticks:#?}"
    );
    nagios.wait_status("servicestatus", Some("tick"), &["current_state=0"])?;
    Ok(())
}

/// Two bridges of one share group split the results between them (each
/// result written once, by one of them); here into plain files.
fn bridges_of_a_share_group_split_the_results(kind: BrokerKind) -> Result<()> {
    let broker = Broker::start(kind, bot())?;
    let dir = TempDir::new("share");
    let toml = "[facts]\nnagios_host = \"web1\"\n\
                [checks.tick]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"TICK OK - $(date +%s%N)\\\"\"]\n";
    let agent = Agent::start(bot(), "shared", &[broker.url()], toml)?;
    let id = agent.id()?;
    let files = [dir.path().join("a.cmd"), dir.path().join("b.cmd")];
    // The bridge never creates the command file (Nagios makes its FIFO).
    for f in &files {
        std::fs::write(f, "")?;
    }
    let tag = std::process::id();
    let _a = Bridge::start_with(
        &broker.url(),
        &files[0],
        &format!("a{tag}"),
        &["--share", "g", "--no-hosts"],
    )?;
    let _b = Bridge::start_with(
        &broker.url(),
        &files[1],
        &format!("b{tag}"),
        &["--share", "g", "--no-hosts"],
    )?;
    let n = 40;
    for _ in 0..n {
        ask(broker.port, &id, "tick")?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = |f: &Path| -> Vec<String> {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let (a, b) = (lines(&files[0]), lines(&files[1]));
        if a.len() + b.len() >= n {
            let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
            all.sort();
            all.dedup();
            ensure!(
                all.len() == n && a.len() + b.len() == n,
                "doubled: {a:#?} {b:#?}"
            );
            ensure!(
                !a.is_empty() && !b.is_empty(),
                "one bridge got everything: {} / {}",
                a.len(),
                b.len()
            );
            ensure!(
                all.iter()
                    .all(|l| l.contains("PROCESS_SERVICE_CHECK_RESULT;web1;tick;0;TICK OK")),
                "{all:#?}"
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} + {} of {n} results",
            a.len(),
            b.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

crate::both_brokers!(
    bridges_of_a_share_group_split_the_results,
    nagios_bridge_feeds_a_real_nagios,
    the_server_runs_the_bridge_for_its_schedules
);
