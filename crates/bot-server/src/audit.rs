//! The server's audit trail: what it signed and sent on behalf of which API
//! token, and what it refused (`bot_proto::api::AuditRecord`). Recorded
//! through a cheap handle ([`Audit`]) and written to the store in batches
//! by [`keep`]; served by `GET /api/audit`.

use std::time::Duration;

use bot_proto::api::AuditRecord;
use bot_proto::{Reply, Request, topics};
use bot_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::now_ms;

/// How often recorded lines are written.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Records audit lines (cheap to clone).
#[derive(Debug, Clone)]
pub struct Audit {
    tx: mpsc::UnboundedSender<AuditRecord>,
    /// Requests recorded as sent (for `/metrics`).
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A record with the common fields filled.
fn record(event: &str) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7().simple().to_string(),
        time_ms: now_ms(),
        event: event.to_owned(),
        token: None,
        key: None,
        agent: None,
        request_id: None,
        action: None,
        args_sha256: None,
        detail: None,
    }
}

/// The API token named in a request's `sender` (the server writes
/// `server:<client id> (token NAME)`).
fn token_of(sender: &str) -> Option<String> {
    let (_, rest) = sender.rsplit_once("(token ")?;
    rest.strip_suffix(')').map(str::to_owned)
}

impl Audit {
    /// A handle and the receiving end for [`keep`].
    pub fn new() -> (Audit, mpsc::UnboundedReceiver<AuditRecord>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Audit {
                tx,
                sent: Default::default(),
            },
            rx,
        )
    }

    fn send(&self, r: AuditRecord) {
        // Only fails when the writer has stopped (shutdown).
        let _ = self.tx.send(r);
    }

    /// How many requests were recorded as sent.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An operator changed an agent's measuring settings (the server
    /// signed and published config `revision`).
    pub fn config(&self, agent: &str, revision: u64, token: &str) {
        self.send(AuditRecord {
            token: Some(token.to_owned()),
            agent: Some(agent.to_owned()),
            action: Some("configure".to_owned()),
            detail: Some(format!("revision {revision}")),
            ..record("config")
        });
    }

    /// The server signed `request` and sends it on `topic`.
    pub fn request(&self, request: &Request, topic: &str, key: &bot_auth::PublicKey) {
        self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let agent = topic
            .strip_prefix(&topics::request_agent_topic(""))
            .map(str::to_owned);
        let detail = match (&agent, &request.filter) {
            (Some(_), _) => None,
            (None, Some(f)) => Some(format!("{topic} filter {f}")),
            (None, None) => Some(topic.to_owned()),
        };
        self.send(AuditRecord {
            token: token_of(&request.sender),
            key: Some(key.short()),
            agent,
            request_id: Some(request.id.clone()),
            action: Some(request.action.clone()),
            args_sha256: Some(bot_auth::digest_hex(request.args.to_string().as_bytes())),
            detail,
            ..record("request")
        });
    }

    /// A reply refused because it is not signed by the agent's bound key.
    pub fn refused_reply(&self, reply: &Reply, why: &str) {
        self.send(AuditRecord {
            agent: Some(reply.agent_id.clone()),
            request_id: Some(reply.request_id.clone()),
            detail: Some(why.to_owned()),
            ..record("refused_reply")
        });
    }

    /// An agent refused one of the server's requests.
    pub fn rejected(&self, reply: &Reply) {
        self.send(AuditRecord {
            agent: Some(reply.agent_id.clone()),
            request_id: Some(reply.request_id.clone()),
            detail: reply.error.clone(),
            ..record("rejected")
        });
    }

    /// An agent's key changed (the alarm), or was accepted by `token`.
    pub fn key(&self, event: &str, agent: &str, key: &str, token: Option<&str>) {
        self.send(AuditRecord {
            token: token.map(str::to_owned),
            key: Some(key.to_owned()),
            agent: Some(agent.to_owned()),
            ..record(event)
        });
    }
}

/// Writes recorded lines to `store` every 200 ms until `shutdown`, then
/// writes what is left.
pub async fn keep(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<AuditRecord>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::new();
    loop {
        let stop = tokio::select! {
            () = tokio::time::sleep(FLUSH_EVERY) => false,
            () = shutdown.cancelled() => true,
        };
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        if !batch.is_empty() {
            match store.append_audit(&batch).await {
                Ok(()) => batch.clear(),
                // Kept and retried at the next flush: an audit line is not
                // dropped because the database hiccupped.
                Err(e) => {
                    tracing::error!(error = %e, pending = batch.len(), "cannot write the audit trail")
                }
            }
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_names_come_from_the_sender() {
        assert_eq!(
            super::token_of("server:bot-server-1 (token ops)").as_deref(),
            Some("ops")
        );
        assert_eq!(super::token_of("alice@host"), None);
    }
}
