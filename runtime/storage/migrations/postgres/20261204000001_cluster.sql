-- Nodes that share the work of a deployment (issue 17). Each node beats
-- here; PostgreSQL's clock, not the nodes', judges every expiry, so nodes
-- with skewed clocks still agree on who holds what.
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    -- How long its leases last without a beat: a node silent for longer
    -- holds nothing.
    lease_ttl_ms BIGINT NOT NULL
);

-- A unit of work: one agent of one tenant over the ids of one log type in
-- (start_after, up_to]. One node holds it at a time, under a lease that
-- expires unless its holder beats; each claim raises `token`, and a commit
-- is refused unless it carries the current one (fencing), so a node that
-- paused past its lease cannot write after another took over. The unit's
-- checkpoint and the agent's state as of it live on the row, and move in
-- the transaction that stores the anomalies they cover.
CREATE TABLE IF NOT EXISTS work_units (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    log_type TEXT NOT NULL,
    start_after BIGINT NOT NULL,
    up_to BIGINT NOT NULL,
    checkpoint BIGINT NOT NULL,
    holder TEXT,
    token BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ,
    claims INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at TIMESTAMPTZ,
    failed_at TIMESTAMPTZ,
    agent_sha256 TEXT,
    state BYTEA,
    state_sha256 TEXT,
    anomalies BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant, agent, log_type, start_after)
);
-- Claims look for open units in id order.
CREATE INDEX IF NOT EXISTS work_units_open ON work_units (id) WHERE done_at IS NULL AND failed_at IS NULL;

-- Anomalies found by nodes, one row per (tenant, agent, entry, label) as in
-- the embedded store, so a unit taken over and run again stores each once.
CREATE TABLE IF NOT EXISTS anomalies (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    agent_sha256 TEXT NOT NULL,
    log_type TEXT NOT NULL,
    log_id BIGINT NOT NULL,
    source TEXT NOT NULL,
    log_ts_ms BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    label TEXT NOT NULL,
    severity TEXT NOT NULL,
    reason TEXT NOT NULL,
    detected_at_ms BIGINT NOT NULL,
    schema_version INTEGER NOT NULL,
    entry_fields TEXT,
    model TEXT,
    unit BIGINT,
    -- When it was stored, by PostgreSQL's clock: detection latency is this
    -- less the time its log row was written.
    stored_at_ms BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT,
    UNIQUE (tenant, agent, log_id, label)
);
CREATE INDEX IF NOT EXISTS anomalies_by_time ON anomalies (tenant, log_ts_ms, id);
