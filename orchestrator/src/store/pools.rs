//! Pools: slots shared by the tasks of every DAG and run (Airflow's pools). A task takes
//! `pool_slots` of its pool's slots while it runs; `default_pool` (128) holds the rest.

use sqlx::Row;

use super::{Result, Store};

/// A pool and how many of its slots are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub name: String,
    pub slots: i64,
    pub description: String,
    /// Slots of its running task instances.
    pub running_slots: i64,
    /// Slots its queued task instances wait for (PostgreSQL sums BIGINTs as NUMERIC, which
    /// sqlx's Any driver cannot read: the sums are cast back).
    pub queued_slots: i64,
}

impl Store {
    /// Creates pool `name` or changes its slots (and its description, when given).
    pub async fn set_pool(&self, name: &str, slots: i64, description: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT INTO pools (name, slots, description) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET slots = excluded.slots,
                description = CASE WHEN $4 = 1 THEN excluded.description ELSE pools.description END",
        )
        .bind(name)
        .bind(slots)
        .bind(description.unwrap_or(""))
        .bind(i64::from(description.is_some()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every pool, by name, with its slots taken.
    pub async fn pools(&self) -> Result<Vec<PoolRow>> {
        self.pools_where("").await
    }

    /// One pool with its slots taken.
    pub async fn pool(&self, name: &str) -> Result<Option<PoolRow>> {
        Ok(self.pools_where(name).await?.into_iter().next())
    }

    async fn pools_where(&self, name: &str) -> Result<Vec<PoolRow>> {
        // The states are written out, not bound: only then may the engines read the partial
        // indexes of running (by pool) and queued task instances. A join on bound states made
        // SQLite index every task instance ever stored on each call (27 ms at 200,000).
        let rows = sqlx::query(
            "SELECT p.name, p.slots, p.description,
                CAST((SELECT COALESCE(SUM(t.pool_slots), 0) FROM task_instances t
                      WHERE t.pool = p.name AND t.state = 'running') AS BIGINT) AS running,
                CAST((SELECT COALESCE(SUM(t.pool_slots), 0) FROM task_instances t
                      WHERE t.pool = p.name AND t.state = 'queued') AS BIGINT) AS queued
             FROM pools p WHERE $1 = '' OR p.name = $1 ORDER BY p.name",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PoolRow {
                    name: row.try_get("name")?,
                    slots: row.try_get("slots")?,
                    description: row.try_get("description")?,
                    running_slots: row.try_get("running")?,
                    queued_slots: row.try_get("queued")?,
                })
            })
            .collect()
    }

    /// Deletes pool `name`; false when there is none.
    pub async fn delete_pool(&self, name: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM pools WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The slots of pool `name`, None when there is no such pool.
    pub async fn pool_slots(&self, name: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT slots FROM pools WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| row.try_get("slots"))
            .transpose()
            .map_err(Into::into)
    }
}
