//! Store rows and DAG models as the UI's view types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ui::views::{
    DagDetail, DagSummary, EventLogView, GridCell, GridRow, ImportErrorView, ParamView,
    ProblemView, RunBrief, RunView, TaskInstanceView, TaskNode,
};

use crate::{
    commands::json_type,
    dag::{Dag, DagFileError, Schedule, TaskSpec, next_fire},
    store::{AuditRow, DagRunRow, GridCellRow, TaskInstanceRow, TaskSummaryRow, TiState},
};

/// An audit log entry as Airflow's `EventLog`: where it came from goes into `extra` with the
/// entry's details (the spec has no field for it).
pub fn event_log_view(row: AuditRow) -> EventLogView {
    let entry = row.entry;
    let mut extra = match entry.detail {
        serde_json::Value::Object(fields) => fields,
        other => serde_json::Map::from_iter([("detail".to_owned(), other)]),
    };
    if let Some(source) = entry.source {
        extra.insert("source".into(), source.into());
    }
    EventLogView {
        event_log_id: row.id,
        when: row.at,
        dag_id: entry.dag_id,
        task_id: entry.task_id,
        run_id: entry.run_id,
        map_index: None,
        try_number: entry.try_number,
        event: entry.event,
        execution_date: None,
        owner: Some(entry.owner),
        extra: Some(serde_json::Value::Object(extra).to_string()),
    }
}

pub fn run_brief(run: &DagRunRow) -> RunBrief {
    RunBrief {
        run_id: run.run_id.clone(),
        state: run.state.to_string(),
        run_type: run.run_type.to_string(),
        logical_date: run.logical_date,
        dag_version_number: run.dag_version_number,
    }
}

pub fn run_view(run: DagRunRow) -> RunView {
    RunView {
        dag_id: run.dag_id,
        run_id: run.run_id,
        state: run.state.to_string(),
        run_type: run.run_type.to_string(),
        logical_date: run.logical_date,
        queued_at: run.queued_at,
        start_date: run.start,
        end_date: run.end,
        conf: run.conf,
        dag_version_number: run.dag_version_number,
    }
}

pub fn task_instance_view(
    ti: TaskInstanceRow,
    dag: Option<&Dag>,
    logical_date: DateTime<Utc>,
) -> TaskInstanceView {
    let spec = dag.and_then(|d| d.task(&ti.task_id));
    let operator = spec.map(|t| t.operator.to_string()).unwrap_or_default();
    TaskInstanceView {
        operator,
        pool: spec.map_or_else(|| crate::store::DEFAULT_POOL.to_owned(), |t| t.pool.clone()),
        pool_slots: spec.map_or(1, |t| t.pool_slots),
        priority_weight: spec.map_or(1, |t| t.priority_weight),
        waiting_for: None,
        dag_id: ti.dag_id,
        run_id: ti.run_id,
        logical_date,
        pid: ti.pid,
        queue: ti.queue,
        task_id: ti.task_id,
        state: ti.state.to_string(),
        try_number: ti.try_number,
        max_tries: ti.max_tries,
        start_date: ti.start,
        end_date: ti.end,
        duration_ms: ti.duration_ms,
        hostname: ti.hostname,
        error: ti.error,
        result: ti.result,
    }
}

/// Task instances in the DAG's task order (instances of tasks no longer in the file last).
pub fn ordered_task_instances(
    mut tis: Vec<TaskInstanceRow>,
    dag: Option<&Dag>,
    logical_date: DateTime<Utc>,
) -> Vec<TaskInstanceView> {
    tis.sort_by_cached_key(|ti| dag_order(dag, &ti.task_id));
    tis.into_iter()
        .map(|ti| task_instance_view(ti, dag, logical_date))
        .collect()
}

/// When the DAG runs next on its own, if it does.
fn next_run(dag: &Dag) -> Option<chrono::DateTime<Utc>> {
    let Schedule::Cron { cron, .. } = &dag.schedule else {
        return None;
    };
    let now = Utc::now();
    let after = dag.start_date.map_or(now, |start| start.max(now));
    next_fire(cron, dag.timezone, after).filter(|next| dag.end_date.is_none_or(|end| *next <= end))
}

/// `recent` newest first, as the store returns them.
pub fn dag_summary(dag: &Dag, is_paused: bool, recent: &[DagRunRow]) -> DagSummary {
    DagSummary {
        dag_id: dag.id.clone(),
        description: dag.description.clone(),
        tags: dag.tags.clone(),
        schedule: dag.schedule.as_text(),
        is_paused,
        next_run: next_run(dag),
        recent_runs: recent.iter().rev().map(run_brief).collect(),
        tasks: dag.tasks.len(),
        file: dag.file.display().to_string(),
    }
}

pub fn dag_detail(dag: &Dag, summary: DagSummary, source: String) -> DagDetail {
    DagDetail {
        summary,
        timezone: dag.timezone.name().to_owned(),
        start_date: dag.start_date,
        end_date: dag.end_date,
        catchup: dag.catchup,
        max_active_runs: dag.max_active_runs,
        params: dag
            .params
            .iter()
            .map(|(name, default)| ParamView {
                name: name.clone(),
                kind: json_type(default).to_owned(),
                default: default.clone(),
            })
            .collect(),
        allow_extra_conf: dag.allow_extra_conf,
        tasks: dag
            .tasks
            .iter()
            .map(|t| TaskNode {
                task_id: t.id.clone(),
                operator: t.operator.to_string(),
                upstream: t.upstream.clone(),
                trigger_rule: serde_json::to_value(t.trigger_rule)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                retries: t.retry.retries,
            })
            .collect(),
        source,
    }
}

/// The grid's rows of `tasks` (a page of the DAG's), one cell per run of `runs` (oldest
/// first).
pub fn grid_rows(tasks: &[TaskSpec], runs: &[DagRunRow], cells: &[GridCellRow]) -> Vec<GridRow> {
    let by_cell: HashMap<(&str, &str), &GridCellRow> = cells
        .iter()
        .map(|cell| ((cell.run_id.as_str(), cell.task_id.as_str()), cell))
        .collect();
    tasks
        .iter()
        .map(|task| GridRow {
            task_id: task.id.clone(),
            cells: runs
                .iter()
                .map(|run| {
                    let cell = by_cell.get(&(run.run_id.as_str(), task.id.as_str()));
                    GridCell {
                        state: cell.map(|cell| cell.state.to_string()),
                        try_number: cell.map_or(0, |cell| cell.try_number),
                    }
                })
                .collect(),
        })
        .collect()
}

pub fn import_error_view(error: &DagFileError) -> ImportErrorView {
    let modified = std::fs::metadata(&error.file)
        .and_then(|m| m.modified())
        .map_or_else(|_| Utc::now(), DateTime::<Utc>::from);
    ImportErrorView {
        file: error.file.display().to_string(),
        modified,
        problems: error
            .problems
            .iter()
            .map(|p| ProblemView {
                line: p.line,
                column: p.column,
                field: p.field.clone(),
                message: p.message.clone(),
            })
            .collect(),
    }
}

/// The Workers page's view: each worker with the tries it runs now.
pub fn workers_view(
    workers: Vec<crate::store::WorkerRow>,
    running: Vec<TaskInstanceRow>,
    scheduler: Option<String>,
    this_serve: Option<String>,
    shared: bool,
) -> ui::views::WorkersView {
    let workers = workers
        .into_iter()
        .map(|w| ui::views::WorkerView {
            tries: running
                .iter()
                .filter(|ti| ti.claimed_by.as_deref() == Some(w.worker_id.as_str()))
                .map(|ti| ui::views::WorkerTry {
                    dag_id: ti.dag_id.clone(),
                    run_id: ti.run_id.clone(),
                    task_id: ti.task_id.clone(),
                    try_number: ti.try_number,
                })
                .collect(),
            name: w.name,
            state: w.state.to_string(),
            queues: w.queues,
            slots: w.slots,
            running: w.running,
            started: w.started,
            last_heartbeat: w.heartbeat,
            hostname: w.hostname,
            worker_id: w.worker_id,
        })
        .collect();
    ui::views::WorkersView {
        workers,
        scheduler,
        this_serve,
        shared,
    }
}

/// A unified diff (3 lines of context) from a run's version of a DAG file to the file now.
pub fn source_diff(then: &str, now: &str) -> String {
    similar::TextDiff::from_lines(then, now)
        .unified_diff()
        .context_radius(3)
        .header("the run's version", "the file now")
        .to_string()
}

/// A pool in Airflow's shape (no scheduled or deferred slots in Updraft).
pub fn pool_view(pool: crate::store::PoolRow) -> ui::views::PoolView {
    ui::views::PoolView {
        occupied_slots: pool.running_slots,
        open_slots: (pool.slots - pool.running_slots).max(0),
        name: pool.name,
        slots: pool.slots,
        running_slots: pool.running_slots,
        queued_slots: pool.queued_slots,
        scheduled_slots: 0,
        deferred_slots: 0,
        description: pool.description,
        include_deferred: false,
    }
}

/// Says why each instance of a run that may start has not: a queued one, or a scheduled
/// one whose upstreams let it run (its driver leaves it `scheduled` until its slots are
/// taken, as Airflow does). Its pool is full or missing, or the run has as many tries
/// running as its DAG's `max_active_tasks`.
pub fn explain_waits(
    tis: &mut [TaskInstanceView],
    states: &HashMap<&str, TiState>,
    dag: Option<&Dag>,
    pools: &[crate::store::PoolRow],
) {
    let waits: Vec<bool> = tis
        .iter()
        .map(|ti| match states.get(ti.task_id.as_str()) {
            Some(TiState::Queued) => true,
            Some(TiState::Scheduled) => dag.is_some_and(|dag| may_start(dag, &ti.task_id, states)),
            _ => false,
        })
        .collect();
    let running = states.values().filter(|s| **s == TiState::Running).count();
    let max_active_tasks = dag.map(|dag| dag.max_active_tasks);
    for (ti, _) in tis.iter_mut().zip(waits).filter(|(_, waits)| *waits) {
        ti.waiting_for = pool_wait(ti, pools).or_else(|| {
            let most = max_active_tasks.filter(|most| running >= *most as usize)?;
            Some(format!(
                "waiting for a slot: {running} running, max_active_tasks is {most}"
            ))
        });
    }
}

/// A run's task summaries in the DAG's task order (instances of tasks no longer in the file
/// last).
pub fn order_summaries(summaries: &mut [TaskSummaryRow], dag: Option<&Dag>) {
    summaries.sort_by_cached_key(|s| dag_order(dag, &s.task_id));
}

/// Where a task instance sorts: at its task's place in the DAG (an instance of a split
/// stream, `stats~1`, where its task is), then by id.
fn dag_order(dag: Option<&Dag>, task_id: &str) -> (usize, String) {
    let position = dag.and_then(|d| d.position(task_id));
    (position.unwrap_or(usize::MAX), task_id.to_owned())
}

/// How many of `states` are in each state, in order of first appearance.
pub fn count_states(states: impl Iterator<Item = TiState>) -> Vec<(String, usize)> {
    let mut counts: Vec<(TiState, usize)> = Vec::new();
    for state in states {
        match counts.iter_mut().find(|(seen, _)| *seen == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    counts
        .into_iter()
        .map(|(state, n)| (state.to_string(), n))
        .collect()
}

/// Whether the trigger rule of `task_id` lets it run on its upstreams' states.
fn may_start(dag: &Dag, task_id: &str, states: &HashMap<&str, TiState>) -> bool {
    dag.task(task_id).is_some_and(|spec| {
        crate::executor::decide_for(spec, |id| states.get(id).copied())
            == crate::executor::Decision::Run
    })
}

/// Why an instance waits for its pool: the pool is full, or does not exist.
fn pool_wait(ti: &TaskInstanceView, pools: &[crate::store::PoolRow]) -> Option<String> {
    match pools.iter().find(|p| p.name == ti.pool) {
        Some(pool) if pool.running_slots + i64::from(ti.pool_slots) > pool.slots => Some(format!(
            "waiting for pool {}: {} of {} slots used",
            pool.name, pool.running_slots, pool.slots
        )),
        Some(_) => None,
        None => Some(format!(
            "waiting for pool {0}, which does not exist: `orchestrator pools set {0} --slots N`",
            ti.pool
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PoolRow;

    fn row(task_id: &str, state: TiState) -> TaskInstanceRow {
        let mut row =
            TaskInstanceRow::scheduled("d".into(), "r".into(), task_id.into(), 1, "default".into());
        row.state = state;
        row
    }

    fn pool(name: &str, slots: i64, running_slots: i64) -> PoolRow {
        PoolRow {
            name: name.into(),
            slots,
            description: String::new(),
            running_slots,
            queued_slots: 0,
        }
    }

    /// Each task's reason, by task id.
    fn waits(
        dag_source: &str,
        rows: Vec<TaskInstanceRow>,
        pools: &[PoolRow],
    ) -> HashMap<String, Option<String>> {
        let dag = crate::dag::parse_dag_file(std::path::Path::new("d.toml"), dag_source).unwrap();
        let ids: Vec<(String, TiState)> =
            rows.iter().map(|r| (r.task_id.clone(), r.state)).collect();
        let states: HashMap<&str, TiState> = ids.iter().map(|(id, s)| (id.as_str(), *s)).collect();
        let mut tis = ordered_task_instances(rows, Some(&dag), Utc::now());
        explain_waits(&mut tis, &states, Some(&dag), pools);
        tis.into_iter()
            .map(|ti| (ti.task_id, ti.waiting_for))
            .collect()
    }

    /// A scheduled task whose upstreams let it run says what it waits for; one still waiting
    /// for its upstreams says nothing.
    #[test]
    fn a_ready_scheduled_task_says_which_slot_it_waits_for() {
        let source = r#"
[dag]
id = "d"
max_active_tasks = 1
[[task]]
id = "a"
operator = "noop"
[[task]]
id = "b"
operator = "noop"
[[task]]
id = "c"
operator = "noop"
upstream = ["a"]
[[task]]
id = "e"
operator = "noop"
pool = "etl"
"#;
        let rows = vec![
            row("a", TiState::Running),
            row("b", TiState::Scheduled),
            row("c", TiState::Scheduled),
            row("e", TiState::Scheduled),
        ];
        let found = waits(
            source,
            rows,
            &[pool("default_pool", 128, 1), pool("etl", 2, 2)],
        );
        let expected = [
            ("a", None),
            (
                "b",
                Some("waiting for a slot: 1 running, max_active_tasks is 1"),
            ),
            ("c", None),
            ("e", Some("waiting for pool etl: 2 of 2 slots used")),
        ];
        for (task, reason) in expected {
            assert_eq!(found[task].as_deref(), reason, "{task}: {found:?}");
        }
    }
}
