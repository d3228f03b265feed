//! Backfills: a DAG's runs over past intervals, created together (queued) and started by the
//! scheduler under the backfill's own `max_active_runs`; paused, resumed and cancelled as one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Row, any::AnyRow};

use super::{
    NewTaskInstance, Result, RunKey, RunState, RunType, Store, from_micros, runs::insert_run,
    to_micros,
};
use crate::store::NewRun;

/// A backfill to create.
#[derive(Debug, Clone)]
pub struct NewBackfill {
    pub dag_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `none`, `failed` or `all`.
    pub reprocess: String,
    pub max_active_runs: u32,
    pub conf: serde_json::Map<String, serde_json::Value>,
    /// Who asked for it (a user name, or the OS user of the CLI).
    pub created_by: String,
    /// The version of the DAG's file its runs are created with.
    pub dag_version_number: Option<i64>,
    /// Start its latest dates first.
    pub run_backwards: bool,
}

/// A backfill as stored, with how far its runs have got.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillRow {
    pub id: i64,
    pub dag_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reprocess: String,
    pub max_active_runs: u32,
    pub conf: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub is_paused: bool,
    pub is_cancelled: bool,
    /// Its latest dates start first.
    pub run_backwards: bool,
    /// When its last run ended, or when it was cancelled.
    pub completed_at: Option<DateTime<Utc>>,
    pub progress: BackfillProgress,
}

/// How many of a backfill's runs are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillProgress {
    pub total: u64,
    pub queued: u64,
    pub running: u64,
    pub success: u64,
    pub failed: u64,
    /// Stopped (a cancelled backfill's queued runs are stopped).
    pub stopped: u64,
}

impl BackfillProgress {
    /// From the counters a backfill's row keeps (moved with each of its runs' states).
    fn from_row(row: &AnyRow) -> Result<Self> {
        let count = |state: RunState| -> Result<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(counter_column(state))?).unwrap_or(0))
        };
        let mut progress = Self {
            queued: count(RunState::Queued)?,
            running: count(RunState::Running)?,
            success: count(RunState::Success)?,
            failed: count(RunState::Failed)?,
            stopped: count(RunState::Stopped)?,
            total: 0,
        };
        progress.total = progress.queued
            + progress.running
            + progress.success
            + progress.failed
            + progress.stopped;
        Ok(progress)
    }
}

/// The column of `backfills` counting its runs in `state`.
fn counter_column(state: RunState) -> &'static str {
    match state {
        RunState::Queued => "runs_queued",
        RunState::Running => "runs_running",
        RunState::Success => "runs_success",
        RunState::Failed => "runs_failed",
        RunState::Stopped => "runs_stopped",
    }
}

/// Moves one run of backfill `id` from `from`'s counter to `to`'s, inside the transaction
/// that moves the run (so the counters always add up to its runs' states). A run queued
/// again (cleared) reopens its backfill if it was completed or cancelled, so the scheduler
/// starts it under the backfill's `max_active_runs` and completes the backfill again after.
pub(super) async fn count_run_move(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    from: RunState,
    to: RunState,
) -> Result<()> {
    let reopen = if to == RunState::Queued {
        ", completed_at_us = NULL, is_cancelled = 0"
    } else {
        ""
    };
    let (from, to) = (counter_column(from), counter_column(to));
    let sql =
        format!("UPDATE backfills SET {from} = {from} - 1, {to} = {to} + 1{reopen} WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// What the scheduler needs to know of an unfinished backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillLimit {
    pub is_paused: bool,
    pub max_active_runs: u32,
    /// Its latest dates start first.
    pub run_backwards: bool,
}

const COLUMNS: &str = "id, dag_id, from_us, to_us, reprocess, max_active_runs, conf, created_at_us, created_by, is_paused, is_cancelled, run_backwards, completed_at_us, runs_queued, runs_running, runs_success, runs_failed, runs_stopped";

impl BackfillRow {
    /// `running`, `paused`, `completed` or `cancelled`.
    pub fn state(&self) -> &'static str {
        match (self.completed_at, self.is_cancelled, self.is_paused) {
            (Some(_), true, _) => "cancelled",
            (Some(_), false, _) => "completed",
            (None, _, true) => "paused",
            (None, _, false) => "running",
        }
    }
}

fn backfill_from_row(row: &AnyRow) -> Result<BackfillRow> {
    let conf: String = row.try_get("conf")?;
    Ok(BackfillRow {
        id: row.try_get("id")?,
        dag_id: row.try_get("dag_id")?,
        from: from_micros(row.try_get("from_us")?),
        to: from_micros(row.try_get("to_us")?),
        reprocess: row.try_get("reprocess")?,
        max_active_runs: u32::try_from(row.try_get::<i64, _>("max_active_runs")?).unwrap_or(1),
        conf: serde_json::from_str(&conf).unwrap_or_default(),
        created_at: from_micros(row.try_get("created_at_us")?),
        created_by: row.try_get("created_by")?,
        is_paused: row.try_get::<i64, _>("is_paused")? != 0,
        is_cancelled: row.try_get::<i64, _>("is_cancelled")? != 0,
        run_backwards: row.try_get::<i64, _>("run_backwards")? != 0,
        completed_at: row
            .try_get::<Option<i64>, _>("completed_at_us")?
            .map(from_micros),
        progress: BackfillProgress::from_row(row)?,
    })
}

impl Store {
    /// Creates a backfill and one queued run (with its task instances) per logical date in
    /// one transaction; returns its id. A date whose `backfill__<date>` run exists already
    /// (a rerun) gets `backfill__<date>__<id>`.
    pub async fn create_backfill(
        &self,
        new: &NewBackfill,
        dates: &[DateTime<Utc>],
        tasks: &[NewTaskInstance],
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO backfills (dag_id, from_us, to_us, reprocess, max_active_runs, conf, created_at_us, created_by, run_backwards)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(new.dag_id.as_str())
        .bind(to_micros(new.from))
        .bind(to_micros(new.to))
        .bind(new.reprocess.as_str())
        .bind(i64::from(new.max_active_runs))
        .bind(serde_json::Value::Object(new.conf.clone()).to_string())
        .bind(to_micros(Utc::now()))
        .bind(new.created_by.as_str())
        .bind(i64::from(new.run_backwards))
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let mut created = Vec::with_capacity(dates.len());
        for logical_date in dates {
            let mut run = NewRun {
                dag_id: new.dag_id.clone(),
                run_id: NewRun::run_id_for(RunType::Backfill, *logical_date),
                logical_date: *logical_date,
                run_type: RunType::Backfill,
                conf: new.conf.clone(),
                owner: None,
                backfill_id: Some(id),
                dag_version_number: new.dag_version_number,
            };
            if !insert_run(&mut tx, &run, tasks).await? {
                run.run_id = format!("{}__{id}", run.run_id);
                insert_run(&mut tx, &run, tasks).await?;
            }
            created.push(run.run_id);
        }
        // Its runs are all queued: no run moves counted (count_run_move) are under way yet.
        sqlx::query("UPDATE backfills SET runs_queued = $1 WHERE id = $2")
            .bind(i64::try_from(created.len()).unwrap_or(i64::MAX))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        for run_id in created {
            self.publish_run(&new.dag_id, &run_id, RunState::Queued);
        }
        self.publish_backfill(&new.dag_id, id).await?;
        Ok(id)
    }

    /// The latest run's state at each logical date of `dag_id` from `from` to `to`.
    pub async fn run_states_between(
        &self,
        dag_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashMap<DateTime<Utc>, RunState>> {
        let rows = sqlx::query(
            "SELECT logical_date_us, state FROM dag_runs
             WHERE dag_id = $1 AND logical_date_us >= $2 AND logical_date_us <= $3
             ORDER BY queued_at_us",
        )
        .bind(dag_id)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .fetch_all(&self.pool)
        .await?;
        let mut latest = HashMap::new();
        for row in &rows {
            let state: String = row.try_get("state")?;
            if let Ok(state) = state.parse() {
                latest.insert(from_micros(row.try_get("logical_date_us")?), state);
            }
        }
        Ok(latest)
    }

    /// The backfills of `dag_id`, newest first, with their progress.
    pub async fn backfills_of(&self, dag_id: &str) -> Result<Vec<BackfillRow>> {
        let sql = format!("SELECT {COLUMNS} FROM backfills WHERE dag_id = $1 ORDER BY id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(dag_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(backfill_from_row).collect()
    }

    /// One backfill with its progress.
    pub async fn backfill(&self, id: i64) -> Result<Option<BackfillRow>> {
        let sql = format!("SELECT {COLUMNS} FROM backfills WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(backfill_from_row).transpose()
    }

    /// Pauses or resumes an unfinished backfill; false when it is completed (or unknown).
    pub async fn set_backfill_paused(&self, id: i64, paused: bool) -> Result<bool> {
        let rows = sqlx::query(
            "UPDATE backfills SET is_paused = $1 WHERE id = $2 AND completed_at_us IS NULL
             RETURNING dag_id",
        )
        .bind(i64::from(paused))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            self.publish_backfill(&row.try_get::<String, _>("dag_id")?, id)
                .await?;
        }
        Ok(rows.len() == 1)
    }

    /// Tells this process's pages and, on PostgreSQL, every other process's that a backfill
    /// changed (after its commit).
    async fn publish_backfill(&self, dag_id: &str, backfill_id: i64) -> Result<()> {
        let event = super::StoreEvent::Backfill {
            dag_id: dag_id.to_owned(),
            backfill_id,
        };
        if self.is_shared() {
            let mut conn = self.pool.acquire().await?;
            self.notify_in(&mut conn, || vec![event.clone()]).await?;
        }
        self.events.publish(event);
        Ok(())
    }

    /// Cancels an unfinished backfill: its queued runs are stopped (its running ones run on)
    /// and it is completed now; false when it was completed already (or is unknown).
    pub async fn cancel_backfill(&self, id: i64) -> Result<bool> {
        let cancelled = sqlx::query(
            "UPDATE backfills SET completed_at_us = $1, is_paused = 0, is_cancelled = 1
             WHERE id = $2 AND completed_at_us IS NULL RETURNING dag_id",
        )
        .bind(to_micros(Utc::now()))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(cancelled) = cancelled else {
            return Ok(false);
        };
        let queued = sqlx::query(
            "SELECT dag_id, run_id FROM dag_runs WHERE backfill_id = $1 AND state = $2",
        )
        .bind(id)
        .bind(RunState::Queued.as_str())
        .fetch_all(&self.pool)
        .await?;
        for row in &queued {
            let run = RunKey {
                dag_id: row.try_get("dag_id")?,
                run_id: row.try_get("run_id")?,
            };
            // One the scheduler started meanwhile runs on.
            self.stop_queued_run(&run).await?;
        }
        self.publish_backfill(&cancelled.try_get::<String, _>("dag_id")?, id)
            .await?;
        Ok(true)
    }

    /// The pause and limit of every backfill not completed.
    pub async fn unfinished_backfills(&self) -> Result<HashMap<i64, BackfillLimit>> {
        let rows = sqlx::query(
            "SELECT id, is_paused, max_active_runs, run_backwards FROM backfills WHERE completed_at_us IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let limit = BackfillLimit {
                    is_paused: row.try_get::<i64, _>("is_paused")? != 0,
                    max_active_runs: u32::try_from(row.try_get::<i64, _>("max_active_runs")?)
                        .unwrap_or(1),
                    run_backwards: row.try_get::<i64, _>("run_backwards")? != 0,
                };
                Ok((row.try_get("id")?, limit))
            })
            .collect()
    }

    /// Completes the unfinished backfills whose runs have all ended; returns their ids.
    pub async fn complete_finished_backfills(&self) -> Result<Vec<i64>> {
        // Read first: with no backfill under way (most ticks), no write at all (on SQLite a
        // write, even of no row, takes the database's one writer lock).
        let any_open =
            sqlx::query("SELECT id FROM backfills WHERE completed_at_us IS NULL LIMIT 1")
                .fetch_optional(&self.pool)
                .await?
                .is_some();
        if !any_open {
            return Ok(Vec::new());
        }
        let completed = self.complete_backfills_now().await?;
        for (dag_id, id) in &completed {
            self.publish_backfill(dag_id, *id).await?;
        }
        Ok(completed.into_iter().map(|(_, id)| id).collect())
    }

    async fn complete_backfills_now(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "UPDATE backfills SET completed_at_us = $1
             WHERE completed_at_us IS NULL AND NOT EXISTS (
                SELECT 1 FROM dag_runs r WHERE r.backfill_id = backfills.id AND r.state IN ($2, $3))
             RETURNING dag_id, id",
        )
        .bind(to_micros(Utc::now()))
        .bind(RunState::Queued.as_str())
        .bind(RunState::Running.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("dag_id")?, row.try_get("id")?)))
            .collect()
    }

    /// Running runs by DAG and backfill (None: the DAG's own runs, scheduled or manual).
    pub async fn running_run_counts(&self) -> Result<HashMap<(String, Option<i64>), u32>> {
        let rows = sqlx::query(
            "SELECT dag_id, backfill_id, COUNT(*) AS n FROM dag_runs WHERE state = $1
             GROUP BY dag_id, backfill_id",
        )
        .bind(RunState::Running.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let count: i64 = row.try_get("n")?;
                let key = (row.try_get("dag_id")?, row.try_get("backfill_id")?);
                Ok((key, u32::try_from(count).unwrap_or(u32::MAX)))
            })
            .collect()
    }
}
