-- The notification outbox on PostgreSQL (`anomaly_store = "postgres"`,
-- issue 17), as the embedded store keeps it: one row per notification,
-- written in the transaction that stores the anomaly it announces (a
-- unit's commit or a run's), claimed by whichever node's delivery worker
-- gets to it first (`FOR UPDATE SKIP LOCKED`), each attempt on record.
CREATE TABLE IF NOT EXISTS notify_outbox (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    channel TEXT NOT NULL,
    -- 'anomaly': the first of its kind in a window; 'digest': what was
    -- folded in after that one had gone, sent when the window ends.
    kind TEXT NOT NULL,
    anomaly_id BIGINT NOT NULL,
    dedup_key TEXT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    folded BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    claimed_until_ms BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    finished_ms BIGINT
);
CREATE INDEX IF NOT EXISTS notify_outbox_window ON notify_outbox (tenant, channel, dedup_key, window_end_ms);
CREATE INDEX IF NOT EXISTS notify_outbox_by_tenant ON notify_outbox (tenant, id);
CREATE INDEX IF NOT EXISTS notify_outbox_channel_due ON notify_outbox (tenant, channel, state, next_attempt_ms);
-- Only rows still to send: the delivery workers' scan of what has work.
CREATE INDEX IF NOT EXISTS notify_outbox_open ON notify_outbox (tenant, channel) WHERE state IN ('pending', 'sending');

CREATE TABLE IF NOT EXISTS notify_attempts (
    id BIGSERIAL PRIMARY KEY,
    outbox_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    status INTEGER,
    error TEXT,
    latency_ms BIGINT NOT NULL,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS notify_attempts_by_outbox ON notify_attempts (outbox_id, id);

-- Each channel's rate limit, shared by every node that delivers: a token
-- bucket of a minute's worth of messages in 1/60,000ths (as the embedded
-- deployment's in-process buckets count them), refilled by elapsed time.
CREATE TABLE IF NOT EXISTS notify_buckets (
    tenant TEXT NOT NULL,
    channel TEXT NOT NULL,
    units BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    -- Whether the last take found a token.
    taken BOOLEAN NOT NULL,
    PRIMARY KEY (tenant, channel)
);
