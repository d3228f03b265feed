use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{
    DagRunRow, NewRun, NewTaskInstance, Result, RunFilter, RunKey, RunState, RunType, Store,
    StoreError, StoreEvent, TiState, filter::Conditions, from_micros, to_micros,
    transitions::run_can_transition,
};

const RUN_COLUMNS: &str = "dag_id, run_id, logical_date_us, run_type, state, conf, queued_at_us, start_us, end_us, owner, backfill_id, dag_version_number";

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
        backfill_id: row.try_get("backfill_id")?,
        dag_version_number: row.try_get("dag_version_number")?,
    })
}

/// A new run is queued, or running when created for its owner.
fn initial_state(new: &NewRun) -> RunState {
    if new.owner.is_some() {
        RunState::Running
    } else {
        RunState::Queued
    }
}

/// Inserts a run and its task instances (`scheduled`) inside `tx`; false (and nothing
/// written) when a run with that id exists.
pub(super) async fn insert_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewRun,
    tasks: &[NewTaskInstance],
) -> Result<bool> {
    let now = Utc::now();
    let state = initial_state(new);
    let start = new.owner.as_ref().map(|_| to_micros(now));
    let conf = serde_json::Value::Object(new.conf.clone()).to_string();
    let inserted = sqlx::query(
        "INSERT INTO dag_runs (dag_id, run_id, logical_date_us, run_type, state, conf, queued_at_us, start_us, owner, backfill_id, dag_version_number)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (dag_id, run_id) DO NOTHING",
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
    .bind(new.backfill_id)
    .bind(new.dag_version_number)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    for chunk in tasks.chunks(INSTANCES_PER_STATEMENT) {
        insert_task_instances(tx, new, chunk).await?;
    }
    Ok(true)
}

/// The most task instances one INSERT statement writes (9 parameters each). 256 created a
/// 20,000-task run in 63 ms instead of 72, but each connection prepares the longer text
/// once: a fresh process's 500-task run took 4.95 ms to create instead of 3.85.
const INSTANCES_PER_STATEMENT: usize = 64;

/// `INSERT ... SELECT FROM (VALUES ...)` of new task instances; rows with an empty DAG id are
/// padding.
static INSERT_INSTANCES: super::bulk::BulkStatement = {
    use super::bulk::{BIGINT, TEXT};
    super::bulk::BulkStatement::new(
        &[TEXT, TEXT, TEXT, TEXT, BIGINT, TEXT, TEXT, BIGINT, BIGINT],
        |values| {
            format!(
                "INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number, max_tries, queue, pool, pool_slots, priority_weight)
                 SELECT v.column1, v.column2, v.column3, v.column4, 0, v.column5, v.column6, v.column7, v.column8, v.column9
                 FROM (VALUES {values}) AS v WHERE v.column1 <> ''"
            )
        },
    )
};

/// Inserts `tasks` of the run `new` as `scheduled` with one statement, padded to a power of
/// two with rows the statement leaves out: one statement per run instead of one per task.
async fn insert_task_instances(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewRun,
    tasks: &[NewTaskInstance],
) -> Result<()> {
    let rows = tasks.len().next_power_of_two();
    let dialect = super::bulk::Dialect::of(tx);
    let mut query = sqlx::query(INSERT_INSTANCES.text(dialect, rows));
    let scheduled = TiState::Scheduled.as_str();
    for task in tasks {
        query = query
            .bind(new.dag_id.as_str())
            .bind(new.run_id.as_str())
            .bind(task.task_id.as_str())
            .bind(scheduled)
            .bind(i64::from(task.max_tries))
            .bind(task.queue.as_str())
            .bind(task.pool.as_str())
            .bind(i64::from(task.pool_slots))
            .bind(i64::from(task.priority_weight));
    }
    for _ in tasks.len()..rows {
        query = query
            .bind("")
            .bind("")
            .bind("")
            .bind("")
            .bind(0_i64)
            .bind("")
            .bind("")
            .bind(0_i64)
            .bind(0_i64);
    }
    let written = query.execute(&mut **tx).await?.rows_affected();
    debug_assert_eq!(written, tasks.len() as u64);
    Ok(())
}

impl Store {
    /// Creates a run and its task instances (state `scheduled`) in one transaction.
    /// Returns `None` when a run with that id already exists.
    pub async fn create_run(
        &self,
        new: &NewRun,
        tasks: &[NewTaskInstance],
    ) -> Result<Option<DagRunRow>> {
        let state = initial_state(new);
        let mut tx = self.pool.begin().await?;
        if !insert_run(&mut tx, new, tasks).await? {
            return Ok(None);
        }
        tx.commit().await?;
        self.publish_run(&new.dag_id, &new.run_id, state);
        self.get_run(&new.dag_id, &new.run_id).await
    }

    pub(super) fn publish_run(&self, dag_id: &str, run_id: &str, state: RunState) {
        self.events.publish(StoreEvent::Run {
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
            state,
        });
    }

    /// Moves a queued run to running for `owner`; false if another process got it first.
    pub async fn claim_run(&self, dag_id: &str, run_id: &str, owner: &str) -> Result<bool> {
        let run = RunKey {
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
        };
        self.transition_run(&RunChange {
            run: &run,
            from: RunState::Queued,
            to: RunState::Running,
            owner: None,
            effect: RunEffect::Claim { owner },
        })
        .await
    }

    /// Takes over a running run from a dead owner; false if its owner changed meanwhile.
    pub async fn adopt_run(
        &self,
        dag_id: &str,
        run_id: &str,
        dead_owner: Option<&str>,
        owner: &str,
    ) -> Result<bool> {
        let run = RunKey {
            dag_id: dag_id.to_owned(),
            run_id: run_id.to_owned(),
        };
        self.transition_run(&RunChange {
            run: &run,
            from: RunState::Running,
            to: RunState::Running,
            owner: Some(dead_owner.unwrap_or("")),
            effect: RunEffect::Adopt { owner },
        })
        .await
    }

    /// Ends a running run that `owner` holds; [`StoreError::Lost`] when it no longer does.
    pub async fn finish_run(&self, run: &RunKey, owner: &str, state: RunState) -> Result<()> {
        let ended = self
            .transition_run(&RunChange {
                run,
                from: RunState::Running,
                to: state,
                owner: Some(owner),
                effect: RunEffect::End,
            })
            .await?;
        if !ended {
            return Err(StoreError::Lost {
                what: format!("run {}.{}", run.dag_id, run.run_id),
                expected: format!("running under {owner}"),
            });
        }
        Ok(())
    }

    /// Ends a queued run as stopped (nothing ran); false when it is no longer queued.
    pub async fn stop_queued_run(&self, run: &RunKey) -> Result<bool> {
        self.transition_run(&RunChange {
            run,
            from: RunState::Queued,
            to: RunState::Stopped,
            owner: None,
            effect: RunEffect::End,
        })
        .await
    }

    /// Asks a running run to stop, wherever it is driven and its tries run (notified); false
    /// when it is not running.
    pub async fn request_run_stop(&self, run: &RunKey) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        let result = sqlx::query(
            "UPDATE dag_runs SET stop_requested_us = COALESCE(stop_requested_us, $1)
             WHERE dag_id = $2 AND run_id = $3 AND state = $4",
        )
        .bind(to_micros(Utc::now()))
        .bind(run.dag_id.as_str())
        .bind(run.run_id.as_str())
        .bind(RunState::Running.as_str())
        .execute(&mut *conn)
        .await?;
        let requested = result.rows_affected() == 1;
        if requested {
            let event = StoreEvent::StopRequested {
                dag_id: run.dag_id.clone(),
                run_id: run.run_id.clone(),
            };
            self.notify_in(&mut conn, || vec![event.clone()]).await?;
            self.events.publish(event);
        }
        Ok(requested)
    }

    /// Whether a stop of the run was asked for.
    pub async fn stop_requested(&self, run: &RunKey) -> Result<bool> {
        let row =
            sqlx::query("SELECT stop_requested_us FROM dag_runs WHERE dag_id = $1 AND run_id = $2")
                .bind(run.dag_id.as_str())
                .bind(run.run_id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => row
                .try_get::<Option<i64>, _>("stop_requested_us")?
                .is_some(),
            None => false,
        })
    }

    /// The running tries claimed by `claimant` whose run was asked to stop.
    pub async fn stopped_tries_of(&self, claimant: &str) -> Result<Vec<super::TaskKey>> {
        let rows = sqlx::query(
            "SELECT t.dag_id, t.run_id, t.task_id FROM task_instances t
             JOIN dag_runs r ON r.dag_id = t.dag_id AND r.run_id = t.run_id
             WHERE t.claimed_by = $1 AND t.state = 'running' AND r.stop_requested_us IS NOT NULL",
        )
        .bind(claimant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(super::TaskKey {
                    dag_id: row.try_get("dag_id")?,
                    run_id: row.try_get("run_id")?,
                    task_id: row.try_get("task_id")?,
                })
            })
            .collect()
    }

    /// Moves a run if it is still in `change.from` (and held by `change.owner`, if given);
    /// false when it is not. Durable when this returns; logged and published after the commit.
    pub async fn transition_run(&self, change: &RunChange<'_>) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = apply_run_change(&mut tx, change).await?;
        if moved {
            self.notify_in(&mut tx, || vec![change.event()]).await?;
        }
        tx.commit().await?;
        if moved {
            self.after_run_change(change);
        }
        Ok(moved)
    }

    pub(super) fn after_run_change(&self, change: &RunChange<'_>) {
        let owner = match change.effect {
            RunEffect::Claim { owner } | RunEffect::Adopt { owner } => Some(owner),
            _ => None,
        };
        tracing::info!(
            dag_id = %change.run.dag_id,
            run_id = %change.run.run_id,
            from = %change.from,
            to = %change.to,
            owner,
            "Run state changed"
        );
        self.events.publish(change.event());
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

    /// The newest `per_dag` runs of each of `dag_ids` (newest first), in one query: each DAG's
    /// read through its index by logical date and cut at `per_dag`. (A window numbering every
    /// run of the page's DAGs took 96-134 ms at 50,000 runs; this takes what 25 runs a DAG do.)
    pub async fn latest_runs_of_dags(
        &self,
        dag_ids: &[&str],
        per_dag: i64,
    ) -> Result<HashMap<String, Vec<DagRunRow>>> {
        let mut by_dag: HashMap<String, Vec<DagRunRow>> = HashMap::new();
        if dag_ids.is_empty() {
            return Ok(by_dag);
        }
        let newest_of = |i: usize| {
            format!(
                "SELECT {RUN_COLUMNS} FROM (SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = ${}
                 ORDER BY logical_date_us DESC, queued_at_us DESC LIMIT $1) newest_{i}",
                i + 2
            )
        };
        let sql = (0..dag_ids.len())
            .map(newest_of)
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(per_dag);
        for dag_id in dag_ids {
            query = query.bind(*dag_id);
        }
        for row in query.fetch_all(&self.pool).await? {
            let run = run_from_row(&row)?;
            by_dag.entry(run.dag_id.clone()).or_default().push(run);
        }
        for runs in by_dag.values_mut() {
            runs.sort_by_key(|r| std::cmp::Reverse((r.logical_date, r.queued_at)));
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
        let conditions = run_conditions(filter);
        let sql = format!("SELECT COUNT(*) AS n FROM dag_runs{}", conditions.clause());
        let row = conditions
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<DagRunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_runs WHERE dag_id = $1 AND run_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(dag_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Runs with this id in any DAG.
    pub async fn find_runs(&self, run_id: &str) -> Result<Vec<DagRunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_runs WHERE run_id = $1 ORDER BY dag_id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The queued runs the scheduler may start, in the order to start them: every queued run
    /// that belongs to no backfill, oldest logical date first, and of each unpaused backfill in
    /// `backfills` only its first `max_active_runs` (oldest first, or latest first when it runs
    /// backwards: a backfill of thousands of runs is not read whole on every poll).
    pub async fn startable_queued_runs(
        &self,
        backfills: &std::collections::HashMap<i64, super::BackfillLimit>,
    ) -> Result<Vec<DagRunRow>> {
        let own = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE state = $1 AND backfill_id IS NULL ORDER BY logical_date_us, queued_at_us"
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(own))
            .bind(RunState::Queued.as_str())
            .fetch_all(&self.pool)
            .await?;
        for (id, limit) in backfills.iter().filter(|(_, limit)| !limit.is_paused) {
            let direction = if limit.run_backwards { "DESC" } else { "ASC" };
            let of_backfill = format!(
                "SELECT {RUN_COLUMNS} FROM dag_runs WHERE state = $1 AND backfill_id = $2
                 ORDER BY logical_date_us {direction}, queued_at_us LIMIT $3"
            );
            let first = sqlx::query(sqlx::AssertSqlSafe(of_backfill))
                .bind(RunState::Queued.as_str())
                .bind(*id)
                .bind(i64::from(limit.max_active_runs))
                .fetch_all(&self.pool)
                .await?;
            rows.extend(first);
        }
        // In the order each group (the DAGs' own runs, each backfill's) starts them; the groups
        // have their own limits, so their order among each other does not matter.
        rows.iter().map(run_from_row).collect()
    }

    /// Runs in `state`, oldest logical date first.
    pub async fn runs_in_state(&self, state: RunState) -> Result<Vec<DagRunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs WHERE state = $1 ORDER BY logical_date_us, queued_at_us"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Newest first, filtered.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<DagRunRow>> {
        let conditions = run_conditions(filter);
        let order = match filter.order_by {
            Some((column, newest_first)) => {
                let direction = if newest_first { "DESC" } else { "ASC" };
                format!("{} {direction}, dag_id, run_id", column.sql())
            }
            None => "queued_at_us DESC, logical_date_us DESC".to_owned(),
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_runs{} ORDER BY {order} LIMIT {} OFFSET {}",
            conditions.clause(),
            filter.limit.unwrap_or(100).max(0),
            filter.offset.unwrap_or(0).max(0)
        );
        let rows = conditions
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
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

/// A run's move from `from` to `to`, and what else it writes.
#[derive(Debug, Clone, Copy)]
pub struct RunChange<'a> {
    pub run: &'a RunKey,
    pub from: RunState,
    pub to: RunState,
    /// The owner the run must still have (`""`: none); `None` checks no owner.
    pub owner: Option<&'a str>,
    pub effect: RunEffect<'a>,
}

impl RunChange<'_> {
    pub(super) fn event(&self) -> StoreEvent {
        StoreEvent::Run {
            dag_id: self.run.dag_id.clone(),
            run_id: self.run.run_id.clone(),
            state: self.to,
        }
    }
}

/// What a run's move writes besides its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEffect<'a> {
    /// queued -> running: held by `owner` from now.
    Claim { owner: &'a str },
    /// running -> running: a scheduler takes over the run of a dead owner.
    Adopt { owner: &'a str },
    /// Ended now.
    End,
    /// finished -> queued (clear): no owner, start or end until it runs again.
    Reopen,
    /// finished -> finished (mark): the state only.
    Restate,
}

/// Checks the edge and writes one run's move, and its backfill's counters if it has one, inside
/// the transaction `conn`; false when the run was no longer `from` under the expected owner.
pub(super) async fn apply_run_change(
    conn: &mut AnyConnection,
    change: &RunChange<'_>,
) -> Result<bool> {
    if !run_can_transition(change.from, change.to) {
        return Err(StoreError::IllegalTransition {
            what: format!("run {}.{}", change.run.dag_id, change.run.run_id),
            from: change.from.to_string(),
            to: change.to.to_string(),
        });
    }
    // $1 to, $2 dag, $3 run, $4 from, $5 the owner it must have ('*': any), then the
    // effect's own values.
    let now = to_micros(Utc::now());
    let (set, owner, stamp) = match change.effect {
        RunEffect::Claim { owner } => (", owner = $6, start_us = $7", Some(owner), Some(now)),
        RunEffect::Adopt { owner } => (", owner = $6", Some(owner), None),
        RunEffect::End => (", end_us = $6", None, Some(now)),
        RunEffect::Reopen => (
            ", owner = NULL, start_us = NULL, end_us = NULL, stop_requested_us = NULL",
            None,
            None,
        ),
        RunEffect::Restate => ("", None, None),
    };
    let sql = format!(
        "UPDATE dag_runs SET state = $1{set}
         WHERE dag_id = $2 AND run_id = $3 AND state = $4 AND ($5 = '*' OR COALESCE(owner, '') = $5)
         RETURNING backfill_id"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(change.to.as_str())
        .bind(change.run.dag_id.as_str())
        .bind(change.run.run_id.as_str())
        .bind(change.from.as_str())
        .bind(change.owner.unwrap_or("*"));
    if let Some(owner) = owner {
        query = query.bind(owner);
    }
    if let Some(stamp) = stamp {
        query = query.bind(stamp);
    }
    let Some(moved) = query.fetch_optional(&mut *conn).await? else {
        return Ok(false);
    };
    if let Some(backfill_id) = moved.try_get::<Option<i64>, _>("backfill_id")? {
        super::backfills::count_run_move(conn, backfill_id, change.from, change.to).await?;
    }
    Ok(true)
}

/// The conditions of a run filter.
fn run_conditions(filter: &RunFilter) -> Conditions {
    let mut conditions = Conditions::default();
    let dag_ids = filter.dag_id.iter().chain(&filter.dag_ids).cloned();
    conditions.any_of("dag_id", dag_ids);
    conditions.any_of("state", filter.states.iter().map(|s| s.as_str().to_owned()));
    conditions.any_of(
        "run_type",
        filter.run_type.iter().map(|t| t.as_str().to_owned()),
    );
    conditions.within("logical_date_us", filter.logical_date);
    conditions.within("start_us", filter.start_date);
    conditions.within("end_us", filter.end_date);
    conditions
}
