use sqlx::{Row, any::AnyRow};

use chrono::Utc;

use super::{
    Result, RunKey, RunState, Store, StoreError, StoreEvent, TaskInstanceRow, TaskKey, TiState,
    from_micros, to_micros,
};

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

    /// Writes every mutable field of a task instance that is still `from` in a run `owner`
    /// holds; durable when this returns, [`StoreError::Lost`] when it is not.
    pub async fn save_task_instance(&self, change: &TiChange<'_>) -> Result<()> {
        check_applied(change, update_query(change).execute(&self.pool).await?)?;
        self.publish_task(change.row);
        Ok(())
    }

    fn publish_task(&self, ti: &TaskInstanceRow) {
        self.events.publish(StoreEvent::Task {
            dag_id: ti.dag_id.clone(),
            run_id: ti.run_id.clone(),
            task_id: ti.task_id.clone(),
            state: ti.state,
            try_number: ti.try_number,
        });
    }

    /// (dag_id, state, count) of every DAG's task instances.
    pub async fn task_instance_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT dag_id, state, COUNT(*) FROM task_instances GROUP BY dag_id, state ORDER BY dag_id, state",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The task instances of several runs of one DAG.
    pub async fn task_instances_of_runs(
        &self,
        dag_id: &str,
        run_ids: &[String],
    ) -> Result<Vec<TaskInstanceRow>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..run_ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT * FROM task_instances WHERE dag_id = $1 AND run_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(dag_id);
        for run_id in run_ids {
            query = query.bind(run_id.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(ti_from_row).collect()
    }

    /// Clears task instances of a finished run so they run again: each goes back to
    /// `scheduled` with `tries` more tries, and the run back to `queued` for the scheduler.
    /// False (nothing changed) when the run is not finished.
    pub async fn clear_task_instances(
        &self,
        run: &RunKey,
        tasks: &[(String, u32)],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let reopened = sqlx::query(
            "UPDATE dag_runs SET state = $1, owner = NULL, start_us = NULL, end_us = NULL
             WHERE dag_id = $2 AND run_id = $3 AND state IN ($4, $5, $6)",
        )
        .bind(RunState::Queued.as_str())
        .bind(run.dag_id.as_str())
        .bind(run.run_id.as_str())
        .bind(RunState::Success.as_str())
        .bind(RunState::Failed.as_str())
        .bind(RunState::Stopped.as_str())
        .execute(&mut *tx)
        .await?;
        if reopened.rows_affected() == 0 {
            return Ok(false);
        }
        for (task_id, tries) in tasks {
            sqlx::query(
                "UPDATE task_instances SET state = $1, max_tries = try_number + $2, end_us = NULL, duration_ms = NULL,
                    next_retry_us = NULL, error = NULL
                 WHERE dag_id = $3 AND run_id = $4 AND task_id = $5",
            )
            .bind(TiState::Scheduled.as_str())
            .bind(i64::from(*tries))
            .bind(run.dag_id.as_str())
            .bind(run.run_id.as_str())
            .bind(task_id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.events.publish(StoreEvent::Run {
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            state: RunState::Queued,
        });
        for (task_id, _) in tasks {
            self.events.publish(StoreEvent::Task {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
                task_id: task_id.clone(),
                state: TiState::Scheduled,
                try_number: 0,
            });
        }
        Ok(true)
    }

    /// Marks a task instance of a finished run `state` (success or failed) and sets the run's
    /// state to what its task instances now say. False when the run is not finished.
    pub async fn mark_task_instance(&self, task: &TaskKey, state: TiState) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let finished: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM dag_runs WHERE dag_id = $1 AND run_id = $2 AND state IN ($3, $4, $5)",
        )
        .bind(task.dag_id.as_str())
        .bind(task.run_id.as_str())
        .bind(RunState::Success.as_str())
        .bind(RunState::Failed.as_str())
        .bind(RunState::Stopped.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if finished.is_none() {
            return Ok(false);
        }
        let now = to_micros(Utc::now());
        sqlx::query(
            "UPDATE task_instances SET state = $1, end_us = COALESCE(end_us, $2)
             WHERE dag_id = $3 AND run_id = $4 AND task_id = $5",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(task.dag_id.as_str())
        .bind(task.run_id.as_str())
        .bind(task.task_id.as_str())
        .execute(&mut *tx)
        .await?;
        let failing: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM task_instances WHERE dag_id = $1 AND run_id = $2 AND state NOT IN ($3, $4)",
        )
        .bind(task.dag_id.as_str())
        .bind(task.run_id.as_str())
        .bind(TiState::Success.as_str())
        .bind(TiState::Skipped.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let run_state = if failing.0 == 0 {
            RunState::Success
        } else {
            RunState::Failed
        };
        sqlx::query("UPDATE dag_runs SET state = $1 WHERE dag_id = $2 AND run_id = $3")
            .bind(run_state.as_str())
            .bind(task.dag_id.as_str())
            .bind(task.run_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.events.publish(StoreEvent::Task {
            dag_id: task.dag_id.clone(),
            run_id: task.run_id.clone(),
            task_id: task.task_id.clone(),
            state,
            try_number: 0,
        });
        self.events.publish(StoreEvent::Run {
            dag_id: task.dag_id.clone(),
            run_id: task.run_id.clone(),
            state: run_state,
        });
        Ok(true)
    }

    /// Writes several task instances in one transaction (group commit): all or none.
    pub async fn save_task_instances(&self, changes: &[TiChange<'_>]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for change in changes {
            check_applied(change, update_query(change).execute(&mut *tx).await?)?;
        }
        tx.commit().await?;
        for change in changes {
            self.publish_task(change.row);
        }
        Ok(())
    }
}

/// A task instance's new fields, to be written only if it is still in state `from` and its
/// run is still held by `owner`: a process that lost its run to another cannot overwrite it.
#[derive(Debug, Clone, Copy)]
pub struct TiChange<'a> {
    pub row: &'a TaskInstanceRow,
    pub from: TiState,
    pub owner: &'a str,
}

fn check_applied(change: &TiChange<'_>, result: sqlx::any::AnyQueryResult) -> Result<()> {
    if result.rows_affected() == 1 {
        return Ok(());
    }
    let ti = change.row;
    Err(StoreError::Lost {
        what: format!("task instance {}.{}.{}", ti.dag_id, ti.run_id, ti.task_id),
        expected: format!("{} under {}", change.from, change.owner),
    })
}

fn update_query<'q>(
    change: &TiChange<'q>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let ti = change.row;
    sqlx::query(
        "UPDATE task_instances SET state = $1, try_number = $2, max_tries = $3, start_us = $4, end_us = $5, duration_ms = $6,
            hostname = $7, pid = $8, next_retry_us = $9, result = $10, error = $11
         WHERE dag_id = $12 AND run_id = $13 AND task_id = $14 AND state = $15
           AND EXISTS (SELECT 1 FROM dag_runs r WHERE r.dag_id = $12 AND r.run_id = $13 AND r.owner = $16)",
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
    .bind(change.from.as_str())
    .bind(change.owner)
}
