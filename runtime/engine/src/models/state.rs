//! What the ModelManager remembers across restarts, in SQLite beside the
//! anomaly store, or in PostgreSQL for every node (`model_state =
//! "postgres"`): every activation (so rollback knows what came before) and
//! every load, activation, refusal and rollback as an event.

use std::path::Path;
use std::sync::Arc;

pub use mcp_storage::shared_store::ModelEvent;
use mcp_storage::shared_store::SharedStore;
use rusqlite::{Connection, OptionalExtension, params};

use super::ModelError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS model_activations (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    version TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    rolled_back INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS model_activations_by_agent ON model_activations (agent, id);
CREATE TABLE IF NOT EXISTS model_events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    agent TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

/// Where the ModelManager's memory is.
#[derive(Debug)]
pub(super) enum State {
    Embedded(Embedded),
    Shared(Arc<SharedStore>),
}

impl State {
    pub(super) fn open(path: &Path) -> Result<Self, ModelError> {
        Ok(State::Embedded(Embedded::open(path)?))
    }

    /// The version in force: the latest activation not rolled back.
    pub(super) fn active(&self, agent: &str) -> Result<Option<String>, ModelError> {
        match self {
            State::Embedded(state) => state.active(agent),
            State::Shared(store) => Ok(store.model_active(agent)?),
        }
    }

    /// Whether `version` was ever activated (even if rolled back since).
    pub(super) fn ever_activated(&self, agent: &str, version: &str) -> Result<bool, ModelError> {
        match self {
            State::Embedded(state) => state.ever_activated(agent, version),
            State::Shared(store) => Ok(store.model_ever_activated(agent, version)?),
        }
    }

    pub(super) fn activate(&mut self, agent: &str, version: &str, at_ms: i64) -> Result<(), ModelError> {
        match self {
            State::Embedded(state) => state.activate(agent, version, at_ms),
            State::Shared(store) => Ok(store.model_activate(agent, version, at_ms)?),
        }
    }

    /// Records `version` as activated unless it ever was; whether this did.
    pub(super) fn activate_first(&mut self, agent: &str, version: &str, at_ms: i64) -> Result<bool, ModelError> {
        match self {
            State::Embedded(state) => state.activate_first(agent, version, at_ms),
            State::Shared(store) => Ok(store.model_activate_first(agent, version, at_ms)?),
        }
    }

    /// Marks the activation in force as rolled back and returns the version
    /// now in force, if an earlier activation remains.
    pub(super) fn roll_back(&mut self, agent: &str) -> Result<Option<(String, String)>, ModelError> {
        match self {
            State::Embedded(state) => state.roll_back(agent),
            State::Shared(store) => Ok(store.model_roll_back(agent)?),
        }
    }

    pub(super) fn record(&mut self, event: &ModelEvent) -> Result<(), ModelError> {
        match self {
            State::Embedded(state) => state.record(event),
            State::Shared(store) => Ok(store.model_record(event)?),
        }
    }

    pub(super) fn events(&self, agent: &str) -> Result<Vec<ModelEvent>, ModelError> {
        match self {
            State::Embedded(state) => state.events(agent),
            State::Shared(store) => Ok(store.model_events(agent)?),
        }
    }
}

/// The memory of one node, in `data_dir/models.db`.
#[derive(Debug)]
pub(super) struct Embedded {
    conn: Connection,
    path: String,
}

impl Embedded {
    fn open(path: &Path) -> Result<Self, ModelError> {
        let name = path.display().to_string();
        let wrap = |source| ModelError::State { path: name.clone(), source };
        let conn = mcp_storage::sqlite_file::open_wal(path).map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        Ok(Embedded { conn, path: name })
    }

    fn wrap(&self, source: rusqlite::Error) -> ModelError {
        ModelError::State { path: self.path.clone(), source }
    }

    /// The version in force: the latest activation not rolled back.
    fn active(&self, agent: &str) -> Result<Option<String>, ModelError> {
        self.conn
            .query_row(
                "SELECT version FROM model_activations WHERE agent = ?1 AND rolled_back = 0 ORDER BY id DESC LIMIT 1",
                [agent],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.wrap(e))
    }

    /// Whether `version` was ever activated (even if rolled back since).
    fn ever_activated(&self, agent: &str, version: &str) -> Result<bool, ModelError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM model_activations WHERE agent = ?1 AND version = ?2)",
                [agent, version],
                |row| row.get(0),
            )
            .map_err(|e| self.wrap(e))
    }

    fn activate(&mut self, agent: &str, version: &str, at_ms: i64) -> Result<(), ModelError> {
        self.conn
            .execute(
                "INSERT INTO model_activations (agent, version, at_ms) VALUES (?1, ?2, ?3)",
                params![agent, version, at_ms],
            )
            .map(|_| ())
            .map_err(|e| self.wrap(e))
    }

    /// One statement: two processes on one file record the version once.
    fn activate_first(&mut self, agent: &str, version: &str, at_ms: i64) -> Result<bool, ModelError> {
        self.conn
            .execute(
                "INSERT INTO model_activations (agent, version, at_ms) SELECT ?1, ?2, ?3
                 WHERE NOT EXISTS (SELECT 1 FROM model_activations WHERE agent = ?1 AND version = ?2)",
                params![agent, version, at_ms],
            )
            .map(|added| added == 1)
            .map_err(|e| self.wrap(e))
    }

    /// Marks the activation in force as rolled back and returns the version
    /// now in force, if an earlier activation remains.
    fn roll_back(&mut self, agent: &str) -> Result<Option<(String, String)>, ModelError> {
        let tx = self.conn.transaction().map_err(|e| ModelError::State { path: self.path.clone(), source: e })?;
        let path = self.path.clone();
        let wrap = |source| ModelError::State { path: path.clone(), source };
        let live: Vec<(i64, String)> = {
            let mut statement = tx
                .prepare(
                    "SELECT id, version FROM model_activations WHERE agent = ?1 AND rolled_back = 0 ORDER BY id DESC",
                )
                .map_err(wrap)?;
            statement
                .query_map([agent], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(wrap)?
                .collect::<Result<_, _>>()
                .map_err(wrap)?
        };
        // Back to the last activation of another version: activating the
        // same version twice must not make a rollback a no-op.
        let Some((_, current)) = live.first().cloned() else { return Ok(None) };
        let Some((previous_id, previous)) = live.iter().find(|(_, v)| *v != current).cloned() else { return Ok(None) };
        tx.execute(
            "UPDATE model_activations SET rolled_back = 1 WHERE agent = ?1 AND rolled_back = 0 AND id > ?2",
            params![agent, previous_id],
        )
        .map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(Some((current, previous)))
    }

    fn record(&mut self, event: &ModelEvent) -> Result<(), ModelError> {
        self.conn
            .execute(
                "INSERT INTO model_events (at_ms, agent, version, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![event.at_ms, event.agent, event.version, event.action, event.detail],
            )
            .map(|_| ())
            .map_err(|e| self.wrap(e))
    }

    fn events(&self, agent: &str) -> Result<Vec<ModelEvent>, ModelError> {
        let mut statement = self
            .conn
            .prepare("SELECT at_ms, agent, version, action, detail FROM model_events WHERE agent = ?1 ORDER BY id")
            .map_err(|e| self.wrap(e))?;
        statement
            .query_map([agent], |row| {
                Ok(ModelEvent {
                    at_ms: row.get(0)?,
                    agent: row.get(1)?,
                    version: row.get(2)?,
                    action: row.get(3)?,
                    detail: row.get(4)?,
                })
            })
            .map_err(|e| self.wrap(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.wrap(e))
    }
}
