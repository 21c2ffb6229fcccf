-- 0006: schedules and check states. A schedule is its spec (the JSON of
-- bot_proto::api::NewSchedule) and how its runs went; next_run_ms is
-- claimed with a compare-and-set before each run, so a run fires once even
-- with two servers or a crash. A check state is the last result of one
-- check on one agent; check_changes is the history of its state changes.
CREATE TABLE schedules (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    spec         TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    paused       BIGINT NOT NULL,
    next_run_ms  BIGINT,
    last_run_ms  BIGINT,
    last_task_id TEXT,
    last_error   TEXT,
    runs         BIGINT NOT NULL,
    skipped      BIGINT NOT NULL,
    missed       BIGINT NOT NULL
);
CREATE TABLE check_states (
    agent_id    TEXT NOT NULL,
    check_name  TEXT NOT NULL,
    state       TEXT NOT NULL,
    code        BIGINT NOT NULL,
    output      TEXT NOT NULL,
    long_output TEXT NOT NULL,
    perfdata    TEXT NOT NULL,
    since_ms    BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    interval_ms BIGINT NOT NULL,
    stale       BIGINT NOT NULL,
    schedule_id TEXT,
    PRIMARY KEY (agent_id, check_name)
);
CREATE TABLE check_changes (
    agent_id   TEXT NOT NULL,
    check_name TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    output     TEXT NOT NULL,
    PRIMARY KEY (agent_id, check_name, at_ms)
);
CREATE INDEX check_changes_by_time ON check_changes (at_ms);
