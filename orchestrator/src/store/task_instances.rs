use sqlx::{Row, any::AnyRow};

use super::{Result, Store, StoreError, TaskInstanceRow, TiState, from_micros, to_micros};

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        table: "task_instances",
        message,
    }
}

fn ti_from_row(row: &AnyRow) -> Result<TaskInstanceRow> {
    let result: Option<String> = row.try_get("result")?;
    Ok(TaskInstanceRow {
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        state: row
            .try_get::<String, _>("state")?
            .parse()
            .map_err(corrupt)?,
        try_number: u32::try_from(row.try_get::<i64, _>("try_number")?).unwrap_or(0),
        max_tries: u32::try_from(row.try_get::<i64, _>("max_tries")?).unwrap_or(1),
        start: row.try_get::<Option<i64>, _>("start_us")?.map(from_micros),
        end: row.try_get::<Option<i64>, _>("end_us")?.map(from_micros),
        duration_ms: row.try_get("duration_ms")?,
        hostname: row.try_get("hostname")?,
        pid: row.try_get("pid")?,
        next_retry_at: row
            .try_get::<Option<i64>, _>("next_retry_us")?
            .map(from_micros),
        result: result
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| corrupt(format!("result: {e}")))?,
        error: row.try_get("error")?,
    })
}

impl Store {
    /// The task instances of a run, in no particular order.
    pub async fn task_instances(&self, dag_id: &str, run_id: &str) -> Result<Vec<TaskInstanceRow>> {
        let rows = sqlx::query("SELECT * FROM task_instances WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id)
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ti_from_row).collect()
    }

    pub async fn task_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Option<TaskInstanceRow>> {
        let row = sqlx::query(
            "SELECT * FROM task_instances WHERE dag_id = $1 AND run_id = $2 AND task_id = $3",
        )
        .bind(dag_id)
        .bind(run_id)
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ti_from_row).transpose()
    }

    /// Every task instance in `state`, across runs.
    pub async fn task_instances_in_state(&self, state: TiState) -> Result<Vec<TaskInstanceRow>> {
        let rows = sqlx::query("SELECT * FROM task_instances WHERE state = $1")
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ti_from_row).collect()
    }

    /// Writes every mutable field of a task instance; durable when this returns.
    pub async fn save_task_instance(&self, ti: &TaskInstanceRow) -> Result<()> {
        update_query(ti).execute(&self.pool).await?;
        Ok(())
    }

    /// Writes several task instances in one transaction (group commit): all or none.
    pub async fn save_task_instances(&self, tis: &[&TaskInstanceRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for ti in tis {
            update_query(ti).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn update_query(
    ti: &TaskInstanceRow,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "UPDATE task_instances SET state = $1, try_number = $2, max_tries = $3, start_us = $4, end_us = $5, duration_ms = $6,
            hostname = $7, pid = $8, next_retry_us = $9, result = $10, error = $11
         WHERE dag_id = $12 AND run_id = $13 AND task_id = $14",
    )
    .bind(ti.state.as_str())
    .bind(i64::from(ti.try_number))
    .bind(i64::from(ti.max_tries))
    .bind(ti.start.map(to_micros))
    .bind(ti.end.map(to_micros))
    .bind(ti.duration_ms)
    .bind(ti.hostname.clone())
    .bind(ti.pid)
    .bind(ti.next_retry_at.map(to_micros))
    .bind(ti.result.as_ref().map(|r| r.to_string()))
    .bind(ti.error.clone())
    .bind(ti.dag_id.as_str())
    .bind(ti.run_id.as_str())
    .bind(ti.task_id.as_str())
}
