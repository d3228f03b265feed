use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, StoreEvent, from_micros, to_micros};

/// A DAG as the store knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DagRow {
    pub dag_id: String,
    pub file: String,
    pub schedule: String,
    pub is_paused: bool,
    pub is_active: bool,
    pub last_parsed: DateTime<Utc>,
}

impl Store {
    /// Records the DAGs of a freshly loaded folder; DAGs no longer in it become inactive.
    pub async fn sync_dags(&self, dags: &[(String, String, String)]) -> Result<()> {
        let now = to_micros(Utc::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE dags SET is_active = 0")
            .execute(&mut *tx)
            .await?;
        for (dag_id, file, schedule) in dags {
            sqlx::query(
                "INSERT INTO dags (dag_id, file, schedule, is_paused, is_active, last_parsed_us) VALUES ($1, $2, $3, 0, 1, $4)
                 ON CONFLICT (dag_id) DO UPDATE SET file = excluded.file, schedule = excluded.schedule, is_active = 1, last_parsed_us = excluded.last_parsed_us",
            )
            .bind(dag_id.as_str())
            .bind(file.as_str())
            .bind(schedule.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Pauses or unpauses a DAG (creating its row if the store has not seen it yet).
    pub async fn set_paused(&self, dag_id: &str, file: &str, paused: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO dags (dag_id, file, schedule, is_paused, is_active, last_parsed_us) VALUES ($1, $2, '', $3, 1, $4)
             ON CONFLICT (dag_id) DO UPDATE SET is_paused = excluded.is_paused",
        )
        .bind(dag_id)
        .bind(file)
        .bind(i64::from(paused))
        .bind(to_micros(Utc::now()))
        .execute(&self.pool)
        .await?;
        self.events.publish(StoreEvent::Dag {
            dag_id: dag_id.to_owned(),
            is_paused: paused,
        });
        Ok(())
    }

    pub async fn paused_dags(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT dag_id FROM dags WHERE is_paused = 1")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("dag_id")?))
            .collect()
    }

    pub async fn dag_rows(&self) -> Result<Vec<DagRow>> {
        let rows = sqlx::query("SELECT dag_id, file, schedule, is_paused, is_active, last_parsed_us FROM dags ORDER BY dag_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DagRow {
                    dag_id: row.try_get("dag_id")?,
                    file: row.try_get("file")?,
                    schedule: row.try_get("schedule")?,
                    is_paused: row.try_get::<i64, _>("is_paused")? != 0,
                    is_active: row.try_get::<i64, _>("is_active")? != 0,
                    last_parsed: from_micros(row.try_get("last_parsed_us")?),
                })
            })
            .collect()
    }
}
