use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{
    GridCellRow, HeldConnection, Result, RunKey, RunState, Store, StoreError, StoreEvent,
    TaskInstanceRow, TaskKey, TaskSummaryRow, TiFilter, TiState,
    filter::Conditions,
    from_micros,
    runs::{RunChange, RunEffect, apply_run_change},
    to_micros,
    transitions::task_can_transition,
};

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        table: "task_instances",
        message,
    }
}

fn state_of(row: &AnyRow) -> Result<TiState> {
    row.try_get::<String, _>("state")?.parse().map_err(corrupt)
}

fn try_number_of(row: &AnyRow) -> Result<u32> {
    Ok(u32::try_from(row.try_get::<i64, _>("try_number")?).unwrap_or(0))
}

pub(super) fn ti_from_row(row: &AnyRow) -> Result<TaskInstanceRow> {
    let result: Option<String> = row.try_get("result")?;
    Ok(TaskInstanceRow {
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        state: state_of(row)?,
        try_number: try_number_of(row)?,
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
        queue: row.try_get("queue")?,
        claimed_by: row.try_get("claimed_by")?,
    })
}

impl Store {
    /// The task instances of a run, in no particular order.
    pub async fn task_instances(&self, dag_id: &str, run_id: &str) -> Result<Vec<TaskInstanceRow>> {
        let mut tis = Vec::new();
        self.for_each_task_instance(dag_id, run_id, |ti| tis.push(ti))
            .await?;
        Ok(tis)
    }

    /// A page of the task instances `filter` selects, each with its run's logical date (by
    /// logical date, DAG, run and task), and how many it selects in all.
    pub async fn find_task_instances(
        &self,
        filter: &TiFilter,
    ) -> Result<(Vec<(TaskInstanceRow, DateTime<Utc>)>, u64)> {
        let total = self.count_task_instances(filter).await?;
        // Filtered by run alone, the page is read run by run in its order, through the runs'
        // index by logical date, and the read stops at the page's end (SQLite's `CROSS JOIN`
        // keeps the runs outside; PostgreSQL plans it as any join): the first page of 150,000
        // took 168 ms sorted, 1 ms so. Filtered by a task instance's own columns (a state, say)
        // the planner picks, since run by run a rare state would read every run.
        let by_run = !filters_task_columns(filter);
        let conditions = ti_list_conditions(filter, if by_run { "r" } else { "ti" });
        let from = if by_run {
            format!(
                "FROM dag_runs r CROSS JOIN task_instances ti{}",
                conditions.clause_with(TI_OF_RUN)
            )
        } else {
            format!(
                "FROM task_instances ti JOIN dag_runs r ON {TI_OF_RUN}{}",
                conditions.clause()
            )
        };
        let page = format!(
            "SELECT ti.*, r.logical_date_us AS run_logical_date_us {from} \
             ORDER BY r.logical_date_us, r.dag_id, r.run_id, ti.task_id LIMIT {} OFFSET {}",
            filter.limit.max(0),
            filter.offset.max(0)
        );
        let rows = conditions
            .bind(sqlx::query(sqlx::AssertSqlSafe(page)))
            .fetch_all(&self.pool)
            .await?;
        let found = rows
            .iter()
            .map(|row| {
                let logical = from_micros(row.try_get("run_logical_date_us")?);
                Ok((ti_from_row(row)?, logical))
            })
            .collect::<Result<_>>()?;
        Ok((found, u64::try_from(total).unwrap_or(0)))
    }

    /// How many task instances `filter` selects: from the task instances alone unless it asks
    /// for the runs' dates (joining each to its run took 115 of 120 ms at 150,000 on SQLite,
    /// 290 of 335 ms on PostgreSQL).
    async fn count_task_instances(&self, filter: &TiFilter) -> Result<i64> {
        let conditions = ti_list_conditions(filter, "ti");
        let from = if filter.logical_date.is_open() {
            "FROM task_instances ti".to_owned()
        } else {
            format!("FROM task_instances ti JOIN dag_runs r ON {TI_OF_RUN}")
        };
        let sql = format!("SELECT COUNT(*) AS n {from}{}", conditions.clause());
        Ok(conditions
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Hands each task instance of a run to `each` as it arrives (nothing held at once).
    pub async fn for_each_task_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        each: impl FnMut(TaskInstanceRow),
    ) -> Result<()> {
        let query = sqlx::query("SELECT * FROM task_instances WHERE dag_id = $1 AND run_id = $2")
            .bind(dag_id)
            .bind(run_id);
        self.each_task_instance_row(query, each).await
    }

    /// What a run's page says of each of its task instances (its state and times), four
    /// columns of each: every column of a 20,000-task run took ~80 ms to read.
    pub async fn task_summaries(&self, dag_id: &str, run_id: &str) -> Result<Vec<TaskSummaryRow>> {
        use futures::TryStreamExt as _;
        let mut rows = sqlx::query(
            "SELECT task_id, state, start_us, end_us FROM task_instances
             WHERE dag_id = $1 AND run_id = $2",
        )
        .bind(dag_id)
        .bind(run_id)
        .fetch(&self.pool);
        let mut summaries = Vec::new();
        while let Some(row) = rows.try_next().await? {
            summaries.push(TaskSummaryRow {
                task_id: row.try_get("task_id")?,
                state: state_of(&row)?,
                start: row.try_get::<Option<i64>, _>("start_us")?.map(from_micros),
                end: row.try_get::<Option<i64>, _>("end_us")?.map(from_micros),
            });
        }
        Ok(summaries)
    }

    /// The task instances `task_ids` of a run (a page of a run's page), in no particular order.
    pub async fn task_instances_named(
        &self,
        dag_id: &str,
        run_id: &str,
        task_ids: &[&str],
    ) -> Result<Vec<TaskInstanceRow>> {
        let mut tis = Vec::with_capacity(task_ids.len());
        for part in task_ids.chunks(500) {
            let sql = format!(
                "SELECT * FROM task_instances WHERE dag_id = $1 AND run_id = $2 AND task_id IN ({})",
                super::bulk::placeholders(3, part.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(dag_id)
                .bind(run_id);
            for task_id in part {
                query = query.bind(*task_id);
            }
            self.each_task_instance_row(query, |ti| tis.push(ti))
                .await?;
        }
        Ok(tis)
    }

    /// The task instances a query selects, each converted as it arrives: a run of 20,000
    /// held as 20,000 raw rows and then as many task instances took 27 MB more at once.
    pub(super) async fn task_instance_rows(
        &self,
        query: super::bulk::AnyQuery<'_>,
    ) -> Result<Vec<TaskInstanceRow>> {
        let mut tis = Vec::new();
        self.each_task_instance_row(query, |ti| tis.push(ti))
            .await?;
        Ok(tis)
    }

    async fn each_task_instance_row(
        &self,
        query: super::bulk::AnyQuery<'_>,
        mut each: impl FnMut(TaskInstanceRow),
    ) -> Result<()> {
        use futures::TryStreamExt as _;
        let mut rows = query.fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(ti_from_row(&row)?);
        }
        Ok(())
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

    /// The result summaries of the named task instances of a run that have one (a try's
    /// upstreams: read by their keys, not with the whole run).
    pub async fn task_results(
        &self,
        dag_id: &str,
        run_id: &str,
        task_ids: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut results = serde_json::Map::new();
        for part in task_ids.chunks(500) {
            let sql = format!(
                "SELECT task_id, result FROM task_instances
                 WHERE dag_id = $1 AND run_id = $2 AND result IS NOT NULL AND task_id IN ({})",
                super::bulk::placeholders(3, part.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(dag_id)
                .bind(run_id);
            for task_id in part {
                query = query.bind(task_id.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                let task_id: String = row.try_get("task_id")?;
                let text: String = row.try_get("result")?;
                let result = serde_json::from_str(&text)
                    .map_err(|e| corrupt(format!("result of {task_id}: {e}")))?;
                results.insert(task_id, result);
            }
        }
        Ok(results)
    }

    /// Every running task instance, across runs (the partial index of running rows).
    pub async fn running_task_instances(&self) -> Result<Vec<TaskInstanceRow>> {
        self.task_instance_rows(sqlx::query(
            "SELECT * FROM task_instances WHERE state = 'running'",
        ))
        .await
    }

    /// Moves one task instance (see [`Store::transition_task_instances`]).
    pub async fn transition_task_instance(&self, change: &TiChange<'_>) -> Result<()> {
        self.transition_task_instances(std::slice::from_ref(change))
            .await
    }

    fn publish_task(&self, ti: &TaskInstanceRow) {
        self.events.publish(task_event(ti));
    }

    /// (dag_id, state, count) of every DAG's task instances.
    pub async fn task_instance_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT dag_id, state, COUNT(*) FROM task_instances GROUP BY dag_id, state ORDER BY dag_id, state",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many of a run's task instances are in each state (the states with none left out).
    pub async fn run_task_instance_counts(
        &self,
        dag_id: &str,
        run_id: &str,
    ) -> Result<Vec<(TiState, i64)>> {
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM task_instances WHERE dag_id = $1 AND run_id = $2 \
             GROUP BY state ORDER BY state",
        )
        .bind(dag_id)
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        counts
            .into_iter()
            .map(|(state, n)| Ok((state.parse().map_err(corrupt)?, n)))
            .collect()
    }

    /// The grid cells of the tasks `task_ids` in the runs `run_ids` of a DAG: four columns of
    /// the page's tasks alone (all 20,000 task instances of each of 10 runs, every column,
    /// took 0.75 s to read for a page that shows 200 tasks).
    pub async fn grid_cells(
        &self,
        dag_id: &str,
        run_ids: &[String],
        task_ids: &[&str],
    ) -> Result<Vec<GridCellRow>> {
        if run_ids.is_empty() || task_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT run_id, task_id, state, try_number FROM task_instances
             WHERE dag_id = $1 AND run_id IN ({}) AND task_id IN ({})",
            super::bulk::placeholders(2, run_ids.len()),
            super::bulk::placeholders(2 + run_ids.len(), task_ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(dag_id);
        for run_id in run_ids {
            query = query.bind(run_id.as_str());
        }
        for task_id in task_ids {
            query = query.bind(*task_id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(GridCellRow {
                    run_id: row.try_get("run_id")?,
                    task_id: row.try_get("task_id")?,
                    state: state_of(row)?,
                    try_number: try_number_of(row)?,
                })
            })
            .collect()
    }

    /// Clears task instances of a finished run so they run again: each goes back to
    /// `scheduled` with `tries` more tries, and the run back to `queued` for the scheduler.
    /// False (nothing changed) when the run is not finished.
    pub async fn clear_task_instances(
        &self,
        run: &RunKey,
        tasks: &[(String, u32)],
    ) -> Result<bool> {
        let Some(existing) = self.get_run(&run.dag_id, &run.run_id).await? else {
            return Ok(false);
        };
        if !existing.state.is_finished() {
            return Ok(false);
        }
        let mut current: HashMap<String, TaskInstanceRow> = self
            .task_instances(&run.dag_id, &run.run_id)
            .await?
            .into_iter()
            .map(|ti| (ti.task_id.clone(), ti))
            .collect();
        let cleared: Vec<(TaskInstanceRow, TiState)> = tasks
            .iter()
            .filter_map(|(task_id, tries)| {
                let mut row = current.remove(task_id)?;
                let from = row.state;
                row.state = TiState::Scheduled;
                row.max_tries = row.try_number.saturating_add(*tries);
                row.end = None;
                row.duration_ms = None;
                row.next_retry_at = None;
                row.error = None;
                (from != TiState::Scheduled).then_some((row, from))
            })
            .collect();
        let changes: Vec<TiChange<'_>> = cleared
            .iter()
            .map(|(row, from)| TiChange {
                row,
                from: *from,
                via: None,
                fence: Fence::Command,
            })
            .collect();
        let reopen = RunChange {
            run,
            from: existing.state,
            to: RunState::Queued,
            owner: None,
            effect: RunEffect::Reopen,
        };
        self.command(&reopen, &changes).await
    }

    /// Marks a task instance of a finished run `state` (success or failed) and sets the run's
    /// state to what its task instances now say. False when the run is not finished or the task
    /// instance does not exist.
    pub async fn mark_task_instance(&self, task: &TaskKey, state: TiState) -> Result<bool> {
        let Some(existing) = self.get_run(&task.dag_id, &task.run_id).await? else {
            return Ok(false);
        };
        if !existing.state.is_finished() {
            return Ok(false);
        }
        let mut tis = self.task_instances(&task.dag_id, &task.run_id).await?;
        let Some(ti) = tis.iter_mut().find(|ti| ti.task_id == task.task_id) else {
            return Ok(false);
        };
        let from = ti.state;
        ti.state = state;
        ti.end = ti.end.or(Some(Utc::now()));
        let marked = ti.clone();
        let all_passed = tis
            .iter()
            .all(|ti| matches!(ti.state, TiState::Success | TiState::Skipped));
        let run_state = if all_passed {
            RunState::Success
        } else {
            RunState::Failed
        };
        let change = TiChange {
            row: &marked,
            from,
            via: None,
            fence: Fence::Command,
        };
        let changes = if from == state {
            &[][..]
        } else {
            std::slice::from_ref(&change)
        };
        let restate = RunChange {
            run: &RunKey {
                dag_id: task.dag_id.clone(),
                run_id: task.run_id.clone(),
            },
            from: existing.state,
            to: run_state,
            owner: None,
            effect: RunEffect::Restate,
        };
        self.command(&restate, changes).await
    }

    /// A user's command on a finished run: the run's move and its task instances' moves in one
    /// transaction; false (nothing written) when the run moved first. A run that keeps its
    /// state is not written.
    async fn command(&self, run: &RunChange<'_>, changes: &[TiChange<'_>]) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        if run.from != run.to && !apply_run_change(&mut tx, run).await? {
            return Ok(false);
        }
        for change in changes {
            apply_ti_change(&mut tx, change).await?;
        }
        self.notify_in(&mut tx, || {
            let run_event = (run.from != run.to).then(|| run.event());
            let events = changes.iter().map(|c| task_event(c.row));
            run_event.into_iter().chain(events).collect()
        })
        .await?;
        tx.commit().await?;
        if run.from != run.to {
            self.after_run_change(run);
        }
        for change in changes {
            self.after_ti_change(change.row, change.from, change.via);
        }
        Ok(true)
    }

    /// Moves several task instances in one transaction (group commit): each must still be in
    /// its `from` state under its fence, else none is written ([`StoreError::Lost`]). Durable
    /// when this returns; each move is logged and published after the commit.
    pub async fn transition_task_instances(&self, changes: &[TiChange<'_>]) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        self.transition_task_instances_on(&mut conn, changes).await
    }

    /// [`Store::transition_task_instances`] on the connection `held` keeps for its owner
    /// (the state writer), taken from the pool when it holds none.
    pub async fn transition_task_instances_held(
        &self,
        held: &mut HeldConnection,
        changes: &[TiChange<'_>],
    ) -> Result<()> {
        let conn = match &mut held.0 {
            Some(conn) => conn,
            empty => empty.insert(self.pool.acquire().await?),
        };
        let outcome = self.transition_task_instances_on(conn, changes).await;
        if let Err(StoreError::Sql(_)) = outcome {
            // The connection may be broken: the next call takes one from the pool.
            held.0 = None;
        }
        outcome
    }

    async fn transition_task_instances_on(
        &self,
        conn: &mut AnyConnection,
        changes: &[TiChange<'_>],
    ) -> Result<()> {
        if !self.is_shared() && changes.len() <= MOVES_PER_STATEMENT_SQLITE {
            // SQLite (a store nobody shares), moves that fit one statement: it commits on its
            // own, all or nothing, and nobody else needs telling. BEGIN and COMMIT were two
            // more round trips to the connection's thread, each waking a core that may sleep.
            // Its count re-reads every move's row (at 32 moves a 2,000-task run took 5.7% more
            // instructions than at 4), but with this at 4 a 20,000-task wide run's group
            // commits (~26 moves) went through all three, and the run took 1,738 ms (median of
            // 11) against 1,351 ms at 32.
            match changes {
                [change] => apply_ti_change(conn, change).await?,
                _ => apply_ti_changes_all_or_none(conn, changes).await?,
            }
            for change in changes {
                self.after_ti_change(change.row, change.from, change.via);
            }
            return Ok(());
        }
        let mut tx = sqlx::Connection::begin(conn).await?;
        if let [change] = changes {
            apply_ti_change(&mut tx, change).await?;
        } else {
            apply_ti_changes(&mut tx, changes).await?;
        }
        self.notify_in(&mut tx, || {
            changes.iter().map(|c| task_event(c.row)).collect()
        })
        .await?;
        tx.commit().await?;
        for change in changes {
            self.after_ti_change(change.row, change.from, change.via);
        }
        Ok(())
    }

    pub(super) fn after_ti_change(
        &self,
        ti: &TaskInstanceRow,
        from: TiState,
        via: Option<TiState>,
    ) {
        tracing::info!(
            dag_id = %ti.dag_id,
            run_id = %ti.run_id,
            task_id = %ti.task_id,
            try_number = ti.try_number,
            from = %from,
            via = via.map(tracing::field::display),
            to = %ti.state,
            duration_ms = ti.duration_ms,
            "Task state changed"
        );
        self.publish_task(ti);
    }
}

/// A task instance joined to its run.
const TI_OF_RUN: &str = "ti.dag_id = r.dag_id AND ti.run_id = r.run_id";

/// The conditions of a task instance list, its DAGs and runs named on the table `run`'s
/// columns (`r` when the runs are read first, `ti` otherwise).
fn ti_list_conditions(filter: &TiFilter, run: &str) -> Conditions {
    let mut conditions = Conditions::default();
    conditions.any_of(&format!("{run}.dag_id"), filter.dag_ids.iter().cloned());
    conditions.any_of(&format!("{run}.run_id"), filter.run_ids.iter().cloned());
    conditions.any_of("ti.task_id", filter.task_ids.iter().cloned());
    conditions.any_of(
        "ti.state",
        filter.states.iter().map(|s| s.as_str().to_owned()),
    );
    conditions.any_of("ti.queue", filter.queues.iter().cloned());
    conditions.any_of("ti.pool", filter.pools.iter().cloned());
    conditions.within("r.logical_date_us", filter.logical_date);
    conditions.within("ti.start_us", filter.start_date);
    conditions.within("ti.end_us", filter.end_date);
    conditions.between("ti.duration_ms", filter.duration_ms.0, filter.duration_ms.1);
    conditions
}

/// Whether `filter` selects by a task instance's own columns, not only by its run.
fn filters_task_columns(filter: &TiFilter) -> bool {
    !(filter.task_ids.is_empty()
        && filter.states.is_empty()
        && filter.queues.is_empty()
        && filter.pools.is_empty()
        && filter.start_date.is_open()
        && filter.end_date.is_open()
        && filter.duration_ms == (None, None))
}

pub(super) fn task_event(ti: &TaskInstanceRow) -> StoreEvent {
    StoreEvent::Task {
        dag_id: ti.dag_id.clone(),
        run_id: ti.run_id.clone(),
        task_id: ti.task_id.clone(),
        state: ti.state,
        try_number: ti.try_number,
    }
}

/// A task instance's move to `row.state` with its new fields, written only if it is still in
/// state `from` and its fence still holds: a process that lost the run or the try to another
/// cannot overwrite it.
#[derive(Debug, Clone, Copy)]
pub struct TiChange<'a> {
    pub row: &'a TaskInstanceRow,
    pub from: TiState,
    /// A state passed through on the way, in the same write (a task its driver queues and
    /// starts at once goes scheduled -> queued -> running): both edges are checked.
    pub via: Option<TiState>,
    pub fence: Fence<'a>,
}

/// Who may still write a task instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence<'a> {
    /// The driver of the run: the run must still be held by this owner.
    RunOwner(&'a str),
    /// The claimant of the try: the instance must still be claimed by this owner for this try
    /// (`row.try_number`).
    Claim(&'a str),
    /// A user's command, in the transaction that moved the finished run itself.
    Command,
}

macro_rules! update_ti {
    ($fence:literal) => {
        concat!(
            "UPDATE task_instances SET state = $1, try_number = $2, max_tries = $3, start_us = $4, end_us = $5, duration_ms = $6,
                hostname = $7, pid = $8, next_retry_us = $9, result = $10, error = $11, claimed_by = $12
             WHERE dag_id = $13 AND run_id = $14 AND task_id = $15 AND state = $16 ",
            $fence
        )
    };
}

const UPDATE_BY_RUN_OWNER: &str = update_ti!(
    "AND EXISTS (SELECT 1 FROM dag_runs r WHERE r.dag_id = $13 AND r.run_id = $14 AND r.owner = $17)"
);
const UPDATE_BY_CLAIM: &str = update_ti!("AND COALESCE(claimed_by, '') = $17 AND try_number = $2");
const UPDATE_BY_COMMAND: &str = update_ti!("AND $17 = ''");

/// The most moves one UPDATE statement writes (17 parameters each).
const MOVES_PER_STATEMENT: usize = 256;
/// On SQLite, where a statement is no round trip but its preparing grows with its text:
/// 32 moves a statement took the preparing of a 500-task run from 58 to 22 million
/// instructions (against 256), and running them costs the same per move. 64, not 32, since
/// a batch that fits one statement needs no transaction (`transition_task_instances_on`): 1,000 wide
/// at `max_active_tasks` 1,000 ran in 74 ms against 81, 5,000 at 64 in 281 ms against 333.
const MOVES_PER_STATEMENT_SQLITE: usize = 64;

/// Checks every edge and writes the moves inside `conn`'s transaction with one UPDATE per
/// [`MOVES_PER_STATEMENT`], each move guarded as [`apply_ti_change`] guards it; one move that
/// no longer holds fails them all with [`StoreError::Lost`] (the caller may retry them one
/// by one for each one's answer). One statement instead of one per row: on PostgreSQL each
/// statement is a round trip, and a group commit of hundreds of moves was hundreds of them.
async fn apply_ti_changes(conn: &mut AnyConnection, changes: &[TiChange<'_>]) -> Result<()> {
    for change in changes {
        check_edge(change)?;
    }
    let dialect = super::bulk::Dialect::of(conn);
    let per_statement = match dialect {
        super::bulk::Dialect::Sqlite => MOVES_PER_STATEMENT_SQLITE,
        super::bulk::Dialect::Postgres => MOVES_PER_STATEMENT,
    };
    for chunk in changes.chunks(per_statement) {
        let written = bound_moves(&BULK_UPDATE, dialect, chunk)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if written != chunk.len() as u64 {
            return Err(StoreError::Lost {
                what: format!(
                    "{} of {} task instances",
                    chunk.len() as u64 - written,
                    chunk.len()
                ),
                expected: "in the state and under the fence their moves expected".into(),
            });
        }
    }
    Ok(())
}

/// Checks every edge and writes the moves with [`BULK_UPDATE_ALL_OR_NONE`]: all of them, or
/// none and [`StoreError::Lost`] when one no longer holds. SQLite only, at most
/// [`MOVES_PER_STATEMENT_SQLITE`] moves.
async fn apply_ti_changes_all_or_none(
    conn: &mut AnyConnection,
    changes: &[TiChange<'_>],
) -> Result<()> {
    for change in changes {
        check_edge(change)?;
    }
    let dialect = super::bulk::Dialect::Sqlite;
    let written = bound_moves(&BULK_UPDATE_ALL_OR_NONE, dialect, changes)
        .bind(changes.len() as i64)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if written == changes.len() as u64 {
        return Ok(());
    }
    Err(StoreError::Lost {
        what: format!("one or more of {} task instances", changes.len()),
        expected: "in the state and under the fence their moves expected (none was written)".into(),
    })
}

/// `statement` for `moves` with every move bound, padded to a power of two with rows that
/// match nothing (see `BulkStatement`).
fn bound_moves<'q>(
    statement: &'static super::bulk::BulkStatement,
    dialect: super::bulk::Dialect,
    moves: &'q [TiChange<'q>],
) -> super::bulk::AnyQuery<'q> {
    let rows = moves.len().next_power_of_two();
    let mut query = sqlx::query(statement.text(dialect, rows));
    for change in moves {
        let (kind, fence) = fence_values(change.fence);
        query = bind_move(query, change.row, change.from.as_str(), kind, fence);
    }
    for _ in moves.len()..rows {
        query = bind_move(query, &PADDING, "", "command", "padding");
    }
    query
}

/// A row that no task instance matches (empty ids), to pad a bulk statement.
static PADDING: std::sync::LazyLock<TaskInstanceRow> = std::sync::LazyLock::new(|| {
    TaskInstanceRow::scheduled(
        String::new(),
        String::new(),
        String::new(),
        0,
        String::new(),
    )
});

/// The fence's kind and value as the bulk statement compares them.
fn fence_values<'a>(fence: Fence<'a>) -> (&'static str, &'a str) {
    match fence {
        Fence::RunOwner(owner) => ("owner", owner),
        Fence::Claim(owner) => ("claim", owner),
        Fence::Command => ("command", ""),
    }
}

/// What a bulk move writes, from the move's row `v`.
const MOVE_SET: &str = "state = v.column1, try_number = v.column2, max_tries = v.column3,
    start_us = v.column4, end_us = v.column5, duration_ms = v.column6, hostname = v.column7,
    pid = v.column8, next_retry_us = v.column9, result = v.column10, error = v.column11,
    claimed_by = v.column12";

/// The guard of a bulk move `v` on the task instance `t`: its ids, the state it expects and
/// its fence (as [`apply_ti_change`] guards one move).
fn move_guard(t: &str, v: &str) -> String {
    format!(
        "{t}.dag_id = {v}.column13 AND {t}.run_id = {v}.column14
           AND {t}.task_id = {v}.column15 AND {t}.state = {v}.column16
           AND CASE {v}.column17
             WHEN 'owner' THEN EXISTS (SELECT 1 FROM dag_runs r
               WHERE r.dag_id = {v}.column13 AND r.run_id = {v}.column14 AND r.owner = {v}.column18)
             WHEN 'claim' THEN COALESCE({t}.claimed_by, '') = {v}.column18
               AND {t}.try_number = {v}.column2
             ELSE {v}.column18 = '' END"
    )
}

/// The types of a bulk move's 18 values, in the order [`bind_move`] binds them.
const MOVE_TYPES: &[&str] = {
    use super::bulk::{BIGINT, TEXT};
    &[
        TEXT, BIGINT, BIGINT, BIGINT, BIGINT, BIGINT, TEXT, BIGINT, BIGINT, TEXT, TEXT, TEXT, TEXT,
        TEXT, TEXT, TEXT, TEXT, TEXT,
    ]
};

/// `UPDATE ... FROM (VALUES ...)` moving task instances; portable between SQLite and
/// PostgreSQL (both name the VALUES columns column1, column2, ...).
static BULK_UPDATE: super::bulk::BulkStatement =
    super::bulk::BulkStatement::new(MOVE_TYPES, |values| {
        format!(
            "UPDATE task_instances SET {MOVE_SET} FROM (VALUES {values}) AS v WHERE {}",
            move_guard("task_instances", "v")
        )
    });

/// SQLite only: the same moves written all or none by one statement, outside a transaction.
/// They are written only when every move's guard holds (the count, taken once before any row
/// changes, is bound last), so a hand-off's two moves need no BEGIN and COMMIT: one round
/// trip to the connection's thread instead of three.
static BULK_UPDATE_ALL_OR_NONE: super::bulk::BulkStatement =
    super::bulk::BulkStatement::new(MOVE_TYPES, |values| {
        format!(
            "WITH v AS (VALUES {values})
             UPDATE task_instances SET {MOVE_SET} FROM v WHERE {}
               AND (SELECT count(*) FROM v AS w JOIN task_instances AS t ON {}) = ?",
            move_guard("task_instances", "v"),
            move_guard("t", "w")
        )
    });

/// Binds one move's 18 values in the order [`BULK_UPDATE`] reads them.
fn bind_move<'q>(
    query: super::bulk::AnyQuery<'q>,
    ti: &'q TaskInstanceRow,
    from: &'q str,
    fence_kind: &'q str,
    fence: &'q str,
) -> super::bulk::AnyQuery<'q> {
    bind_fields(query, ti)
        .bind(ti.dag_id.as_str())
        .bind(ti.run_id.as_str())
        .bind(ti.task_id.as_str())
        .bind(from)
        .bind(fence_kind)
        .bind(fence)
}

/// Binds the 12 fields a move writes, in the order both update statements read them.
fn bind_fields<'q>(
    query: super::bulk::AnyQuery<'q>,
    ti: &'q TaskInstanceRow,
) -> super::bulk::AnyQuery<'q> {
    query
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
        .bind(ti.claimed_by.clone())
}

/// The state machine's verdict on one move.
fn check_edge(change: &TiChange<'_>) -> Result<()> {
    let ti = change.row;
    let first = (change.from, change.via.unwrap_or(ti.state));
    let then = change.via.map(|via| (via, ti.state));
    match std::iter::once(first)
        .chain(then)
        .find(|(from, to)| !task_can_transition(*from, *to))
    {
        None => Ok(()),
        Some((from, to)) => Err(StoreError::IllegalTransition {
            what: format!("task instance {}.{}.{}", ti.dag_id, ti.run_id, ti.task_id),
            from: from.to_string(),
            to: to.to_string(),
        }),
    }
}

/// Checks the edge and writes one move inside `conn`'s transaction.
async fn apply_ti_change(conn: &mut AnyConnection, change: &TiChange<'_>) -> Result<()> {
    check_edge(change)?;
    let ti = change.row;
    let what = || format!("task instance {}.{}.{}", ti.dag_id, ti.run_id, ti.task_id);
    let (sql, fence) = match change.fence {
        Fence::RunOwner(owner) => (UPDATE_BY_RUN_OWNER, owner),
        Fence::Claim(owner) => (UPDATE_BY_CLAIM, owner),
        Fence::Command => (UPDATE_BY_COMMAND, ""),
    };
    let result = bind_fields(sqlx::query(sql), ti)
        .bind(ti.dag_id.as_str())
        .bind(ti.run_id.as_str())
        .bind(ti.task_id.as_str())
        .bind(change.from.as_str())
        .bind(fence)
        .execute(&mut *conn)
        .await?;
    if result.rows_affected() == 1 {
        return Ok(());
    }
    let expected = match change.fence {
        Fence::RunOwner(owner) => format!("{} in a run held by {owner}", change.from),
        Fence::Claim(owner) => format!(
            "{} in try {} claimed by {owner}",
            change.from, ti.try_number
        ),
        Fence::Command => change.from.to_string(),
    };
    Err(StoreError::Lost {
        what: what(),
        expected,
    })
}
