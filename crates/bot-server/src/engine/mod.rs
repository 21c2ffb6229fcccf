//! The task engine: one actor that owns every unfinished task's
//! [`Rollout`], starts targets by sending requests on the bus, records
//! results, enforces timeouts, parallel windows and failure thresholds, and
//! persists every transition before it acts on it.
//!
//! The loop, per batch of inputs (submits, cancels, replies, agents going
//! offline, due deadlines — everything queued is taken at once):
//! 1. apply the inputs to the rollouts (pure state changes);
//! 2. start due targets (RUNNING, with a fresh request id);
//! 3. write every change in ONE transaction (group commit);
//! 4. only then acknowledge the replies (PUBACK), send the requests, publish
//!    the events and answer the API.
//!
//! So after a crash the store never claims less than what happened on the
//! bus: a result is acknowledged only once stored (the broker delivers an
//! unacknowledged one again to the persistent session), and a target is
//! RUNNING in the store before its request leaves. On start the engine
//! resumes every unfinished task and sends each RUNNING target's request
//! again with the same id and creation time: the agent never runs one id
//! twice (and rejects it once expired), so a target never runs twice.
//!
//! Cancelling a task starts nothing further (WAITING targets become
//! SKIPPED) and sends a `cancel` request for each RUNNING target: the agent
//! kills the command's process group and the target's result comes back
//! (FAILED, "cancelled").

mod rollout;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use bot_bus::{Ack, Publisher, Qos};
use bot_proto::api::{TargetRun, TargetState, Task, TaskEvent};
use bot_proto::{Reply, ReplyStatus, Request, topics};
use bot_store::{Change, Store};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub(crate) use rollout::{Outcome, Rollout, Step};

use crate::registry::Registry;

/// Time allowed beyond a target's timeout for the agent's own kill and the
/// reply to travel, before the engine gives up on it.
pub const REPLY_GRACE_MS: u64 = 5_000;

/// After a restart, time allowed for results queued by the broker to arrive
/// before a target whose deadline passed while the server was down times out.
pub const RESUME_GRACE_MS: u64 = 5_000;

/// How long a `cancel` request stays valid.
const CANCEL_TTL_MS: u64 = 30_000;

/// Most inputs taken in one batch.
const BATCH: usize = 4096;

/// What the engine is told.
#[derive(Debug)]
pub(crate) enum Input {
    /// A task was stored (WAITING): start it.
    Submitted(Box<Task>, Vec<TargetRun>),
    /// Cancel a task; answers false if it is not running here.
    Cancel {
        id: String,
        who: String,
        done: oneshot::Sender<bool>,
    },
    /// A reply on the results topic (with its acknowledgement).
    Reply(Box<Reply>, Option<Ack>),
    /// An agent went offline.
    Offline(String),
}

/// Sends inputs to the engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Input>,
}

impl EngineHandle {
    pub(crate) fn send(&self, input: Input) {
        if self.tx.send(input).is_err() {
            tracing::warn!("task engine has stopped; input dropped");
        }
    }

    /// Asks the engine to cancel a running task; false if it is not running.
    pub async fn cancel(&self, id: &str, who: &str) -> bool {
        let (done, rx) = oneshot::channel();
        self.send(Input::Cancel {
            id: id.to_owned(),
            who: who.to_owned(),
            done,
        });
        rx.await.unwrap_or(false)
    }
}

/// Builds the engine; run it with [`Engine::run`].
pub(crate) struct Engine {
    store: Store,
    publisher: Publisher,
    registry: Registry,
    /// Where agents send task results (`bot/v1/reply/<client id>/durable`).
    results_topic: String,
    /// Signs every request (its sender names the token that asked).
    signer: std::sync::Arc<bot_auth::Signer>,
    /// Records every request sent.
    audit: crate::audit::Audit,
    /// Where task and target transitions go (MQTT, the browser, …).
    events: crate::events::EventHub,
    /// The time (tests move it themselves).
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    rx: mpsc::UnboundedReceiver<Input>,
    offline_rx: mpsc::UnboundedReceiver<String>,
    active: HashMap<String, Rollout>,
    /// Request id → (task id, target index).
    requests: HashMap<String, (String, usize)>,
    /// (deadline, request id), earliest first; stale entries are skipped.
    deadlines: BinaryHeap<Reverse<(u64, String)>>,
    /// Requests that could not be sent (no connection): sent again later.
    unsent: Vec<(String, Request)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("active", &self.active.len())
            .finish_non_exhaustive()
    }
}

/// Everything one batch produced, acted on after the commit.
#[derive(Default)]
struct Out {
    changes: Vec<Change>,
    sends: Vec<(String, Request)>,
    events: Vec<TaskEvent>,
    acks: Vec<Ack>,
    answers: Vec<(oneshot::Sender<bool>, bool)>,
    touched: HashSet<String>,
}

impl Engine {
    pub(crate) fn new(
        store: Store,
        publisher: Publisher,
        registry: Registry,
        results_topic: String,
        signer: std::sync::Arc<bot_auth::Signer>,
        offline_rx: mpsc::UnboundedReceiver<String>,
        audit: crate::audit::Audit,
    ) -> (Engine, EngineHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = Engine {
            store,
            publisher,
            registry,
            results_topic,
            signer,
            audit,
            events: crate::events::EventHub::default(),
            clock: crate::clock::system(),
            rx,
            offline_rx,
            active: HashMap::new(),
            requests: HashMap::new(),
            deadlines: BinaryHeap::new(),
            unsent: Vec::new(),
        };
        (engine, EngineHandle { tx })
    }

    /// This engine, publishing task and target transitions on `events`.
    pub(crate) fn with_events(mut self, events: crate::events::EventHub) -> Engine {
        self.events = events;
        self
    }

    /// This engine, reading time from `clock`.
    pub(crate) fn with_clock(mut self, clock: std::sync::Arc<dyn crate::clock::Clock>) -> Engine {
        self.clock = clock;
        self
    }

    /// Resumes unfinished tasks, then runs until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.resume().await?;
        loop {
            let mut inputs = Vec::new();
            let wake = self.next_wake();
            let clock = self.clock.clone();
            let sleep = async move {
                match wake {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                Some(id) = self.offline_rx.recv() => inputs.push(Input::Offline(id)),
                input = self.rx.recv() => match input {
                    Some(i) => inputs.push(i),
                    None => return Ok(()),
                },
                () = sleep => {}
            }
            while inputs.len() < BATCH {
                match self.rx.try_recv() {
                    Ok(i) => inputs.push(i),
                    Err(_) => break,
                }
            }
            while let Ok(id) = self.offline_rx.try_recv() {
                inputs.push(Input::Offline(id));
            }
            self.step(inputs, &shutdown).await;
        }
    }

    /// Loads every unfinished task from the store and picks up where it was.
    async fn resume(&mut self) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let mut out = Out::default();
        for task in self.store.unfinished_tasks().await? {
            let targets = self.store.targets(&task.id).await?;
            let id = task.id.clone();
            let rollout = Rollout::new(task, targets);
            let mut resent = 0;
            for (i, t) in rollout.targets.iter().enumerate() {
                if t.state != TargetState::Running {
                    continue;
                }
                let Some(request) = self.request_for(&rollout.task, t) else {
                    continue;
                };
                let deadline = deadline(&rollout.task, t).max(now + RESUME_GRACE_MS);
                self.requests.insert(request.id.clone(), (id.clone(), i));
                self.deadlines.push(Reverse((deadline, request.id.clone())));
                out.sends.push((topic_for(&rollout.task, t), request));
                resent += 1;
            }
            tracing::info!(task = %id, resent, "task resumed");
            out.touched.insert(id.clone());
            self.active.insert(id, rollout);
        }
        self.advance(now, &mut out);
        self.commit(out, &CancellationToken::new()).await;
        Ok(())
    }

    async fn step(&mut self, inputs: Vec<Input>, shutdown: &CancellationToken) {
        let now = self.clock.now_ms();
        let mut out = Out::default();
        for input in inputs {
            self.apply(input, now, &mut out);
        }
        self.expire(now, &mut out);
        self.advance(now, &mut out);
        self.commit(out, shutdown).await;
        if !self.unsent.is_empty() && self.publisher.is_connected() {
            for (topic, request) in std::mem::take(&mut self.unsent) {
                self.publish_request(topic, request).await;
            }
        }
    }

    fn apply(&mut self, input: Input, now: u64, out: &mut Out) {
        match input {
            Input::Submitted(task, targets) => {
                let id = task.id.clone();
                if !self.active.contains_key(&id) {
                    self.active.insert(id.clone(), Rollout::new(*task, targets));
                    out.touched.insert(id);
                }
            }
            Input::Cancel { id, who, done } => {
                let ok = match self.active.get_mut(&id) {
                    Some(r) => {
                        let mut step = Step::default();
                        let ok = r.cancel(&who, &mut step);
                        record(r, &step, now, out);
                        ok
                    }
                    None => false,
                };
                if ok {
                    // Stop what already runs: a `cancel` request to each
                    // agent (it kills the command's process group; the
                    // target's result then comes back as usual).
                    if let Some(r) = self.active.get(&id) {
                        for t in &r.targets {
                            if t.state != TargetState::Running || t.agent_id.is_empty() {
                                continue;
                            }
                            let Some(running) = &t.request_id else {
                                continue;
                            };
                            let draft = bot_proto::Draft {
                                action: bot_proto::Action::Cancel(bot_proto::action::CancelArgs {
                                    request_id: running.clone(),
                                }),
                                filter: None,
                                reply_to: self.results_topic.clone(),
                                ttl_ms: CANCEL_TTL_MS,
                            };
                            let sender = format!("{} (token {who})", self.signer.sender());
                            let c = self.signer.request_as(
                                draft,
                                &sender,
                                uuid::Uuid::now_v7().simple().to_string(),
                                now,
                            );
                            out.sends
                                .push((topics::request_agent_topic(&t.agent_id), c));
                        }
                    }
                }
                if ok {
                    out.touched.insert(id);
                }
                out.answers.push((done, ok));
            }
            Input::Reply(reply, ack) => {
                if let Some(ack) = ack {
                    out.acks.push(ack);
                }
                let Some((task_id, i)) = self.requests.remove(&reply.request_id) else {
                    tracing::debug!(request = %reply.request_id, "reply for no running target (late or duplicate)");
                    return;
                };
                let Some(r) = self.active.get_mut(&task_id) else {
                    return;
                };
                if r.targets[i].agent_id.is_empty() {
                    // A pull-mode slot: whoever took it is the target now.
                    r.targets[i].agent_id.clone_from(&reply.agent_id);
                    r.targets[i].agent_name.clone_from(&reply.agent_name);
                } else if r.targets[i].agent_id != reply.agent_id {
                    tracing::warn!(request = %reply.request_id, from = %reply.agent_id, "reply from another agent ignored");
                    self.requests.insert(reply.request_id.clone(), (task_id, i));
                    return;
                }
                let outcome = outcome_of(&r.task.action, &reply);
                self.finish(&task_id, i, outcome, now, out);
            }
            Input::Offline(agent) => {
                let lost: Vec<(String, String, usize)> = self
                    .requests
                    .iter()
                    .filter(|(_, (task, i))| {
                        self.active
                            .get(task)
                            .is_some_and(|r| r.targets[*i].agent_id == agent)
                    })
                    .map(|(req, (task, i))| (req.clone(), task.clone(), *i))
                    .collect();
                for (req, task_id, i) in lost {
                    self.requests.remove(&req);
                    let why = "the agent went offline while the target ran".to_owned();
                    self.finish(&task_id, i, Outcome::bare(TargetState::Lost, why), now, out);
                }
            }
        }
    }

    /// Times out RUNNING targets whose deadline passed.
    fn expire(&mut self, now: u64, out: &mut Out) {
        while let Some(Reverse((deadline, _))) = self.deadlines.peek() {
            if *deadline > now {
                break;
            }
            let Some(Reverse((_, req))) = self.deadlines.pop() else {
                break;
            };
            let Some((task_id, i)) = self.requests.remove(&req) else {
                continue; // already answered
            };
            let Some(secs) = self
                .active
                .get(&task_id)
                .map(|r| r.task.timeout_ms as f64 / 1000.0)
            else {
                continue;
            };
            let why = format!("no result within the timeout ({secs} s) and its grace");
            self.finish(
                &task_id,
                i,
                Outcome::bare(TargetState::TimedOut, why),
                now,
                out,
            );
        }
    }

    /// Records how target `i` of `task_id` ended (its request already taken
    /// out of `requests`).
    fn finish(&mut self, task_id: &str, i: usize, outcome: Outcome, now: u64, out: &mut Out) {
        if let Some(r) = self.active.get_mut(task_id) {
            let mut step = Step::default();
            r.finish(i, outcome, now, &mut step);
            record(r, &step, now, out);
            out.touched.insert(task_id.to_owned());
        }
    }

    /// Starts due targets and settles finished tasks, for touched tasks.
    fn advance(&mut self, now: u64, out: &mut Out) {
        let touched: Vec<String> = out.touched.iter().cloned().collect();
        for id in touched {
            let Some(mut r) = self.active.remove(&id) else {
                continue;
            };
            loop {
                let mut step = Step::default();
                let started = r.start_due(now, &mut step);
                let mut lost_now = false;
                for &i in &started {
                    let t = &r.targets[i];
                    if r.task.pool.is_none() && !self.registry.is_online(&t.agent_id) {
                        // Due, but its agent is offline: LOST without sending.
                        r.finish(
                            i,
                            Outcome::bare(
                                TargetState::Lost,
                                "the agent was offline when the target was due".into(),
                            ),
                            now,
                            &mut step,
                        );
                        lost_now = true;
                        continue;
                    }
                    let Some(request) = self.new_request(&r.task, now, None) else {
                        r.finish(
                            i,
                            Outcome::bare(
                                TargetState::Failed,
                                "the task's stored action is invalid".into(),
                            ),
                            now,
                            &mut step,
                        );
                        lost_now = true;
                        continue;
                    };
                    let t = &mut r.targets[i];
                    t.request_id = Some(request.id.clone());
                    t.request_created_ms = Some(now);
                    self.requests.insert(request.id.clone(), (id.clone(), i));
                    self.deadlines
                        .push(Reverse((deadline(&r.task, t), request.id.clone())));
                    out.sends.push((topic_for(&r.task, t), request));
                }
                r.settle(now, &mut step);
                record(&r, &step, now, out);
                // A target lost at start frees its slot (and may stop the
                // task): go round again.
                if !lost_now {
                    break;
                }
            }
            if !r.is_final() {
                self.active.insert(id, r);
            }
        }
    }

    /// Persists the batch, then acts on it.
    async fn commit(&mut self, out: Out, shutdown: &CancellationToken) {
        if !out.changes.is_empty() {
            let mut delay = Duration::from_millis(200);
            while let Err(e) = self.store.apply(&out.changes).await {
                // Nothing below may happen before the store has it: retry.
                tracing::error!(error = %e, changes = out.changes.len(), "cannot store task changes; retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        for ack in out.acks {
            let _ = ack.ack().await;
        }
        for (topic, request) in out.sends {
            self.publish_request(topic, request).await;
        }
        for event in out.events {
            self.events
                .publish(crate::events::Event::Task(Box::new(event)));
        }
        for (done, ok) in out.answers {
            let _ = done.send(ok);
        }
    }

    async fn publish_request(&mut self, topic: String, request: Request) {
        self.audit.request(&request, &topic, &self.signer.public());
        if let Err(e) = self
            .publisher
            .publish(topic.clone(), request.encode(), Qos::AtLeastOnce, false)
            .await
        {
            tracing::warn!(request = %request.id, error = %e, "request not sent yet; will retry");
            self.unsent.push((topic, request));
        }
    }

    fn next_wake(&self) -> Option<u64> {
        let deadline = self.deadlines.peek().map(|Reverse((d, _))| *d);
        let retry = (!self.unsent.is_empty()).then(|| self.clock.now_ms() + 500);
        match (deadline, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A target's request, signed: a new id at `now`, or (resending a
    /// RUNNING target after a restart) the id and time it was first sent
    /// with. `None` if the task's stored action is not valid (it was checked
    /// at submission, so only a hand-edited database gets here).
    fn new_request(&self, task: &Task, now: u64, resend: Option<String>) -> Option<Request> {
        let action = match bot_proto::Action::from_parts(&task.action, &task.args) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(task = %task.id, error = %e, "stored task action is invalid");
                return None;
            }
        };
        let draft = bot_proto::Draft {
            action,
            filter: None,
            reply_to: self.results_topic.clone(),
            ttl_ms: task.timeout_ms + REPLY_GRACE_MS,
        };
        let sender = format!("{} (token {})", self.signer.sender(), task.created_by);
        let id = resend.unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
        Some(self.signer.request_as(draft, &sender, id, now))
    }

    /// The request a RUNNING target was sent, rebuilt to send again.
    fn request_for(&self, task: &Task, t: &TargetRun) -> Option<Request> {
        let id = t.request_id.clone()?;
        let created = t.request_created_ms.or(t.started_ms)?;
        self.new_request(task, created, Some(id))
    }
}

/// When the engine gives up on a RUNNING target: its timeout plus the grace.
fn deadline(task: &Task, t: &TargetRun) -> u64 {
    t.started_ms.unwrap_or(0) + task.timeout_ms + REPLY_GRACE_MS
}

/// Where a target's request goes: its agent, or the pool's work queue.
fn topic_for(task: &Task, t: &TargetRun) -> String {
    match &task.pool {
        Some(pool) => topics::request_pool_topic(pool),
        None => topics::request_agent_topic(&t.agent_id),
    }
}

/// Queues the changes of `step` for the store and as events.
fn record(r: &Rollout, step: &Step, now: u64, out: &mut Out) {
    if step.is_empty() {
        return;
    }
    if step.task {
        out.changes.push(Change::Task(r.task.clone()));
    }
    let mut seen = HashSet::new();
    for &i in &step.targets {
        if !seen.insert(i) {
            continue;
        }
        out.changes.push(Change::Target(r.targets[i].clone()));
        out.events.push(TaskEvent {
            task_id: r.task.id.clone(),
            state: r.task.state,
            target: Some(r.targets[i].clone()),
            counts: r.counts.clone(),
            at_ms: now,
        });
    }
    if step.task && step.targets.is_empty() {
        out.events.push(TaskEvent {
            task_id: r.task.id.clone(),
            state: r.task.state,
            target: None,
            counts: r.counts.clone(),
            at_ms: now,
        });
    }
}

/// A target's outcome from an agent's reply.
fn outcome_of(action: &str, reply: &Reply) -> Outcome {
    let state = match reply.status {
        ReplyStatus::Ok => TargetState::Succeeded,
        ReplyStatus::Timeout => TargetState::TimedOut,
        ReplyStatus::Error | ReplyStatus::Rejected => TargetState::Failed,
    };
    let d = &reply.data;
    let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if action == "exec" {
        Outcome {
            state,
            exit_code: d.get("exit_code").and_then(Value::as_i64),
            signal: d.get("signal").and_then(Value::as_i64),
            stdout: text("stdout"),
            stderr: text("stderr"),
            error: reply.error.clone(),
            data: None,
        }
    } else {
        Outcome {
            state,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            error: reply.error.clone(),
            data: (!d.is_null()).then(|| d.clone()),
        }
    }
}
