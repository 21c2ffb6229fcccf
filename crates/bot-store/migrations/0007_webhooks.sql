-- 0007: webhooks and their deliveries. A delivery is stored before its
-- first attempt and updated after each, so a restart loses none; its id is
-- the idempotency key the receiver sees on every attempt.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    filter          TEXT,
    secret          TEXT NOT NULL,
    enabled         BIGINT NOT NULL,
    disabled_reason TEXT,
    source          TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_ms      BIGINT NOT NULL
);
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    hook_id         TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_ms BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    delivered_ms    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (hook_id, created_ms);
