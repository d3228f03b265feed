use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Row, any::AnyRow};

use super::{
    DagRunRow, NewRun, Result, RunFilter, RunKey, RunState, RunType, Store, StoreError, StoreEvent,
    TiState, from_micros, to_micros,
};

const RUN_COLUMNS: &str =
    "dag_id, run_id, logical_date_us, run_type, state, conf, queued_at_us, start_us, end_us, owner";

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        table: "dag_runs",
        message,
    }
}

fn run_from_row(row: &AnyRow) -> Result<DagRunRow> {
    let conf: String = row.try_get("conf")?;
    Ok(DagRunRow {
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        logical_date: from_micros(row.try_get("logical_date_us")?),
        run_type: row
            .try_get::<String, _>("run_type")?
            .parse()
            .map_err(corrupt)?,
        state: row
            .try_get::<String, _>("state")?
            .parse()
            .map_err(corrupt)?,
        conf: serde_json::from_str(&conf).map_err(|e| corrupt(format!("conf: {e}")))?,
        queued_at: from_micros(row.try_get("queued_at_us")?),
        start: row.try_get::<Option<i64>, _>("start_us")?.map(from_micros),
        end: row.try_get::<Option<i64>, _>("end_us")?.map(from_micros),
        owner: row.try_get("owner")?,
    })
}

impl Store {
    /// Creates a run and its task instances (state `scheduled`) in one transaction.
    /// Returns `None` when a run with that id already exists.
    pub async fn create_run(
        &self,
        new: &NewRun,
        tasks: &[(String, u32)],
    ) -> Result<Option<DagRunRow>> {
        let now = Utc::now();
        let state = if new.owner.is_some() {
            RunState::Running
        } else {
            RunState::Queued
        };
        let start = new.owner.as_ref().map(|_| to_micros(now));
        let conf = serde_json::Value::Object(new.conf.clone()).to_string();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO dag_runs (dag_id, run_id, logical_date_us, run_type, state, conf, queued_at_us, start_us, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (dag_id, run_id) DO NOTHING",
        )
        .bind(new.dag_id.as_str())
        .bind(new.run_id.as_str())
        .bind(to_micros(new.logical_date))
        .bind(new.run_type.as_str())
        .bind(state.as_str())
        .bind(conf)
        .bind(to_micros(now))
        .bind(start)
        .bind(new.owner.clone())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        for (task_id, max_tries) in tasks {
            sqlx::query("INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number, max_tries) VALUES ($1, $2, $3, $4, 0, $5)")
                .bind(new.dag_id.as_str())
                .bind(new.run_id.as_str())
                .bind(task_id.as_str())
                .bind(TiState::Scheduled.as_str())
                .bind(i64::from(*max_tries))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.publish_run(&new.dag_id, &new.run_id, state);
        self.get_run(&new.dag_id, &new.run_id).await
    }

    fn publish_run(&self, dag_id: &str, run_id: &str, state: RunState) {
        self.events.publish(StoreEvent::Run {
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
            state,
        });
    }

    /// Moves a queued run to running for `owner`; false if another process got it first.
    pub async fn claim_run(&self, dag_id: &str, run_id: &str, owner: &str) -> Result<bool> {
        let result = sqlx::query("UPDATE dag_runs SET state = $1, owner = $2, start_us = $3 WHERE dag_id = $4 AND run_id = $5 AND state = $6")
            .bind(RunState::Running.as_str())
            .bind(owner)
            .bind(to_micros(Utc::now()))
            .bind(dag_id)
            .bind(run_id)
            .bind(RunState::Queued.as_str())
            .execute(&self.pool)
            .await?;
        let claimed = result.rows_affected() == 1;
        if claimed {
            self.publish_run(dag_id, run_id, RunState::Running);
        }
        Ok(claimed)
    }

    /// Takes over a running run from a dead owner; false if its owner changed meanwhile.
    pub async fn adopt_run(
        &self,
        dag_id: &str,
        run_id: &str,
        dead_owner: Option<&str>,
        owner: &str,
    ) -> Result<bool> {
        let result = sqlx::query("UPDATE dag_runs SET owner = $1 WHERE dag_id = $2 AND run_id = $3 AND state = $4 AND COALESCE(owner, '') = $5")
            .bind(owner)
            .bind(dag_id)
            .bind(run_id)
            .bind(RunState::Running.as_str())
            .bind(dead_owner.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Ends a running run that `owner` holds; [`StoreError::Lost`] when it no longer does.
    pub async fn finish_run(&self, run: &RunKey, owner: &str, state: RunState) -> Result<()> {
        let result = sqlx::query(
            "UPDATE dag_runs SET state = $1, end_us = $2 WHERE dag_id = $3 AND run_id = $4 AND state = $5 AND owner = $6",
        )
        .bind(state.as_str())
        .bind(to_micros(Utc::now()))
        .bind(run.dag_id.as_str())
        .bind(run.run_id.as_str())
        .bind(RunState::Running.as_str())
        .bind(owner)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() != 1 {
            return Err(StoreError::Lost {
                what: format!("run {}.{}", run.dag_id, run.run_id),
                expected: format!("running under {owner}"),
            });
        }
        self.publish_run(&run.dag_id, &run.run_id, state);
        Ok(())
    }

    /// Ends a queued run as stopped (nothing ran); false when it is no longer queued.
    pub async fn stop_queued_run(&self, run: &RunKey) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE dag_runs SET state = $1, end_us = $2 WHERE dag_id = $3 AND run_id = $4 AND state = $5",
        )
        .bind(RunState::Stopped.as_str())
        .bind(to_micros(Utc::now()))
        .bind(run.dag_id.as_str())
        .bind(run.run_id.as_str())
        .bind(RunState::Queued.as_str())
        .execute(&self.pool)
        .await?;
        let stopped = result.rows_affected() == 1;
        if stopped {
            self.publish_run(&run.dag_id, &run.run_id, RunState::Stopped);
        }
        Ok(stopped)
    }

    /// The newest runs of a DAG by logical date (newest first), before `before` if given.
    pub async fn latest_runs(
        &self,
        dag_id: &str,
        before: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<DagRunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND logical_date_us < $2
             ORDER BY logical_date_us DESC, queued_at_us DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(dag_id)
            .bind(before.map_or(i64::MAX, to_micros))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The newest `per_dag` runs of each of `dag_ids` (newest first), in one query.
    pub async fn latest_runs_of_dags(
        &self,
        dag_ids: &[&str],
        per_dag: i64,
    ) -> Result<HashMap<String, Vec<DagRunRow>>> {
        let mut by_dag: HashMap<String, Vec<DagRunRow>> = HashMap::new();
        if dag_ids.is_empty() {
            return Ok(by_dag);
        }
        let placeholders: Vec<String> = (0..dag_ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM (
                SELECT {RUN_COLUMNS}, ROW_NUMBER() OVER (
                    PARTITION BY dag_id ORDER BY logical_date_us DESC, queued_at_us DESC) AS newest
                FROM dag_runs WHERE dag_id IN ({})) ranked
             WHERE newest <= $1 ORDER BY dag_id, newest",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(per_dag);
        for dag_id in dag_ids {
            query = query.bind(*dag_id);
        }
        for row in query.fetch_all(&self.pool).await? {
            let run = run_from_row(&row)?;
            by_dag.entry(run.dag_id.clone()).or_default().push(run);
        }
        Ok(by_dag)
    }

    /// (dag_id, state, count) of every DAG's runs.
    pub async fn run_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT dag_id, state, COUNT(*) FROM dag_runs GROUP BY dag_id, state ORDER BY dag_id, state",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many runs match `filter` (its limit and offset aside).
    pub async fn count_runs(&self, filter: &RunFilter) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM dag_runs WHERE ($1 = '' OR dag_id = $1) AND ($2 = '' OR state = $2) AND ($3 = '' OR run_type = $3)",
        )
        .bind(filter.dag_id.clone().unwrap_or_default())
        .bind(filter.state.map(|s| s.as_str()).unwrap_or_default())
        .bind(filter.run_type.map(|s| s.as_str()).unwrap_or_default())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<DagRunRow>> {
        let sql = "SELECT dag_id, run_id, logical_date_us, run_type, state, conf, queued_at_us, start_us, end_us, owner FROM dag_runs WHERE dag_id = $1 AND run_id = $2";
        let row = sqlx::query(sql)
            .bind(dag_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Runs with this id in any DAG.
    pub async fn find_runs(&self, run_id: &str) -> Result<Vec<DagRunRow>> {
        let sql = "SELECT dag_id, run_id, logical_date_us, run_type, state, conf, queued_at_us, start_us, end_us, owner FROM dag_runs WHERE run_id = $1 ORDER BY dag_id";
        let rows = sqlx::query(sql).bind(run_id).fetch_all(&self.pool).await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Runs in `state`, oldest logical date first.
    pub async fn runs_in_state(&self, state: RunState) -> Result<Vec<DagRunRow>> {
        let sql = "SELECT dag_id, run_id, logical_date_us, run_type, state, conf, queued_at_us, start_us, end_us, owner FROM dag_runs WHERE state = $1 ORDER BY logical_date_us, queued_at_us";
        let rows = sqlx::query(sql)
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Newest first, filtered.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<DagRunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs
             WHERE ($1 = '' OR dag_id = $1) AND ($2 = '' OR state = $2) AND ($3 = '' OR run_type = $3)
             ORDER BY queued_at_us DESC, logical_date_us DESC LIMIT $4 OFFSET $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.dag_id.clone().unwrap_or_default())
            .bind(filter.state.map(|s| s.as_str()).unwrap_or_default())
            .bind(filter.run_type.map(|s| s.as_str()).unwrap_or_default())
            .bind(filter.limit.unwrap_or(100))
            .bind(filter.offset.unwrap_or(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The logical date of the newest scheduled run of a DAG.
    pub async fn last_scheduled_date(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MAX(logical_date_us) AS last FROM dag_runs WHERE dag_id = $1 AND run_type = $2",
        )
        .bind(dag_id)
        .bind(RunType::Scheduled.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("last")?.map(from_micros))
    }

    /// How many runs of a DAG are queued or running.
    pub async fn unfinished_run_count(&self, dag_id: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN state = $2 THEN 1 ELSE 0 END), 0) AS queued,
                    COALESCE(SUM(CASE WHEN state = $3 THEN 1 ELSE 0 END), 0) AS running
             FROM dag_runs WHERE dag_id = $1 AND state IN ($2, $3)",
        )
        .bind(dag_id)
        .bind(RunState::Queued.as_str())
        .bind(RunState::Running.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("queued")?, row.try_get("running")?))
    }
}
