-- Model activations and events on PostgreSQL (`model_state = "postgres"`,
-- issue 17), as each node's `models.db` keeps them: a version activated or
-- rolled back through any node is in force on every node from its
-- watcher's next pass.
CREATE TABLE IF NOT EXISTS model_activations (
    id BIGSERIAL PRIMARY KEY,
    agent TEXT NOT NULL,
    version TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    rolled_back BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS model_activations_by_agent ON model_activations (agent, id);
CREATE TABLE IF NOT EXISTS model_events (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    agent TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS model_events_by_agent ON model_events (agent, id);
