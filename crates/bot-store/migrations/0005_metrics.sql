-- 0005: monitoring. The measuring settings the server wants per agent
-- (bot_proto::MeasureConfig), and the samples: one row per agent per
-- measuring round (raw) or per minute (rollups), each holding the values of
-- every series of the round in one binary blob; the series themselves (the
-- metric, labels and type of each value) are stored once per distinct
-- list, as a layout.
CREATE TABLE agent_configs (
    agent_id    TEXT PRIMARY KEY,
    revision    BIGINT NOT NULL,
    enabled     BIGINT NOT NULL,
    interval_ms BIGINT NOT NULL,
    collectors  TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE TABLE metric_layouts (
    id     BIGINT PRIMARY KEY,
    series TEXT NOT NULL
);
CREATE TABLE samples_raw (
    agent_id TEXT NOT NULL,
    time_ms  BIGINT NOT NULL,
    layout   BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (agent_id, time_ms, layout)
);
CREATE INDEX samples_raw_by_time ON samples_raw (time_ms);
CREATE TABLE samples_1m (
    agent_id TEXT NOT NULL,
    time_ms  BIGINT NOT NULL,
    layout   BIGINT NOT NULL,
    data     BYTEA NOT NULL,
    PRIMARY KEY (agent_id, time_ms, layout)
);
CREATE INDEX samples_1m_by_time ON samples_1m (time_ms);
