-- 0003: the server's audit trail (bot_proto::api::AuditRecord): every
-- request it signed and sent, on behalf of which API token, and what it
-- refused. Append-only.
CREATE TABLE audit (
    id          TEXT PRIMARY KEY,
    time_ms     BIGINT NOT NULL,
    event       TEXT NOT NULL,
    token       TEXT,
    key         TEXT,
    agent       TEXT,
    request_id  TEXT,
    action      TEXT,
    args_sha256 TEXT,
    detail      TEXT
);
CREATE INDEX audit_by_time ON audit (time_ms, id);
