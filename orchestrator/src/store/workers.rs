//! Workers and the queue (PostgreSQL): a worker registers, heartbeats on its own row (no
//! other row is touched, so heartbeats do not contend with the hand-off), claims queued task
//! instances of its queues with `FOR UPDATE SKIP LOCKED`, and is declared lost when its
//! heartbeat is older than the timeout.

use chrono::{DateTime, Utc};
use sqlx::{Row, any::AnyRow};

use super::{
    Result, Store, StoreError, TaskInstanceRow, TiState, from_micros,
    task_instances::{task_event, ti_from_row},
    to_micros,
};

/// A worker as registered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    /// Unique per worker process start: the claimant token of its tries.
    pub worker_id: String,
    /// The name it was given (`--name`, else the host name): shown as the tries' hostname.
    pub name: String,
    pub hostname: String,
    pub queues: Vec<String>,
    pub slots: u32,
    /// Tries running at its last heartbeat.
    pub running: u32,
    pub state: WorkerState,
    pub started: DateTime<Utc>,
    pub heartbeat: DateTime<Utc>,
}

crate::store::models::text_enum!(
    /// Where a worker is in its life.
    WorkerState { Active => "active", Stopping => "stopping", Stopped => "stopped", Lost => "lost" }
);

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        table: "workers",
        message,
    }
}

fn worker_from_row(row: &AnyRow) -> Result<WorkerRow> {
    let queues: String = row.try_get("queues")?;
    Ok(WorkerRow {
        worker_id: row.try_get("worker_id")?,
        name: row.try_get("name")?,
        hostname: row.try_get("hostname")?,
        queues: queues.split(',').map(str::to_owned).collect(),
        slots: u32::try_from(row.try_get::<i64, _>("slots")?).unwrap_or(0),
        running: u32::try_from(row.try_get::<i64, _>("running")?).unwrap_or(0),
        state: row
            .try_get::<String, _>("state")?
            .parse()
            .map_err(corrupt)?,
        started: from_micros(row.try_get("started_us")?),
        heartbeat: from_micros(row.try_get("heartbeat_us")?),
    })
}

/// Who claims: the token written as `claimed_by`, and what the tries show.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub worker_id: &'a str,
    pub name: &'a str,
    pub pid: u32,
}

/// Key of the PostgreSQL advisory lock every claim takes: pools are counted and taken by one
/// claim at a time.
const POOL_CLAIM_LOCK: i64 = 0x0055_5044_504f_4f4c;

impl Store {
    pub async fn register_worker(&self, worker: &WorkerRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (worker_id, name, hostname, queues, slots, running, state, started_us, heartbeat_us)
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7)",
        )
        .bind(worker.worker_id.as_str())
        .bind(worker.name.as_str())
        .bind(worker.hostname.as_str())
        .bind(worker.queues.join(","))
        .bind(i64::from(worker.slots))
        .bind(WorkerState::Active.as_str())
        .bind(to_micros(worker.started))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a heartbeat of an active or stopping worker; false when it is no longer one
    /// of those (declared lost: its tries were taken from it).
    pub async fn heartbeat_worker(&self, worker_id: &str, running: u32) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE workers SET heartbeat_us = $1, running = $2 WHERE worker_id = $3 AND state IN ($4, $5)",
        )
        .bind(to_micros(Utc::now()))
        .bind(i64::from(running))
        .bind(worker_id)
        .bind(WorkerState::Active.as_str())
        .bind(WorkerState::Stopping.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Moves a worker that is not lost to `state` (stopping, stopped).
    pub async fn set_worker_state(&self, worker_id: &str, state: WorkerState) -> Result<()> {
        sqlx::query(
            "UPDATE workers SET state = $1, heartbeat_us = $2 WHERE worker_id = $3 AND state <> $4",
        )
        .bind(state.as_str())
        .bind(to_micros(Utc::now()))
        .bind(worker_id)
        .bind(WorkerState::Lost.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every worker, the live ones first, newest heartbeat first.
    pub async fn workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sqlx::query(
            "SELECT * FROM workers ORDER BY CASE WHEN state IN ('active', 'stopping') THEN 0 ELSE 1 END, heartbeat_us DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(worker_from_row).collect()
    }

    /// Declares lost every active or stopping worker whose last heartbeat is before `cutoff`;
    /// returns their ids (each declared by exactly one caller).
    pub async fn declare_lost_workers(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "UPDATE workers SET state = $1 WHERE state IN ($2, $3) AND heartbeat_us < $4 RETURNING worker_id",
        )
        .bind(WorkerState::Lost.as_str())
        .bind(WorkerState::Active.as_str())
        .bind(WorkerState::Stopping.as_str())
        .bind(to_micros(cutoff))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("worker_id")?))
            .collect()
    }

    /// The running task instances claimed by `claimant`.
    pub async fn running_claimed_by(&self, claimant: &str) -> Result<Vec<TaskInstanceRow>> {
        let query =
            sqlx::query("SELECT * FROM task_instances WHERE state = 'running' AND claimed_by = $1")
                .bind(claimant);
        self.task_instance_rows(query).await
    }

    /// Claims up to `limit` queued task instances of `queues` for `claimant` and starts their
    /// next try (`queued -> running`, durable and notified in one transaction); rows another
    /// worker holds are skipped, not waited for. Highest `priority_weight` first, then oldest
    /// logical date; a task is claimed only while its pool has its `pool_slots` free, counted
    /// in the same transaction under a lock every claim takes (so two workers cannot both take
    /// a pool's last slot). PostgreSQL only.
    pub async fn claim_task_instances(
        &self,
        claimant: &Claimant<'_>,
        queues: &[String],
        limit: u32,
    ) -> Result<Vec<TaskInstanceRow>> {
        if limit == 0 || queues.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "WITH candidates AS (
                SELECT t.dag_id, t.run_id, t.task_id, t.pool, t.pool_slots, t.priority_weight,
                    r.logical_date_us
                FROM task_instances t JOIN dag_runs r ON r.dag_id = t.dag_id AND r.run_id = t.run_id
                WHERE t.state = 'queued' AND t.queue IN ({})
                ORDER BY t.priority_weight DESC, r.logical_date_us
                LIMIT $7 FOR UPDATE OF t SKIP LOCKED),
             used AS (
                SELECT pool, SUM(pool_slots) AS slots FROM task_instances
                WHERE state = 'running' GROUP BY pool),
             ranked AS (
                SELECT c.*, SUM(c.pool_slots) OVER (PARTITION BY c.pool
                    ORDER BY c.priority_weight DESC, c.logical_date_us, c.dag_id, c.run_id, c.task_id) AS through
                FROM candidates c),
             picked AS (
                SELECT k.dag_id, k.run_id, k.task_id FROM ranked k
                JOIN pools p ON p.name = k.pool LEFT JOIN used u ON u.pool = k.pool
                WHERE COALESCE(u.slots, 0) + k.through <= p.slots
                ORDER BY k.priority_weight DESC, k.logical_date_us LIMIT $6)
             UPDATE task_instances t SET state = $1, try_number = t.try_number + 1, start_us = $2,
                end_us = NULL, duration_ms = NULL, next_retry_us = NULL,
                hostname = $3, pid = $4, claimed_by = $5
             FROM picked p
             WHERE t.dag_id = p.dag_id AND t.run_id = p.run_id AND t.task_id = p.task_id AND t.state = 'queued'
             RETURNING t.*",
            super::bulk::placeholders(8, queues.len())
        );
        debug_assert!(crate::store::task_can_transition(
            TiState::Queued,
            TiState::Running
        ));
        // `state = 'queued'` is spelled out, not bound: the partial index of queued rows
        // serves only queries that name its state.
        debug_assert_eq!(TiState::Queued.as_str(), "queued");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(TiState::Running.as_str())
            .bind(to_micros(Utc::now()))
            .bind(claimant.name)
            .bind(i64::from(claimant.pid))
            .bind(claimant.worker_id)
            .bind(i64::from(limit))
            // More candidates than slots asked for: some may wait for a full pool.
            .bind(i64::from(limit.saturating_mul(4).max(64)));
        for queue in queues {
            query = query.bind(queue.as_str());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(POOL_CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = query.fetch_all(&mut *tx).await?;
        let claimed = rows.iter().map(ti_from_row).collect::<Result<Vec<_>>>()?;
        self.notify_in(&mut tx, || claimed.iter().map(task_event).collect())
            .await?;
        tx.commit().await?;
        for ti in &claimed {
            self.after_ti_change(ti, TiState::Queued, None);
        }
        Ok(claimed)
    }
}
