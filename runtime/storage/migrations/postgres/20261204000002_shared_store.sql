-- The anomaly store on PostgreSQL (`anomaly_store = "postgres"`, issue 17):
-- the API and `mcp anomalies` page through `anomalies` as they page the
-- embedded store, so each page query has an index that starts with the
-- tenant, holds its one equality filter, and ends in the sort key and id.
-- The tenant's time index is `anomalies_by_time` (cluster migration).
CREATE INDEX IF NOT EXISTS anomalies_by_score ON anomalies (tenant, score, id);
CREATE INDEX IF NOT EXISTS anomalies_by_agent_time ON anomalies (tenant, agent, log_ts_ms, id);
CREATE INDEX IF NOT EXISTS anomalies_by_agent_score ON anomalies (tenant, agent, score, id);
CREATE INDEX IF NOT EXISTS anomalies_by_source_time ON anomalies (tenant, source, log_ts_ms, id);
CREATE INDEX IF NOT EXISTS anomalies_by_label_time ON anomalies (tenant, label, log_ts_ms, id);
CREATE INDEX IF NOT EXISTS anomalies_by_severity_time ON anomalies (tenant, severity, log_ts_ms, id);
CREATE INDEX IF NOT EXISTS anomalies_by_log_type_time ON anomalies (tenant, log_type, log_ts_ms, id);
CREATE INDEX IF NOT EXISTS anomalies_by_source_score ON anomalies (tenant, source, score, id);
CREATE INDEX IF NOT EXISTS anomalies_by_label_score ON anomalies (tenant, label, score, id);
CREATE INDEX IF NOT EXISTS anomalies_by_severity_score ON anomalies (tenant, severity, score, id);
CREATE INDEX IF NOT EXISTS anomalies_by_log_type_score ON anomalies (tenant, log_type, score, id);

-- Where runs that are not units of work (a run started through the API or
-- by `mcp run`) stand, with the agent's state as of there, written in the
-- transaction that stores the anomalies they cover, as the embedded
-- store's `checkpoints` and `agent_states` are.
CREATE TABLE IF NOT EXISTS run_checkpoints (
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    log_source TEXT NOT NULL,
    log_type TEXT NOT NULL,
    last_id BIGINT NOT NULL,
    -- The build that took the state: another build is not given it.
    agent_sha256 TEXT,
    state BYTEA,
    state_sha256 TEXT,
    PRIMARY KEY (tenant, agent, log_source, log_type)
);
