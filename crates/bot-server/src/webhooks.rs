//! Webhooks: events from the hub POSTed as JSON to operators' URLs.
//!
//! - **Events**: `task.finished` (a task reached a final state),
//!   `target.failed` (a target ended FAILED, TIMED_OUT or LOST),
//!   `agent.online`, `agent.offline`, `check.changed` (a scheduled check
//!   changed state). A hook's filter selects the agents whose events it
//!   gets (`task.finished` is about no one agent: sent whatever the filter).
//! - **Durable**: each matching event becomes a delivery row before any
//!   attempt; attempts update it. A restart loses none (pending rows are
//!   attempted again), and the hub's own loss (a consumer far behind) is
//!   logged.
//! - **The request**: `POST` with the JSON body `{"id", "event",
//!   "created_ms", "data"}` and the headers `Idempotency-Key` and
//!   `X-Bot-Delivery` (the delivery id, the same on every attempt: the
//!   receiver drops repeats), `X-Bot-Event`, and `X-Bot-Signature:
//!   t=<unix s>,sha256=<hex HMAC-SHA256 of "<t>.<body>" with the hook's
//!   secret>`. A 2xx answer delivers; anything else is retried.
//! - **Retries**: exponential backoff with jitter (the n-th retry after a
//!   random time in [½, 1] × min(1 s × 2ⁿ⁻¹, 5 min)), at most
//!   [`MAX_ATTEMPTS`] attempts (about 25 minutes); then the delivery is
//!   `failed` and the hook disabled (logged, its reason in the API): a
//!   hook that keeps failing stops, and its later events wait for `POST
//!   /api/webhooks/{id}/enable`.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub use bot_proto::api::NewWebhook;
use bot_proto::api::{TargetState, WEBHOOK_EVENTS, Webhook, WebhookDelivery};
use bot_store::{HookRow, Store, StoreError};
use serde_json::{Value, json};
use tokio::sync::{Notify, RwLock, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::{Event, Received, Subscription};
use crate::registry::Registry;

/// Attempts per delivery before it fails and its hook is disabled.
pub const MAX_ATTEMPTS: u32 = 12;
/// The first retry's delay (before jitter).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between attempts (before jitter).
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// How long one attempt may take (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts in flight at once, over all hooks.
pub const CONCURRENCY: usize = 8;
/// Most webhooks.
pub const MAX_WEBHOOKS: usize = 100;
/// Delivered and failed deliveries are kept this long (7 days).
pub const HISTORY_MS: u64 = 7 * 86_400_000;

/// Why a webhook was not made or changed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Malformed; the message names the field and value.
    #[error("{0}")]
    Invalid(String),
    /// No such webhook.
    #[error("{0}")]
    NotFound(String),
    /// The name is taken, too many hooks, or a configured hook.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a webhook; the error names the field and value.
pub fn validate(w: &NewWebhook) -> Result<(), String> {
    bot_proto::action::check_name(&w.name)?;
    let url = w.url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("url: {:?} is not an http:// or https:// URL", w.url))?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url.len() > 2048
        || url.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "url: {:?} has no host, or spaces, or is longer than 2048",
            w.url
        ));
    }
    if w.events.is_empty() {
        return Err(format!(
            "events: give one or more of {}",
            WEBHOOK_EVENTS.join(", ")
        ));
    }
    for e in &w.events {
        if !WEBHOOK_EVENTS.contains(&e.as_str()) {
            return Err(format!(
                "events: {e:?} is not one of {}",
                WEBHOOK_EVENTS.join(", ")
            ));
        }
    }
    if let Some(f) = &w.filter {
        bot_proto::filter::parse(f).map_err(|e| {
            format!(
                "filter: {f:?}: error at column {}: {}",
                e.position + 1,
                e.message
            )
        })?;
    }
    let n = w.secret.chars().count();
    if !(16..=1024).contains(&n) {
        return Err(format!("secret: {n} characters; give 16..=1024"));
    }
    Ok(())
}

/// A new, enabled webhook of `w` (a fresh id).
fn new_hook(w: &NewWebhook, source: &str, who: &str, now_ms: u64) -> Webhook {
    Webhook {
        id: uuid::Uuid::now_v7().simple().to_string(),
        name: w.name.clone(),
        url: w.url.trim().to_owned(),
        events: w.events.clone(),
        filter: w.filter.clone(),
        enabled: true,
        disabled_reason: None,
        source: source.to_owned(),
        created_by: who.to_owned(),
        created_ms: now_ms,
    }
}

/// The `X-Bot-Signature` value of `body` sent at `t` (unix seconds).
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},sha256={hex}")
}

/// The delay before attempt `attempts + 1` (after `attempts` failed):
/// exponential, capped, with jitter in [½, 1] of it (`rand` in [0, 1)).
pub fn backoff(attempts: u32, rand: f64) -> Duration {
    let exp = FIRST_RETRY.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let d = exp.min(MAX_RETRY);
    d.mul_f64(0.5 + 0.5 * rand.clamp(0.0, 1.0))
}

/// A hook as the dispatcher matches it: the row and its parsed filter.
type Hook = (HookRow, Option<bot_proto::Filter>);

/// The webhooks service, the dispatcher (events to deliveries) and the
/// deliverer (cheap to clone).
#[derive(Debug, Clone)]
pub struct Webhooks {
    store: Store,
    clock: Arc<dyn Clock>,
    registry: Registry,
    /// The hooks, with their secrets and parsed filters (reloaded on change).
    hooks: Arc<RwLock<Vec<Hook>>>,
    wake: Arc<Notify>,
}

impl Webhooks {
    /// The service; `configured` hooks (the server's configuration file)
    /// are made or updated.
    pub(crate) async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        registry: Registry,
        configured: &[NewWebhook],
    ) -> anyhow::Result<Webhooks> {
        for w in configured {
            validate(w).map_err(|e| anyhow::anyhow!("webhook {:?}: {e}", w.name))?;
            let hook = new_hook(w, "config", "config", clock.now_ms());
            store.upsert_webhook(&hook, &w.secret).await?;
        }
        let this = Webhooks {
            store,
            clock,
            registry,
            hooks: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        this.reload().await?;
        Ok(this)
    }

    async fn reload(&self) -> Result<(), StoreError> {
        let rows = self.store.webhooks().await?;
        let parsed = rows
            .into_iter()
            .map(|r| {
                let f = r
                    .hook
                    .filter
                    .as_deref()
                    .and_then(|f| bot_proto::filter::parse(f).ok());
                (r, f)
            })
            .collect();
        *self.hooks.write().await = parsed;
        Ok(())
    }

    /// Makes a webhook.
    pub async fn create(&self, w: NewWebhook, who: &str) -> Result<Webhook, WebhookError> {
        validate(&w).map_err(WebhookError::Invalid)?;
        if self.hooks.read().await.len() >= MAX_WEBHOOKS {
            return Err(WebhookError::Conflict(format!(
                "there are {MAX_WEBHOOKS} webhooks already (the most allowed)"
            )));
        }
        let hook = new_hook(&w, "api", who, self.clock.now_ms());
        if !self.store.insert_webhook(&hook, &w.secret).await? {
            return Err(WebhookError::Conflict(format!(
                "a webhook named {:?} exists already",
                w.name
            )));
        }
        self.reload().await?;
        tracing::info!(name = %hook.name, url = %hook.url, by = who, "webhook made");
        Ok(hook)
    }

    /// Every webhook, by name.
    pub async fn list(&self) -> Result<Vec<Webhook>, WebhookError> {
        Ok(self
            .store
            .webhooks()
            .await?
            .into_iter()
            .map(|r| r.hook)
            .collect())
    }

    /// One webhook, by id or name.
    pub async fn get(&self, id_or_name: &str) -> Result<Webhook, WebhookError> {
        self.store
            .webhook(id_or_name)
            .await?
            .ok_or_else(|| WebhookError::NotFound(format!("no webhook {id_or_name:?}")))
    }

    /// Deletes a webhook made over the API (and its deliveries).
    pub async fn delete(&self, id_or_name: &str) -> Result<Webhook, WebhookError> {
        let h = self.get(id_or_name).await?;
        if h.source == "config" {
            return Err(WebhookError::Conflict(format!(
                "webhook {:?} comes from the server's configuration file: remove it there",
                h.name
            )));
        }
        self.store.delete_webhook(&h.id).await?;
        self.reload().await?;
        Ok(h)
    }

    /// Enables a webhook again: its pending deliveries are attempted.
    pub async fn enable(&self, id_or_name: &str) -> Result<Webhook, WebhookError> {
        let h = self.get(id_or_name).await?;
        self.store.set_webhook_enabled(&h.id, true, None).await?;
        self.reload().await?;
        self.wake.notify_one();
        self.get(&h.id).await
    }

    /// A webhook's deliveries, newest first.
    pub async fn deliveries(
        &self,
        id_or_name: &str,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, WebhookError> {
        let h = self.get(id_or_name).await?;
        Ok(self.store.deliveries(&h.id, limit).await?)
    }

    /// The events of `event` for webhooks: (name, agent it is about, data).
    fn translate(
        event: &Event,
        finished: &mut Finished,
    ) -> Vec<(&'static str, Option<String>, Value)> {
        match event {
            Event::Task(t) => {
                let mut out = Vec::new();
                if let Some(target) = &t.target
                    && matches!(
                        target.state,
                        TargetState::Failed | TargetState::TimedOut | TargetState::Lost
                    )
                {
                    out.push((
                        "target.failed",
                        Some(target.agent_id.clone()),
                        json!({"task_id": t.task_id, "target": target}),
                    ));
                }
                if t.state.is_final() && finished.first(&t.task_id) {
                    out.push((
                        "task.finished",
                        None,
                        json!({"task_id": t.task_id, "state": t.state, "counts": t.counts}),
                    ));
                }
                out
            }
            Event::Agent {
                id,
                name,
                online,
                at_ms,
            } => vec![(
                if *online {
                    "agent.online"
                } else {
                    "agent.offline"
                },
                Some(id.clone()),
                json!({"agent_id": id, "agent_name": name, "online": online, "at_ms": at_ms}),
            )],
            Event::Check(c) => vec![(
                "check.changed",
                Some(c.agent_id.clone()),
                serde_json::to_value(c).unwrap_or(Value::Null),
            )],
            _ => Vec::new(),
        }
    }

    /// Turns hub events into stored deliveries until `shutdown`.
    pub(crate) async fn dispatch(self, mut events: Subscription, shutdown: CancellationToken) {
        let mut finished = Finished::default();
        let mut reload = tokio::time::interval(Duration::from_secs(30));
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                r = events.recv() => r,
                _ = reload.tick() => {
                    if let Err(e) = self.reload().await {
                        tracing::warn!(error = %e, "cannot reload the webhooks");
                    }
                    continue;
                }
                () = shutdown.cancelled() => return,
            };
            let event = match received {
                None => return,
                Some(Received::Dropped(n)) => {
                    tracing::error!(
                        lost = n,
                        "webhooks fell behind the event hub: {n} events not delivered"
                    );
                    continue;
                }
                Some(Received::Event(e)) => e,
            };
            let translated = Self::translate(&event, &mut finished);
            if translated.is_empty() {
                continue;
            }
            let now = self.clock.now_ms();
            let mut rows = Vec::new();
            {
                let hooks = self.hooks.read().await;
                for (name, agent, data) in translated {
                    for (h, filter) in hooks.iter() {
                        if !h.hook.events.iter().any(|e| e == name) {
                            continue;
                        }
                        if let (Some(f), Some(agent)) = (filter, &agent) {
                            let matches = self.registry.get(agent).is_some_and(|a| f.matches(&a));
                            if !matches {
                                continue;
                            }
                        }
                        let id = uuid::Uuid::now_v7().simple().to_string();
                        rows.push(WebhookDelivery {
                            body: json!({"id": id, "event": name, "created_ms": now, "data": data}),
                            id,
                            hook_id: h.hook.id.clone(),
                            event: name.to_owned(),
                            created_ms: now,
                            state: "pending".into(),
                            attempts: 0,
                            next_attempt_ms: Some(now),
                            last_status: None,
                            last_error: None,
                            delivered_ms: None,
                        });
                    }
                }
            }
            if rows.is_empty() {
                continue;
            }
            // Stored before any attempt; retried while the database fails.
            let mut tries = 0;
            while let Err(e) = self.store.insert_deliveries(&rows).await {
                tries += 1;
                if tries >= 10 {
                    tracing::error!(error = %e, lost = rows.len(), "cannot store webhook deliveries: lost");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            self.wake.notify_one();
        }
    }

    /// Attempts due deliveries until `shutdown`.
    pub(crate) async fn deliver(self, shutdown: CancellationToken) {
        let http = http_agent();
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut in_flight: HashSet<String> = HashSet::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<String>(CONCURRENCY * 2);
        let mut last_prune = 0u64;
        loop {
            let now = self.clock.now_ms();
            if now.saturating_sub(last_prune) > 3_600_000 {
                last_prune = now;
                if let Err(e) = self
                    .store
                    .prune_deliveries(now.saturating_sub(HISTORY_MS))
                    .await
                {
                    tracing::warn!(error = %e, "cannot prune webhook deliveries");
                }
            }
            let due = match self.store.due_deliveries(now, 64).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read webhook deliveries; retrying");
                    Vec::new()
                }
            };
            for d in due {
                if in_flight.contains(&d.id) {
                    continue;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let Some(hook) = self
                    .hooks
                    .read()
                    .await
                    .iter()
                    .find(|(h, _)| h.hook.id == d.hook_id)
                    .map(|(h, _)| h.clone())
                else {
                    continue;
                };
                in_flight.insert(d.id.clone());
                let this = self.clone();
                let http = http.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let id = d.id.clone();
                    this.attempt(&http, &hook, d).await;
                    drop(permit);
                    let _ = done.send(id).await;
                });
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                Some(id) = done_rx.recv() => {
                    in_flight.remove(&id);
                }
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// One attempt of `d`, and its outcome stored.
    async fn attempt(&self, http: &ureq::Agent, hook: &HookRow, mut d: WebhookDelivery) {
        let body = serde_json::to_vec(&d.body).unwrap_or_default();
        let t = self.clock.now_ms() / 1000;
        let sig = signature(&hook.secret, t, &body);
        let url = hook.hook.url.clone();
        let (http, id, event) = (http.clone(), d.id.clone(), d.event.clone());
        let result = tokio::task::spawn_blocking(move || {
            http.post(&url)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", &id)
                .header("X-Bot-Delivery", &id)
                .header("X-Bot-Event", &event)
                .header("X-Bot-Signature", &sig)
                .send(&body[..])
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the request thread failed: {e}")));
        d.attempts += 1;
        let now = self.clock.now_ms();
        match result {
            Ok(status) if (200..300).contains(&status) => {
                d.state = "delivered".into();
                d.last_status = Some(status);
                d.last_error = None;
                d.next_attempt_ms = None;
                d.delivered_ms = Some(now);
            }
            other => {
                let (status, error) = match other {
                    Ok(s) => (Some(s), format!("HTTP {s}")),
                    Err(e) => (None, e),
                };
                d.last_status = status;
                d.last_error = Some(error.clone());
                if d.attempts >= MAX_ATTEMPTS {
                    d.state = "failed".into();
                    d.next_attempt_ms = None;
                    let reason = format!(
                        "delivery {} failed {} times (last: {error})",
                        d.id, d.attempts
                    );
                    tracing::error!(hook = %hook.hook.name, %reason, "webhook disabled");
                    if let Err(e) = self
                        .store
                        .set_webhook_enabled(&d.hook_id, false, Some(&reason))
                        .await
                    {
                        tracing::error!(error = %e, "cannot disable the webhook");
                    }
                    let _ = self.reload().await;
                } else {
                    let wait = backoff(d.attempts, fastrand::f64());
                    d.next_attempt_ms =
                        Some(now + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                    tracing::debug!(hook = %hook.hook.name, delivery = %d.id, attempts = d.attempts,
                        %error, "webhook delivery failed; will retry");
                }
            }
        }
        if let Err(e) = self.store.update_delivery(&d).await {
            tracing::error!(error = %e, delivery = %d.id, "cannot record a webhook attempt");
        }
    }
}

/// The HTTP client of deliveries: rustls with ring and the system's roots,
/// explicit timeouts, no redirects followed (a 3xx is a failure to fix).
fn http_agent() -> ureq::Agent {
    let roots: Vec<ureq::tls::Certificate<'static>> = bot_bus::tls::system_roots()
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .unversioned_rustls_crypto_provider(Arc::new(
            bot_bus::rustls::crypto::ring::default_provider(),
        ))
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(concat!("bot-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Tasks already announced as finished (the last 10,000).
#[derive(Debug, Default)]
struct Finished {
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl Finished {
    /// True the first time `task` is seen.
    fn first(&mut self, task: &str) -> bool {
        if !self.seen.insert(task.to_owned()) {
            return false;
        }
        self.order.push_back(task.to_owned());
        if self.order.len() > 10_000
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_time_and_body() {
        // RFC 4231 test case 2 is HMAC("Jefe", "what do ya want for nothing?").
        let s = signature("Jefe", 0, b"what do ya want for nothing?");
        // Here the message is "0." + body, so compare against ring directly.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"0.what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(s, format!("t=0,sha256={hex}"));
        assert!(ring::hmac::verify(&key, b"0.what do ya want for nothing?", tag.as_ref()).is_ok());
        assert_ne!(signature("Jefe", 1, b"x"), signature("Jefe", 2, b"x"));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(30, 1.0), MAX_RETRY);
        for n in 1..MAX_ATTEMPTS {
            let d = backoff(n, fastrand::f64());
            assert!(d >= backoff(n, 0.0) && d <= backoff(n, 1.0));
        }
        // The whole schedule: about 25 minutes at most before giving up.
        let total: Duration = (1..MAX_ATTEMPTS).map(|n| backoff(n, 1.0)).sum();
        assert!(total <= Duration::from_secs(30 * 60), "{total:?}");
    }

    #[test]
    fn validation_names_the_field() {
        let ok = NewWebhook {
            name: "ops".into(),
            url: "https://hooks.example/bot".into(),
            events: vec!["agent.offline".into()],
            filter: None,
            secret: "0123456789abcdef".into(),
        };
        assert_eq!(validate(&ok), Ok(()));
        for (bad, want) in [
            (
                NewWebhook {
                    url: "ftp://x".into(),
                    ..ok.clone()
                },
                "url:",
            ),
            (
                NewWebhook {
                    url: "http://".into(),
                    ..ok.clone()
                },
                "url:",
            ),
            (
                NewWebhook {
                    events: vec![],
                    ..ok.clone()
                },
                "events: give",
            ),
            (
                NewWebhook {
                    events: vec!["task.started".into()],
                    ..ok.clone()
                },
                "events: \"task.started\"",
            ),
            (
                NewWebhook {
                    filter: Some("(".into()),
                    ..ok.clone()
                },
                "filter:",
            ),
            (
                NewWebhook {
                    secret: "short".into(),
                    ..ok.clone()
                },
                "secret: 5",
            ),
            (
                NewWebhook {
                    name: "a b".into(),
                    ..ok.clone()
                },
                "name:",
            ),
        ] {
            let e = validate(&bad).err().unwrap_or_default();
            assert!(e.starts_with(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_task_finishes_once() {
        let mut f = Finished::default();
        assert!(f.first("t1"));
        assert!(!f.first("t1"));
        assert!(f.first("t2"));
    }
}
