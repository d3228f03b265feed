//! Live metrics of tries running on workers (records per second, lag, flushes of streams),
//! published by each worker about once a second so that every `serve` shows them.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, TaskKey, to_micros};

/// One stream try's figures as a worker last published them (its `worker` among them).
#[derive(Debug, Clone)]
pub struct PublishedMetrics {
    pub task: TaskKey,
    pub metrics: tasks::StreamMetrics,
}

impl Store {
    /// Replaces the published metrics of each of `tries`.
    pub async fn publish_task_metrics(&self, tries: &[PublishedMetrics]) -> Result<()> {
        if tries.is_empty() {
            return Ok(());
        }
        let now = to_micros(Utc::now());
        let mut tx = self.pool.begin().await?;
        for published in tries {
            sqlx::query(
                "INSERT INTO task_metrics (dag_id, run_id, task_id, metrics, updated_us)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (dag_id, run_id, task_id) DO UPDATE SET metrics = excluded.metrics,
                    updated_us = excluded.updated_us",
            )
            .bind(published.task.dag_id.as_str())
            .bind(published.task.run_id.as_str())
            .bind(published.task.task_id.as_str())
            .bind(serde_json::to_string(&published.metrics).unwrap_or_default())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The metrics published since `since` (older ones are of tries that ended or of
    /// workers that went away).
    pub async fn recent_task_metrics(&self, since: DateTime<Utc>) -> Result<Vec<PublishedMetrics>> {
        let rows = sqlx::query(
            "SELECT dag_id, run_id, task_id, metrics FROM task_metrics WHERE updated_us >= $1",
        )
        .bind(to_micros(since))
        .fetch_all(&self.pool)
        .await?;
        let mut published = Vec::with_capacity(rows.len());
        for row in &rows {
            let task = TaskKey {
                dag_id: row.try_get("dag_id")?,
                run_id: row.try_get("run_id")?,
                task_id: row.try_get("task_id")?,
            };
            let text: String = row.try_get("metrics")?;
            match serde_json::from_str(&text) {
                Ok(metrics) => published.push(PublishedMetrics { task, metrics }),
                Err(error) => {
                    tracing::warn!(dag_id = %task.dag_id, task_id = %task.task_id, %error, "Unreadable live metrics of a worker's try; skipped")
                }
            }
        }
        Ok(published)
    }
}
