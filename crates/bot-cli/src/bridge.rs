//! `bot bridge nagios`: scheduled check results into Nagios as passive
//! check results, like the ancestor's receiver (MCollective + NRPE +
//! Nagios): the scheduler asks, the results go to a queue (the durable
//! topic `bot/v1/reply/checks/durable`), and this receiver — anywhere on
//! the bus — writes them into Nagios's external command file:
//!
//! ```text
//! [1700000000] PROCESS_SERVICE_CHECK_RESULT;web1;load;0;LOAD OK - load average: 0.1|load1=0.1;5;10;0
//! [1700000000] PROCESS_HOST_CHECK_RESULT;web1;1;bot agent offline
//! ```
//!
//! - Its MQTT session is persistent (`--session NAME`): results sent while
//!   the bridge is down wait in the broker. With `--share GROUP` several
//!   bridges share one stream of results.
//! - Every result is checked against its agent's key (from the agent's
//!   signed, retained status), like `bot run` checks replies.
//! - Host names come from a fact of the agent (`--host-fact`, default
//!   `hostname`; `name` is the agent's name).
//! - The command file is a FIFO that Nagios reads. While it is missing or
//!   has no reader (Nagios restarting), lines wait in a bounded queue
//!   (`--queue`, default 10,000; beyond it the oldest are dropped, counted
//!   and logged) and the file is reopened every 500 ms. A line is written
//!   whole in one `write` (at most `PIPE_BUF`, 4,096 bytes, so lines from
//!   several writers never interleave).

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bot_bus::{Event, Options, Qos, Session};
use bot_proto::action::CheckResult;
use bot_proto::{Reply, ReplyStatus, Status, topics};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::BusArgs;

/// Longest line written (Linux's `PIPE_BUF`: a write up to this size to a
/// FIFO is atomic).
pub const MAX_LINE_BYTES: usize = 4096;
/// Lines held while the command file cannot be written, by default.
pub const DEFAULT_QUEUE: usize = 10_000;
/// How often a missing or closed command file is tried again.
const RETRY: Duration = Duration::from_millis(500);

/// Bridges from the bus to other systems.
#[derive(Debug, Clone, Args)]
pub struct BridgeArgs {
    #[command(subcommand)]
    pub command: BridgeCommand,
}

/// `bot bridge` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum BridgeCommand {
    /// Write scheduled check results into Nagios as passive check results.
    ///
    /// Reads the check results topic with a persistent session (results
    /// sent while the bridge is down wait in the broker), checks each
    /// against its agent's key, and writes PROCESS_SERVICE_CHECK_RESULT
    /// lines (host: the agent's --host-fact, service: the check's name) and
    /// PROCESS_HOST_CHECK_RESULT lines when agents go online (UP) or
    /// offline (DOWN) into Nagios's command file. While Nagios restarts,
    /// lines queue (bounded by --queue) and the file is reopened.
    #[command(
        after_help = "Example:\n  bot bridge nagios -b mqtt://broker:1883 --command-file /var/lib/nagios4/rw/nagios.cmd"
    )]
    Nagios(NagiosArgs),
}

/// `bot bridge nagios`.
#[derive(Debug, Clone, Args)]
pub struct NagiosArgs {
    #[command(flatten)]
    pub bus: BusArgs,
    /// Nagios's external command file (command_file in nagios.cfg), a FIFO that Nagios makes: the bridge never creates it.
    #[arg(long, value_name = "PATH")]
    pub command_file: PathBuf,
    /// The results topic to read (a check schedule's --reply-to).
    #[arg(long, value_name = "TOPIC", default_value = topics::CHECK_RESULTS, value_parser = reply_topic)]
    pub topic: String,
    /// Name of the persistent MQTT session (client id bot-bridge-NAME): one per bridge.
    #[arg(long, value_name = "NAME", default_value = "nagios", value_parser = topic_level)]
    pub session: String,
    /// Share the results with the other bridges of this group (MQTT shared subscription) instead of each getting all.
    #[arg(long, value_name = "GROUP", value_parser = topic_level)]
    pub share: Option<String>,
    /// The agent's fact that is its Nagios host name (`name`: the agent's name).
    #[arg(long, value_name = "FACT", default_value = "hostname")]
    pub host_fact: String,
    /// Lines held while the command file cannot be written; beyond, the oldest are dropped (counted).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_QUEUE, value_parser = queue_size)]
    pub queue: usize,
    /// Do not write host results for agents going online or offline.
    #[arg(long)]
    pub no_hosts: bool,
}

fn queue_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of lines in 1..=1000000")),
    }
}

fn reply_topic(s: &str) -> Result<String, String> {
    topics::valid_reply_topic(s).map(|()| s.to_owned())
}

fn topic_level(s: &str) -> Result<String, String> {
    topics::valid_topic_level(s).map(|()| s.to_owned())
}

/// A field of a command line: no `;` (the separator) and no control
/// characters.
fn field(s: &str) -> String {
    s.chars()
        .map(|c| if c == ';' || c.is_control() { '_' } else { c })
        .collect()
}

/// Plugin output for a command line: the first line, then the long output
/// with its line breaks escaped (`\n`, as Nagios 4 reads them), then `|`
/// and the performance data; other control characters dropped; cut so the
/// whole line stays within [`MAX_LINE_BYTES`].
fn plugin_output(output: &str, long: &str, perf: &str, room: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect::<String>()
            .replace('|', "/")
    };
    let mut text = clean(output).replace('\n', " ");
    let long = clean(long);
    if !long.trim().is_empty() {
        text.push_str("\\n");
        text.push_str(&long.trim_end().replace('\n', "\\n"));
    }
    let perf: String = perf
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let perf = perf.trim();
    // The performance data is kept whole when it fits; the text is cut.
    let perf_room = if perf.is_empty() { 0 } else { perf.len() + 1 };
    let text_room = room.saturating_sub(perf_room);
    let text = cut(&text, if perf_room > room { room } else { text_room });
    if perf.is_empty() || perf_room > room {
        text
    } else {
        format!("{text}|{perf}")
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `[time] PROCESS_SERVICE_CHECK_RESULT;host;service;code;output|perf`.
pub fn service_line(time_s: u64, host: &str, r: &CheckResult) -> String {
    let head = format!(
        "[{time_s}] PROCESS_SERVICE_CHECK_RESULT;{};{};{};",
        field(host),
        field(&r.check),
        r.code.min(3)
    );
    let output = match (&r.reason, r.output.is_empty()) {
        (Some(reason), true) => format!("UNKNOWN: {reason}"),
        _ => r.output.clone(),
    };
    let room = MAX_LINE_BYTES.saturating_sub(head.len() + 1);
    format!(
        "{head}{}\n",
        plugin_output(&output, &r.long_output, &r.perfdata, room)
    )
}

/// `[time] PROCESS_HOST_CHECK_RESULT;host;0|1;bot agent online|offline`.
pub fn host_line(time_s: u64, host: &str, online: bool) -> String {
    let (code, text) = if online {
        (0, "bot agent online")
    } else {
        (1, "bot agent offline")
    };
    format!(
        "[{time_s}] PROCESS_HOST_CHECK_RESULT;{};{code};{text}\n",
        field(host)
    )
}

/// Nagios's command file, with the lines waiting for it.
#[derive(Debug)]
pub struct CommandFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    queue: VecDeque<String>,
    cap: usize,
    /// Lines written.
    pub written: u64,
    /// Lines dropped because the queue was full.
    pub dropped: u64,
    /// When the file was last found unusable (for one log line per outage).
    down_since: Option<Instant>,
}

impl CommandFile {
    /// A command file at `path`, holding at most `cap` lines while it
    /// cannot be written.
    pub fn new(path: PathBuf, cap: usize) -> CommandFile {
        CommandFile {
            path,
            file: None,
            queue: VecDeque::new(),
            cap: cap.max(1),
            written: 0,
            dropped: 0,
            down_since: None,
        }
    }

    /// Lines waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues `line` and writes what can be written.
    pub fn push(&mut self, line: String) {
        if self.queue.len() >= self.cap {
            self.queue.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    queue = self.cap,
                    "the Nagios command file is unusable and the queue is full: dropping the oldest results"
                );
            }
        }
        self.queue.push_back(line);
        self.flush();
    }

    fn down(&mut self, why: &str) {
        self.file = None;
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            tracing::warn!(path = %self.path.display(), %why, queued = self.queue.len(),
                "cannot write the Nagios command file; queueing results and retrying");
        }
    }

    /// Writes queued lines until the queue is empty or the file cannot
    /// take more (no reader, a full pipe).
    pub fn flush(&mut self) {
        while let Some(line) = self.queue.front() {
            if self.file.is_none() {
                // Non-blocking: with no reader (Nagios down) the open fails
                // at once (ENXIO) instead of hanging.
                match std::fs::OpenOptions::new()
                    .append(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open(&self.path)
                {
                    Ok(f) => {
                        if let Some(since) = self.down_since.take() {
                            tracing::info!(path = %self.path.display(), down_s = since.elapsed().as_secs(),
                                queued = self.queue.len(), "the Nagios command file is back");
                        }
                        self.file = Some(f);
                    }
                    Err(e) => {
                        self.down(&e.to_string());
                        return;
                    }
                }
            }
            let Some(file) = self.file.as_mut() else {
                return;
            };
            match file.write(line.as_bytes()) {
                Ok(n) if n == line.len() => {
                    self.queue.pop_front();
                    self.written += 1;
                }
                Ok(n) => {
                    // Only a regular file writes part of a line: the rest next.
                    let rest = line[n..].to_owned();
                    if let Some(front) = self.queue.front_mut() {
                        *front = rest;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.down(&e.to_string());
                    return;
                }
            }
        }
    }
}

/// What the bridge knows of an agent.
#[derive(Debug)]
struct Known {
    key: bot_auth::PublicKey,
    host: String,
    online: bool,
}

/// The agent's Nagios host name: the fact `host_fact` (a string), `name`
/// for the agent's name, `hostname` for its host name; else its name.
fn host_of(s: &Status, host_fact: &str) -> String {
    match host_fact {
        "name" => s.name.clone(),
        "hostname" if !s.hostname.is_empty() => s.hostname.clone(),
        fact => match s.facts.get(fact) {
            Some(serde_json::Value::String(v)) if !v.is_empty() => v.clone(),
            _ => s.name.clone(),
        },
    }
}

/// Runs `bot bridge …`.
pub async fn run(args: BridgeArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    match args.command {
        BridgeCommand::Nagios(a) => nagios(a, shutdown).await,
    }
}

/// What the Nagios bridge does, whichever process runs it.
#[derive(Debug, Clone)]
pub struct NagiosSettings {
    /// Nagios's command file.
    pub command_file: PathBuf,
    /// The results topic.
    pub topic: String,
    /// A share group, if results are shared between bridges.
    pub share: Option<String>,
    /// The agents' fact that is their host name.
    pub host_fact: String,
    /// Lines held while the command file cannot be written.
    pub queue: usize,
    /// Write host results when agents go online or offline.
    pub hosts: bool,
}

impl NagiosSettings {
    /// The settings for a bridge in the server's process: the default
    /// results topic, `host_fact`, the default queue, host results.
    pub fn in_server(command_file: PathBuf, host_fact: String) -> NagiosSettings {
        NagiosSettings {
            command_file,
            topic: topics::CHECK_RESULTS.to_owned(),
            share: None,
            host_fact,
            queue: DEFAULT_QUEUE,
            hosts: true,
        }
    }
}

/// Runs `bot bridge nagios` until `shutdown`.
pub async fn nagios(a: NagiosArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let mut options = Options::new(
        format!("bot-bridge-{}", a.session),
        a.bus.brokers_with_credentials()?,
    );
    options.tls = a.bus.tls()?;
    let settings = NagiosSettings {
        command_file: a.command_file.clone(),
        topic: a.topic.clone(),
        share: a.share.clone(),
        host_fact: a.host_fact.clone(),
        queue: a.queue,
        hosts: !a.no_hosts,
    };
    let timeout = Duration::from_secs_f64(a.bus.connect_timeout);
    run_nagios(options, settings, timeout, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the Nagios bridge on a session made from `options` (its client id,
/// brokers and TLS; the rest is set here) until `shutdown`. Fails if not
/// subscribed within `connect_timeout`.
pub async fn run_nagios(
    mut options: Options,
    a: NagiosSettings,
    connect_timeout: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let results = match &a.share {
        Some(group) => format!("$share/{group}/{}", a.topic),
        None => a.topic.clone(),
    };
    // Persistent: results published while the bridge is away are queued
    // by the broker for this session.
    options.clean_session = false;
    options.subscriptions = vec![
        (topics::STATUS_WILDCARD.to_owned(), Qos::AtLeastOnce),
        (results, Qos::AtLeastOnce),
    ];
    options.backoff_max = Duration::from_secs(5);
    options.queue = 100_000;
    let mut session = Session::start(options, &shutdown);
    // Results the broker kept for this session come before the SUBACK:
    // keep them.
    let early = wait_subscribed_keeping(&mut session, connect_timeout).await?;
    tracing::info!(topic = %a.topic, file = %a.command_file.display(), "Nagios bridge running");
    println!("bridging {} to {}", a.topic, a.command_file.display());
    let mut file = CommandFile::new(a.command_file.clone(), a.queue);
    let mut agents: HashMap<String, Known> = HashMap::new();
    let status_prefix = topics::status_topic("");
    let mut tick = tokio::time::interval(RETRY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refused = 0u64;
    let mut early = VecDeque::from(early);
    // Results of agents whose status has not come yet (after a restart the
    // kept results may come before the retained statuses), by arrival.
    let mut waiting: VecDeque<(Instant, Reply)> = VecDeque::new();
    loop {
        let message = match early.pop_front() {
            Some(m) => m,
            None => tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    file.flush();
                    continue;
                }
                ev = session.events.recv() => match ev {
                    Some(Event::Message(m)) => m,
                    Some(Event::Disconnected { broker, reason }) => {
                        tracing::warn!(%broker, %reason, "bridge lost the bus");
                        continue;
                    }
                    Some(_) => continue,
                    None => break,
                },
            },
        };
        let now_s = bot_proto::now_ms() / 1000;
        if let Some(id) = message.topic.strip_prefix(&status_prefix) {
            let Ok(s) = Status::decode(&message.payload) else {
                continue;
            };
            if s.id != id {
                continue;
            }
            let Some(key) = s
                .key
                .as_deref()
                .and_then(|k| k.parse::<bot_auth::PublicKey>().ok())
            else {
                continue;
            };
            if bot_auth::sign::check(s.sig.as_deref(), &s.signing_bytes(), &key).is_err() {
                tracing::warn!(agent = %s.id, "status signature refused");
                continue;
            }
            let host = host_of(&s, &a.host_fact);
            let changed = agents
                .get(id)
                .is_none_or(|k| k.online != s.online || k.host != host);
            let known = Known {
                key,
                host: host.clone(),
                online: s.online,
            };
            if changed && a.hosts {
                file.push(host_line(now_s, &host, s.online));
            }
            // Results that waited for this agent's key.
            let (theirs, others): (VecDeque<_>, VecDeque<_>) =
                waiting.drain(..).partition(|(_, r)| r.agent_id == id);
            waiting = others;
            for (_, reply) in theirs {
                write_result(&mut file, &known, &reply, &mut refused);
            }
            agents.insert(id.to_owned(), known);
            continue;
        }
        let Ok(reply) = Reply::decode(&message.payload) else {
            continue;
        };
        let Some(agent) = agents.get(&reply.agent_id) else {
            // Waits up to a minute for its agent's status (bounded by the
            // queue's size); beyond, it is refused.
            while waiting
                .front()
                .is_some_and(|(t, _)| t.elapsed() > Duration::from_secs(60))
                || waiting.len() >= a.queue
            {
                if let Some((_, r)) = waiting.pop_front() {
                    refused += 1;
                    tracing::warn!(agent = %r.agent_id, refused,
                        "a result from an agent with no signed status known: refused");
                }
            }
            waiting.push_back((Instant::now(), reply));
            continue;
        };
        write_result(&mut file, agent, &reply, &mut refused);
    }
    file.flush();
    tracing::info!(
        written = file.written,
        dropped = file.dropped,
        queued = file.queued(),
        refused,
        "Nagios bridge stopped"
    );
    session.close().await;
    Ok(())
}

/// Checks `reply` against its agent's key and writes it as a passive
/// service result.
fn write_result(file: &mut CommandFile, agent: &Known, reply: &Reply, refused: &mut u64) {
    if let Err(why) =
        bot_auth::sign::check(reply.sig.as_deref(), &reply.signing_bytes(), &agent.key)
    {
        *refused += 1;
        tracing::warn!(agent = %reply.agent_id, %why, refused = *refused,
            "a result not signed by its agent's key: refused");
        return;
    }
    if reply.status != ReplyStatus::Ok {
        tracing::info!(agent = %reply.agent_id, error = ?reply.error,
            "a check was not run: nothing sent to Nagios");
        return;
    }
    let Ok(result) = serde_json::from_value::<CheckResult>(reply.data.clone()) else {
        return;
    };
    file.push(service_line(reply.created_ms / 1000, &agent.host, &result));
}

/// Waits until `session` is subscribed (or fails after `--connect-timeout`),
/// returning the messages that came first.
async fn wait_subscribed_keeping(
    session: &mut Session,
    deadline: Duration,
) -> anyhow::Result<Vec<bot_bus::Message>> {
    let mut last_error = String::from("no answer");
    let mut kept = Vec::new();
    let ready = tokio::time::timeout(deadline, async {
        while let Some(ev) = session.events.recv().await {
            match ev {
                Event::Subscribed => return true,
                Event::Message(m) => kept.push(m),
                Event::Disconnected { broker, reason } => {
                    last_error = format!("{broker}: {reason}");
                }
                Event::Connected(_) => {}
            }
        }
        false
    })
    .await;
    if ready == Ok(true) {
        return Ok(kept);
    }
    anyhow::bail!(
        "cannot connect to the broker within {} s (last error: {last_error})",
        deadline.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: u8, output: &str, long: &str, perf: &str) -> CheckResult {
        CheckResult {
            check: "load".into(),
            state: String::new(),
            code,
            output: output.into(),
            long_output: long.into(),
            perfdata: perf.into(),
            reason: None,
            duration_ms: 1,
        }
    }

    #[test]
    fn lines_are_nagios_external_commands() {
        let r = result(
            1,
            "LOAD WARNING - load average: 5.1",
            "",
            "load1=5.1;5;10;0",
        );
        assert_eq!(
            service_line(1_700_000_000, "web1", &r),
            "[1700000000] PROCESS_SERVICE_CHECK_RESULT;web1;load;1;LOAD WARNING - load average: 5.1|load1=5.1;5;10;0\n"
        );
        // Long output with its lines escaped; ; and control characters out
        // of the host and service; | in the text replaced.
        let r = result(2, "DISK | CRITICAL\r", "a\nb\n", "");
        assert_eq!(
            service_line(1, "we;b\n1", &r),
            "[1] PROCESS_SERVICE_CHECK_RESULT;we_b_1;load;2;DISK / CRITICAL\\na\\nb\n"
        );
        let mut r = result(3, "", "", "");
        r.reason = Some("timed out".into());
        assert!(service_line(1, "h", &r).ends_with(";load;3;UNKNOWN: timed out\n"));
        assert_eq!(
            host_line(5, "web1", false),
            "[5] PROCESS_HOST_CHECK_RESULT;web1;1;bot agent offline\n"
        );
        assert_eq!(
            host_line(5, "web1", true),
            "[5] PROCESS_HOST_CHECK_RESULT;web1;0;bot agent online\n"
        );
    }

    #[test]
    fn a_line_fits_one_atomic_pipe_write() {
        let r = result(0, &"é".repeat(10_000), &"x\n".repeat(5_000), "a=1;2;3");
        let line = service_line(1, "h", &r);
        assert!(line.len() <= MAX_LINE_BYTES, "{}", line.len());
        assert!(line.ends_with("|a=1;2;3\n"), "perfdata kept whole");
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn lines_wait_for_the_fifo_and_the_oldest_go_beyond_the_bound() {
        let dir = bot_testkit_dir();
        let path = dir.join("nagios.cmd");
        let _ = std::fs::remove_file(&path);
        let mut f = CommandFile::new(path.clone(), 3);
        for i in 0..5 {
            f.push(format!("line {i}\n"));
        }
        // No file yet: held, the two oldest dropped.
        assert_eq!((f.queued(), f.dropped, f.written), (3, 2, 0));
        // A FIFO with a reader: the held lines arrive, in order.
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo {}", path.display());
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
            .unwrap_or_else(|e| panic!("open: {e}"));
        f.flush();
        assert_eq!((f.queued(), f.written), (0, 3));
        let mut got = String::new();
        std::io::Read::read_to_string(&mut &reader, &mut got).ok();
        assert_eq!(got, "line 2\nline 3\nline 4\n");
        // The reader goes (Nagios stops): the next line waits, then arrives
        // once a reader is back.
        drop(reader);
        f.push("line 5\n".into());
        assert_eq!(f.queued(), 1);
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
            .unwrap_or_else(|e| panic!("open: {e}"));
        f.flush();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut &reader, &mut got).ok();
        assert_eq!(got, "line 5\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn bot_testkit_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bot-bridge-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }
}
