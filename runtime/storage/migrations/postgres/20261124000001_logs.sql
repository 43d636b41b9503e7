-- Source logs of every tenant and log type. `fields` is the row's JSON text,
-- kept as written: the host parses and checks it against the schema file.
CREATE TABLE IF NOT EXISTS logs (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    log_type TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    fields TEXT NOT NULL,
    label TEXT,
    schema_version INTEGER NOT NULL DEFAULT 0
);
-- Keyset reads: WHERE tenant = ? AND log_type = ? AND id > ? ORDER BY id.
CREATE INDEX IF NOT EXISTS logs_by_type ON logs (tenant, log_type, id);
CREATE INDEX IF NOT EXISTS logs_by_time ON logs (tenant, log_type, ts_ms);

CREATE TABLE IF NOT EXISTS quarantine (
    id BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    log_type TEXT NOT NULL,
    log_id BIGINT NOT NULL UNIQUE,
    raw TEXT NOT NULL,
    reason TEXT NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 0
);
