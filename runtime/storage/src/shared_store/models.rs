//! Model activations and events on PostgreSQL (`model_state =
//! "postgres"`): the ModelManager's memory of which version is in force,
//! shared by every node, with the same rules as each node's `models.db`.

use sqlx::Row;

use super::pages::decoded;
use super::runs::storable;
use super::{SharedStore, SharedStoreError};

/// One recorded event of an agent's models.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEvent {
    pub at_ms: i64,
    pub agent: String,
    pub version: String,
    /// load, activate, refuse or rollback.
    pub action: String,
    pub detail: String,
}

impl SharedStore {
    /// The version in force: the latest activation not rolled back.
    pub fn model_active(&self, agent: &str) -> Result<Option<String>, SharedStoreError> {
        let row: Option<(String,)> = self.with_retry("read the model in force", || {
            sqlx::query_as(
                "SELECT version FROM model_activations WHERE agent = $1 AND NOT rolled_back ORDER BY id DESC LIMIT 1",
            )
            .bind(agent)
            .fetch_optional(&self.writes)
        })?;
        Ok(row.map(|(version,)| version))
    }

    /// Whether `version` was ever activated (even if rolled back since).
    pub fn model_ever_activated(&self, agent: &str, version: &str) -> Result<bool, SharedStoreError> {
        let (ever,): (bool,) = self.with_retry("read a model's activations", || {
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM model_activations WHERE agent = $1 AND version = $2)")
                .bind(agent)
                .bind(version)
                .fetch_one(&self.writes)
        })?;
        Ok(ever)
    }

    /// Records `version` of `agent` as activated at `at_ms`.
    pub fn model_activate(&self, agent: &str, version: &str, at_ms: i64) -> Result<(), SharedStoreError> {
        // Not retried: an activation whose answer was lost would be
        // recorded twice (harmless, but a second row in the history).
        let once = crate::retry::RetryPolicy { max_attempts: 1, ..self.retry };
        self.retrying(&once, "record a model activation", || {
            sqlx::query("INSERT INTO model_activations (agent, version, at_ms) VALUES ($1, $2, $3)")
                .bind(agent)
                .bind(version)
                .bind(at_ms)
                .execute(&self.writes)
        })?;
        Ok(())
    }

    /// Records `version` of `agent` as activated unless it ever was: what a
    /// watcher does with a version it found. Under a lock of the agent, so
    /// two nodes' watchers finding it at once record it once; whether this
    /// call did.
    pub fn model_activate_first(&self, agent: &str, version: &str, at_ms: i64) -> Result<bool, SharedStoreError> {
        let once = crate::retry::RetryPolicy { max_attempts: 1, ..self.retry };
        self.retrying(&once, "record a model's first activation", || async {
            let mut tx = self.writes.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('mcp:model:' || $1))")
                .bind(agent)
                .execute(&mut *tx)
                .await?;
            let added = sqlx::query(
                "INSERT INTO model_activations (agent, version, at_ms) SELECT $1, $2, $3
                 WHERE NOT EXISTS (SELECT 1 FROM model_activations WHERE agent = $1 AND version = $2)",
            )
            .bind(agent)
            .bind(version)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(added == 1)
        })
    }

    /// Marks the activations after the last one of another version as
    /// rolled back, in one transaction under a lock of the agent's rows (two
    /// nodes rolling back at once roll back one step, not two); returns
    /// (the version that was in force, the one in force now).
    pub fn model_roll_back(&self, agent: &str) -> Result<Option<(String, String)>, SharedStoreError> {
        let once = crate::retry::RetryPolicy { max_attempts: 1, ..self.retry };
        self.retrying(&once, "roll a model back", || async {
            let mut tx = self.writes.begin().await?;
            let live: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, version FROM model_activations WHERE agent = $1 AND NOT rolled_back ORDER BY id DESC
                 FOR UPDATE",
            )
            .bind(agent)
            .fetch_all(&mut *tx)
            .await?;
            let Some((_, current)) = live.first().cloned() else { return Ok(None) };
            let Some((previous_id, previous)) = live.iter().find(|(_, v)| *v != current).cloned() else {
                return Ok(None);
            };
            sqlx::query(
                "UPDATE model_activations SET rolled_back = true WHERE agent = $1 AND NOT rolled_back AND id > $2",
            )
            .bind(agent)
            .bind(previous_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some((current, previous)))
        })
    }

    /// Records `event`.
    pub fn model_record(&self, event: &ModelEvent) -> Result<(), SharedStoreError> {
        self.with_retry("record a model event", || {
            sqlx::query("INSERT INTO model_events (at_ms, agent, version, action, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(event.at_ms)
                .bind(&event.agent)
                .bind(&event.version)
                .bind(&event.action)
                .bind(storable(&event.detail))
                .execute(&self.writes)
        })?;
        Ok(())
    }

    /// The recorded events of `agent`'s models, oldest first.
    pub fn model_events(&self, agent: &str) -> Result<Vec<ModelEvent>, SharedStoreError> {
        let rows = self.with_retry("read model events", || {
            sqlx::query("SELECT at_ms, agent, version, action, detail FROM model_events WHERE agent = $1 ORDER BY id")
                .bind(agent)
                .fetch_all(&self.writes)
        })?;
        decoded(
            "read model events",
            rows.iter()
                .map(|r| {
                    Ok(ModelEvent {
                        at_ms: r.try_get(0)?,
                        agent: r.try_get(1)?,
                        version: r.try_get(2)?,
                        action: r.try_get(3)?,
                        detail: r.try_get(4)?,
                    })
                })
                .collect(),
        )
    }
}
