//! Webhooks and their deliveries. A delivery row is written before the
//! first attempt and updated after each one; the deliverer reads the due
//! ones of enabled hooks ([`Store::due_deliveries`]).

use bot_proto::api::{Webhook, WebhookDelivery};
use sqlx::AssertSqlSafe;

use crate::rows::{Fields, Reader};
use crate::{Store, StoreError};

const HOOK_COLUMNS: &str = "id, name, url, events, filter, enabled, disabled_reason, source, \
     created_by, created_ms";
const DELIVERY_COLUMNS: &str = "id, hook_id, event, body, created_ms, state, attempts, \
     next_attempt_ms, last_status, last_error, delivered_ms";

/// A webhook with its secret, for the deliverer.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRow {
    /// The webhook.
    pub hook: Webhook,
    /// Its HMAC key.
    pub secret: String,
}

fn read_hook(row: &sqlx::any::AnyRow) -> Result<Webhook, StoreError> {
    let mut r = Reader::new(row, "webhooks");
    let id = r.text("id")?;
    r.keyed(id.clone());
    Ok(Webhook {
        id,
        name: r.text("name")?,
        url: r.text("url")?,
        events: r.json("events")?,
        filter: r.opt_text("filter")?,
        enabled: r.bool("enabled")?,
        disabled_reason: r.opt_text("disabled_reason")?,
        source: r.text("source")?,
        created_by: r.text("created_by")?,
        created_ms: r.uint("created_ms")?,
    })
}

fn read_delivery(row: &sqlx::any::AnyRow) -> Result<WebhookDelivery, StoreError> {
    let mut r = Reader::new(row, "webhook_deliveries");
    let id = r.text("id")?;
    r.keyed(id.clone());
    Ok(WebhookDelivery {
        id,
        hook_id: r.text("hook_id")?,
        event: r.text("event")?,
        body: r.json("body")?,
        created_ms: r.uint("created_ms")?,
        state: r.text("state")?,
        attempts: r.uint("attempts")?,
        next_attempt_ms: r.opt_uint("next_attempt_ms")?,
        last_status: r
            .opt_uint("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: r.opt_text("last_error")?,
        delivered_ms: r.opt_uint("delivered_ms")?,
    })
}

impl Store {
    /// Stores a new webhook; `Ok(false)` if the name is taken.
    pub async fn insert_webhook(&self, hook: &Webhook, secret: &str) -> Result<bool, StoreError> {
        self.write_webhook(hook, secret, "DO NOTHING").await
    }

    /// Makes or replaces the webhook named `hook.name` (the server's
    /// configuration file is the truth for its hooks): url, events, filter
    /// and secret change; the id, state and deliveries stay.
    pub async fn upsert_webhook(&self, hook: &Webhook, secret: &str) -> Result<(), StoreError> {
        self.write_webhook(
            hook,
            secret,
            "DO UPDATE SET url = excluded.url, events = excluded.events, \
             filter = excluded.filter, secret = excluded.secret, source = excluded.source",
        )
        .await
        .map(drop)
    }

    /// Inserts `hook`; on a name conflict, `on_conflict` (a constant).
    async fn write_webhook(
        &self,
        hook: &Webhook,
        secret: &str,
        on_conflict: &'static str,
    ) -> Result<bool, StoreError> {
        let f = Fields {
            kind: "webhook",
            id: &hook.id,
            seq: None,
        };
        let sql = format!(
            "INSERT INTO webhooks (id, name, url, events, filter, secret, enabled, \
             disabled_reason, source, created_by, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10) ON CONFLICT (name) {on_conflict}"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(&hook.id)
            .bind(&hook.name)
            .bind(&hook.url)
            .bind(f.json(&hook.events, "events")?)
            .bind(hook.filter.as_deref())
            .bind(secret)
            .bind(i64::from(hook.enabled))
            .bind(&hook.source)
            .bind(&hook.created_by)
            .bind(f.int(hook.created_ms, "created_ms")?)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every webhook with its secret, by name.
    pub async fn webhooks(&self) -> Result<Vec<HookRow>, StoreError> {
        let sql = format!("SELECT {HOOK_COLUMNS}, secret FROM webhooks ORDER BY name");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(HookRow {
                    hook: read_hook(row)?,
                    secret: Reader::new(row, "webhooks").text("secret")?,
                })
            })
            .collect()
    }

    /// One webhook, by id or name.
    pub async fn webhook(&self, id_or_name: &str) -> Result<Option<Webhook>, StoreError> {
        let sql = format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = $1 OR name = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(read_hook).transpose()
    }

    /// Deletes a webhook and its deliveries; `Ok(false)` if there was none.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE hook_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Enables a webhook, or disables it with a reason.
    pub async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE webhooks SET enabled = $2, disabled_reason = $3 WHERE id = $1")
                .bind(id)
                .bind(i64::from(enabled))
                .bind(reason)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores new deliveries (pending, due at once), in one transaction.
    pub async fn insert_deliveries(&self, rows: &[WebhookDelivery]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for d in rows {
            let f = Fields {
                kind: "delivery",
                id: &d.id,
                seq: None,
            };
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, hook_id, event, body, created_ms, state, \
                 attempts, next_attempt_ms, last_status, last_error, delivered_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL)",
            )
            .bind(&d.id)
            .bind(&d.hook_id)
            .bind(&d.event)
            .bind(f.json(&d.body, "body")?)
            .bind(f.int(d.created_ms, "created_ms")?)
            .bind(&d.state)
            .bind(i64::from(d.attempts))
            .bind(f.opt_int(d.next_attempt_ms, "next_attempt_ms")?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Pending deliveries of enabled hooks due by `now_ms`, oldest first.
    pub async fn due_deliveries(
        &self,
        now_ms: u64,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let cols: String = DELIVERY_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM webhook_deliveries d JOIN webhooks h ON h.id = d.hook_id \
             WHERE d.state = 'pending' AND d.next_attempt_ms <= $1 AND h.enabled = 1 \
             ORDER BY d.next_attempt_ms, d.created_ms LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(i64::try_from(now_ms).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read_delivery).collect()
    }

    /// Records an attempt's outcome (state, attempts, next attempt, last
    /// status and error, delivered time).
    pub async fn update_delivery(&self, d: &WebhookDelivery) -> Result<(), StoreError> {
        let f = Fields {
            kind: "delivery",
            id: &d.id,
            seq: None,
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $2, attempts = $3, next_attempt_ms = $4, \
             last_status = $5, last_error = $6, delivered_ms = $7 WHERE id = $1",
        )
        .bind(&d.id)
        .bind(&d.state)
        .bind(i64::from(d.attempts))
        .bind(f.opt_int(d.next_attempt_ms, "next_attempt_ms")?)
        .bind(d.last_status.map(i64::from))
        .bind(d.last_error.as_deref())
        .bind(f.opt_int(d.delivered_ms, "delivered_ms")?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A webhook's deliveries, newest first, at most `limit`.
    pub async fn deliveries(
        &self,
        hook_id: &str,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE hook_id = $1 \
             ORDER BY created_ms DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(hook_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read_delivery).collect()
    }

    /// Deletes delivered and failed deliveries older than `before_ms`.
    pub async fn prune_deliveries(&self, before_ms: u64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_ms < $1",
        )
        .bind(i64::try_from(before_ms).unwrap_or(i64::MAX))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
