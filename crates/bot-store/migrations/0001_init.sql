-- 0001: the registry, tasks with their targets, settings.
-- Portable SQL (SQLite and PostgreSQL): TEXT, BIGINT, DOUBLE PRECISION;
-- booleans are BIGINT 0/1; lists, facts and JSON values are JSON text;
-- times are unix milliseconds; states are their wire names.

CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    hostname      TEXT NOT NULL,
    ips           TEXT NOT NULL,
    version       TEXT NOT NULL,
    online        BIGINT NOT NULL,
    facts         TEXT NOT NULL,
    tags          TEXT NOT NULL,
    pools         TEXT NOT NULL,
    started_ms    BIGINT NOT NULL,
    heartbeat_s   BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL
);
CREATE INDEX agents_by_name ON agents (name, id);

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    action      TEXT NOT NULL,
    args        TEXT NOT NULL,
    filter      TEXT,
    pool        TEXT,
    timeout_ms  BIGINT NOT NULL,
    parallel    BIGINT NOT NULL,
    fail_count  BIGINT NOT NULL,
    fail_rate   DOUBLE PRECISION NOT NULL,
    retry_of    TEXT,
    created_by  TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    started_ms  BIGINT,
    finished_ms BIGINT,
    reason      TEXT
);
-- Lists: newest first, optionally by state.
CREATE INDEX tasks_by_created ON tasks (created_ms, id);
CREATE INDEX tasks_by_state ON tasks (state, created_ms, id);

CREATE TABLE targets (
    task_id            TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq                BIGINT NOT NULL,
    agent_id           TEXT NOT NULL,
    agent_name         TEXT NOT NULL,
    state              TEXT NOT NULL,
    request_id         TEXT,
    request_created_ms BIGINT,
    exit_code          BIGINT,
    signal             BIGINT,
    stdout             TEXT NOT NULL,
    stderr             TEXT NOT NULL,
    error              TEXT,
    data               TEXT,
    started_ms         BIGINT,
    finished_ms        BIGINT,
    PRIMARY KEY (task_id, seq)
);
-- Counts by state per task (GROUP BY task_id, state) from the index alone.
CREATE INDEX targets_by_state ON targets (task_id, state);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
