//! What every structured command shares: discovering the known agents from
//! their retained status messages, resolving a filter centrally against them
//! (the expected set), sending a request and collecting replies with a
//! progress bar, and printing the summary with the explicit "no reply from"
//! list.
//!
//! Discovery: subscribe to `bot/v1/status/+` and to a private sync topic;
//! once subscribed, publish a marker on the sync topic. Brokers deliver the
//! retained statuses on subscription, before anything published afterwards on
//! the same session, so when the marker comes back every retained status has
//! arrived — on mosquitto. Some brokers (rmqtt, the embedded one) send
//! retained messages asynchronously, so discovery also waits until statuses
//! have stopped arriving for 250 ms after the marker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, bail};
use bot_bus::{Event, Qos, Session};
use bot_proto::envelope::{Reply, ReplyStatus, Request, Status};
use bot_proto::{filter, topics};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BusArgs;

/// After the discovery marker, the status stream must be quiet for this
/// many times the marker's own round trip, within the bounds below. rmqtt
/// (the embedded broker) forwards retained messages from a task of their
/// own, so they may trail the marker; how far depends on how loaded the
/// broker is, which the marker's round trip measures. mosquitto sends them
/// before the SUBACK, so nothing trails there.
const DISCOVERY_QUIET_RTTS: u32 = 8;
/// Shortest quiet window after the marker.
const DISCOVERY_QUIET_MIN: Duration = Duration::from_millis(15);
/// Longest quiet window after the marker.
const DISCOVERY_QUIET_MAX: Duration = Duration::from_millis(250);

/// A connected client session with its private reply topic.
#[derive(Debug)]
pub struct Client {
    /// The bus session.
    pub session: Session,
    /// This client's reply topic (`bot/v1/reply/<session>`).
    pub reply_topic: String,
    /// Session name (unique per process).
    pub name: String,
    sync_topic: String,
    /// Agents' keys, from their signed statuses.
    keys: HashMap<String, bot_auth::PublicKey>,
    /// Replies refused: (agent id, name, why).
    refused: Vec<(String, String, String)>,
    /// Messages that arrived during discovery and are not statuses
    /// (replies to a request sent before it), for [`Client::collect`].
    held: std::collections::VecDeque<bot_bus::Message>,
    /// When the discovery marker was published, if it was.
    marker_sent: Option<Instant>,
}

/// Identity of the operator sending requests: `$BOT_IDENTITY`, else user@host.
pub fn sender() -> String {
    if let Ok(id) = std::env::var("BOT_IDENTITY")
        && !id.is_empty()
    {
        return id.chars().take(256).collect();
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid{}", nix::unistd::getuid()));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    format!("{user}@{host}")
}

/// Unix time in milliseconds.
pub use bot_proto::now_ms;

impl Client {
    /// Connects, subscribed to status messages and this client's reply topic.
    pub async fn connect(
        bus: &BusArgs,
        role: &str,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Client> {
        let name = format!("{role}-{}", uuid::Uuid::new_v4().simple());
        let reply_topic = topics::reply_topic(&name);
        let sync_topic = format!("{}/sync/{name}", topics::PREFIX);
        let subs = vec![
            (topics::STATUS_WILDCARD.to_owned(), Qos::AtMostOnce),
            (reply_topic.clone(), Qos::AtMostOnce),
            (sync_topic.clone(), Qos::AtMostOnce),
        ];
        let session = crate::connect(bus, role, subs, shutdown).await?;
        Ok(Client {
            session,
            reply_topic,
            name,
            sync_topic,
            keys: HashMap::new(),
            refused: Vec::new(),
            held: Default::default(),
            marker_sent: None,
        })
    }

    /// Learns an agent's key from its status, if the status is signed by
    /// the key it carries (a status without one, or a broken signature, is
    /// noted and its key not learnt: that agent's replies will be refused).
    fn learn(&mut self, s: &Status) {
        let Some(text) = &s.key else {
            return;
        };
        let Ok(key) = text.parse::<bot_auth::PublicKey>() else {
            tracing::warn!(agent = %s.id, "status carries a malformed key");
            return;
        };
        match bot_auth::sign::check(s.sig.as_deref(), &s.signing_bytes(), &key) {
            Ok(()) => {
                self.keys.insert(s.id.clone(), key);
            }
            Err(e) => tracing::warn!(agent = %s.id, error = %e, "status signature refused"),
        }
    }

    /// Checks that `r` is signed by the key of the agent it names.
    fn verify(&self, r: &Reply) -> Result<(), String> {
        let key = self
            .keys
            .get(&r.agent_id)
            .ok_or("no signed status of that agent is known, so its key is unknown")?;
        bot_auth::sign::check(r.sig.as_deref(), &r.signing_bytes(), key)
    }

    /// Replies refused because their signature did not check out: (agent
    /// id, agent name as claimed, why).
    pub fn refused(&self) -> &[(String, String, String)] {
        &self.refused
    }

    /// Publishes the discovery marker now ([`Client::discover`] does it if
    /// this was not called): before a request, so that the broker echoes
    /// it before anything else is queued for this client (mosquitto, by
    /// default without TCP_NODELAY, holds a small packet behind an
    /// unacknowledged one for the peer's delayed ACK, ~40 ms).
    pub async fn start_discovery(&mut self) -> anyhow::Result<()> {
        let marker = format!("sync-{}", self.name);
        self.marker_sent = Some(Instant::now());
        crate::publish_once(
            &self.session,
            &self.sync_topic,
            marker.into_bytes(),
            Qos::AtMostOnce,
        )
        .await
    }

    /// Every agent with a retained status, keyed by id (online or not).
    pub async fn discover(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<BTreeMap<String, Status>> {
        let marker = format!("sync-{}", self.name);
        if self.marker_sent.is_none() {
            self.start_discovery().await?;
        }
        let sent = self.marker_sent.unwrap_or_else(Instant::now);
        let mut quiet = DISCOVERY_QUIET_MAX;
        let deadline = Instant::now() + timeout;
        let mut agents = BTreeMap::new();
        // After the marker, keep reading until statuses stop coming for a
        // moment: some brokers (rmqtt's retainer) deliver retained messages
        // asynchronously, so they may trail the marker.
        let mut quiet_until: Option<Instant> = None;
        loop {
            let wake = quiet_until.map_or(deadline, |q| q.min(deadline));
            let ev = tokio::select! {
                ev = self.session.events.recv() => ev,
                () = tokio::time::sleep_until(wake) => {
                    if quiet_until.is_none() {
                        tracing::warn!("discovery marker did not come back; using the {} statuses seen", agents.len());
                    }
                    return Ok(agents);
                }
            };
            match ev {
                Some(Event::Message(m)) if m.topic == self.sync_topic => {
                    if m.payload.as_ref() == marker.as_bytes() {
                        quiet = (sent.elapsed() * DISCOVERY_QUIET_RTTS)
                            .clamp(DISCOVERY_QUIET_MIN, DISCOVERY_QUIET_MAX);
                        quiet_until = Some(Instant::now() + quiet);
                    }
                }
                Some(Event::Message(m)) if m.topic.starts_with(&topics::status_topic("")) => {
                    if quiet_until.is_some() {
                        quiet_until = Some(Instant::now() + quiet);
                    }
                    if m.payload.is_empty() {
                        continue; // a cleared retained status
                    }
                    match Status::decode(&m.payload) {
                        // Agents make their ids as hyphenated UUIDs.
                        Ok(s) if !bot_proto::is_agent_id(&s.id) => {
                            tracing::warn!(id = %s.id, "ignoring a status whose id no agent makes");
                        }
                        Ok(s) => {
                            self.learn(&s);
                            agents.insert(s.id.clone(), s);
                        }
                        Err(e) => {
                            tracing::warn!(topic = %m.topic, error = %e, "ignoring malformed status")
                        }
                    }
                }
                Some(Event::Message(m)) => self.held.push_back(m),
                Some(_) => {}
                None => bail!("the bus session ended during discovery"),
            }
        }
    }

    /// Publishes `request` on `topic`.
    pub async fn send(&self, topic: &str, request: &Request) -> anyhow::Result<()> {
        crate::publish_once(&self.session, topic, request.encode(), Qos::AtLeastOnce).await
    }

    /// Collects replies to `request_ids` until every agent of `expected` has
    /// answered (all of them, when `expected` is `None`: until `timeout`), or
    /// `timeout` passes. Shows progress on a terminal.
    pub async fn collect(
        &mut self,
        request_ids: &HashSet<String>,
        expected: Option<&BTreeMap<String, String>>,
        want: Option<usize>,
        timeout: Duration,
        quiet: bool,
        shutdown: &CancellationToken,
    ) -> Vec<Reply> {
        let total = want.or(expected.map(BTreeMap::len));
        let bar = progress(total, quiet);
        let deadline = Instant::now() + timeout;
        let mut replies: Vec<Reply> = Vec::new();
        let mut pairs: HashSet<(String, String)> = HashSet::new();
        let mut agents: HashSet<String> = HashSet::new();
        let done = |agents: &HashSet<String>| match (total, expected) {
            (_, Some(e)) => {
                e.keys().all(|id| agents.contains(id)) && total.is_none_or(|n| agents.len() >= n)
            }
            (Some(n), None) => agents.len() >= n,
            (None, None) => false,
        };
        while !done(&agents) {
            let ev = match self.held.pop_front() {
                Some(m) => Some(Event::Message(m)),
                None => tokio::select! {
                    ev = self.session.events.recv() => ev,
                    () = tokio::time::sleep_until(deadline) => break,
                    () = shutdown.cancelled() => break,
                },
            };
            let m = match ev {
                Some(Event::Message(m)) if m.topic == self.reply_topic => m,
                Some(Event::Message(m)) if m.topic.starts_with(&topics::status_topic("")) => {
                    // A status that changed meanwhile (an agent restarted).
                    if let Ok(s) = Status::decode(&m.payload) {
                        self.learn(&s);
                    }
                    continue;
                }
                Some(_) => continue,
                None => break,
            };
            match Reply::decode(&m.payload) {
                Ok(r) if request_ids.contains(&r.request_id) => {
                    if let Err(why) = self.verify(&r) {
                        bar.suspend(|| {
                            eprintln!(
                                "refused a reply claiming to be from {}: {why}",
                                label(&r.agent_name, &r.agent_id)
                            );
                        });
                        self.refused.push((r.agent_id, r.agent_name, why));
                        continue;
                    }
                    // One reply per agent and request: a duplicate delivery is ignored.
                    if pairs.insert((r.agent_id.clone(), r.request_id.clone())) {
                        agents.insert(r.agent_id.clone());
                        bar.inc(1);
                        replies.push(r);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring malformed reply"),
            }
        }
        bar.finish_and_clear();
        replies
    }
}

fn progress(total: Option<usize>, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n as u64),
        None => indicatif::ProgressBar::no_length(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {pos}/{len} answered {wide_bar} {elapsed}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Repeated `-F` filters as one: each in parentheses, joined with `and`
/// (as Choria and MCollective combine repeated filters); `None` for none.
pub fn join_filters(parts: &[String]) -> Option<String> {
    match parts {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(
            many.iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
    }
}

/// Parses a filter given on the command line (the error points at the column).
pub fn parse_filter(text: &str) -> anyhow::Result<filter::Filter> {
    filter::parse(text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The online agents matching `filter`: id → name.
pub fn expected(
    agents: &BTreeMap<String, Status>,
    filter: Option<&filter::Filter>,
) -> BTreeMap<String, String> {
    agents
        .values()
        .filter(|s| s.online)
        .filter(|s| filter.is_none_or(|f| f.matches(*s)))
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect()
}

/// A known agent that matches but is offline: it will not run anything.
#[derive(Debug, Clone)]
pub struct OfflineAgent {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When its last status was made (unix ms): a clean stop's time, or for
    /// a vanished agent, its will's (the time it last connected).
    pub last_status_ms: u64,
}

/// The known agents matching `filter` that are offline, by name.
pub fn offline(
    agents: &BTreeMap<String, Status>,
    filter: Option<&filter::Filter>,
) -> Vec<OfflineAgent> {
    let mut out: Vec<OfflineAgent> = agents
        .values()
        .filter(|s| !s.online)
        .filter(|s| filter.is_none_or(|f| f.matches(*s)))
        .map(|s| OfflineAgent {
            id: s.id.clone(),
            name: s.name.clone(),
            last_status_ms: s.created_ms,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

/// Says on stderr which matching agents are offline, with how long ago
/// their last status was made; whether there were none.
pub fn report_offline(offline: &[OfflineAgent]) -> bool {
    if offline.is_empty() {
        return true;
    }
    let now = bot_auth::now_ms();
    let names: Vec<String> = offline
        .iter()
        .map(|o| {
            format!(
                "{} (last status {})",
                label(&o.name, &o.id),
                crate::task::render::fmt_age(now, o.last_status_ms)
            )
        })
        .collect();
    eprintln!(
        "offline, not run: {} agent{}: {}",
        offline.len(),
        if offline.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    false
}

/// `offline` as JSON objects.
pub fn offline_json(offline: &[OfflineAgent]) -> Vec<Value> {
    offline
        .iter()
        .map(
            |o| serde_json::json!({"id": o.id, "name": o.name, "last_status_ms": o.last_status_ms}),
        )
        .collect()
}

/// A new signed request.
pub fn request(
    signer: &bot_auth::Signer,
    action: bot_proto::Action,
    filter: Option<String>,
    reply_to: &str,
    ttl: Duration,
) -> Request {
    signer.request(bot_proto::Draft {
        action,
        filter,
        reply_to: reply_to.to_owned(),
        ttl_ms: ttl.as_millis().min(u128::from(u64::MAX)) as u64,
    })
}

/// Agents of `expected` that did not reply.
pub fn no_reply<'a>(
    expected: &'a BTreeMap<String, String>,
    replies: &[Reply],
) -> Vec<(&'a str, &'a str)> {
    let got: HashSet<&str> = replies.iter().map(|r| r.agent_id.as_str()).collect();
    expected
        .iter()
        .filter(|(id, _)| !got.contains(id.as_str()))
        .map(|(id, name)| (id.as_str(), name.as_str()))
        .collect()
}

/// `name (id8)` for humans.
pub fn label(name: &str, id: &str) -> String {
    format!("{name} ({})", id.get(..8).unwrap_or(id))
}

/// The reply status word.
pub fn status_word(s: ReplyStatus) -> &'static str {
    match s {
        ReplyStatus::Ok => "ok",
        ReplyStatus::Error => "error",
        ReplyStatus::Timeout => "timeout",
        ReplyStatus::Rejected => "rejected",
    }
}

/// Prints the "no reply from" line on stderr (when any) and returns whether all answered.
pub fn report_missing(missing: &[(&str, &str)]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let names: Vec<String> = missing.iter().map(|(id, name)| label(name, id)).collect();
    eprintln!(
        "no reply from {} agent{}: {}",
        missing.len(),
        if missing.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    false
}

/// Context for the common "cannot parse" case of JSON output.
pub fn to_json(v: &Value) -> anyhow::Result<String> {
    serde_json::to_string_pretty(v).context("cannot encode JSON output")
}

/// Prints one reply for humans: a header with the node, status, exit code and
/// time, then stdout as it is, stderr lines prefixed, and the error if any.
pub fn print_reply(r: &Reply, with_request: bool) {
    let exit = r
        .data
        .get("exit_code")
        .and_then(Value::as_i64)
        .map_or("-".to_owned(), |c| c.to_string());
    let request = if with_request {
        format!(" request {}", r.request_id)
    } else {
        String::new()
    };
    println!(
        "── {}{request}: {} (exit {exit}, {} ms)",
        label(&r.agent_name, &r.agent_id),
        status_word(r.status),
        r.duration_ms
    );
    if let Some(out) = r
        .data
        .get("stdout")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        print!("{out}");
        if !out.ends_with('\n') {
            println!();
        }
    }
    if let Some(err) = r
        .data
        .get("stderr")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        for line in err.lines() {
            println!("stderr: {line}");
        }
    }
    if let Some(e) = &r.error {
        println!("error: {e}");
    }
}
