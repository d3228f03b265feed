//! What users do to DAGs and runs — trigger, pause, clear, mark, stop — shared by the CLI, the
//! web UI and the REST API. Conf is user input: it is checked against the DAG's params here.

use std::time::Duration;

use ui::views::{Actor, BackfillAction, BackfillRequest};

use crate::{
    audit,
    backfill::{PlannedDate, Reprocess},
    dag::{Dag, parse_date_in},
    executor::Executor,
    scheduler::{dag_version, new_manual_run},
    store::{
        BackfillRow, DEFAULT_POOL, DagRunRow, NewBackfill, PoolRow, RunKey, Store, StoreError,
        TaskKey, TiState,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, CommandError>;

/// The JSON type of a value, as the trigger form and errors name it.
pub fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Checks a trigger's conf against the DAG's params: every key must be a param (unless the
/// DAG allows extra conf) and hold a value of the param default's type (a `number` param
/// takes integers too; a param defaulting to null takes anything).
pub fn check_conf(dag: &Dag, conf: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    for (key, value) in conf {
        let Some(default) = dag.params.get(key) else {
            if dag.allow_extra_conf {
                continue;
            }
            let known: Vec<&str> = dag.params.keys().map(String::as_str).collect();
            return Err(CommandError::Invalid {
                field: format!("conf.{key}"),
                message: format!(
                    "{key:?} is not a param of {} (params: {}); set allow_extra_conf = true in [dag] to accept other keys",
                    dag.id,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        };
        let (want, got) = (json_type(default), json_type(value));
        let fits = want == got || want == "null" || (want == "number" && got == "integer");
        if !fits {
            return Err(CommandError::Invalid {
                field: format!("conf.{key}"),
                message: format!("expected {want} (the type of its default), got {got}"),
            });
        }
    }
    Ok(())
}

/// Queues a manual run of `dag` with `conf` (checked first).
pub async fn trigger(
    store: &Store,
    dag: &Dag,
    conf: serde_json::Map<String, serde_json::Value>,
    actor: &Actor,
) -> Result<DagRunRow> {
    check_conf(dag, &conf)?;
    let detail = serde_json::json!({ "conf": conf });
    let mut new = new_manual_run(dag, conf, None);
    new.dag_version_number = Some(dag_version(store, dag).await?);
    let run = store
        .create_run(&new, &dag.new_task_instances())
        .await?
        .ok_or_else(|| CommandError::Conflict(format!("a run {} already exists", new.run_id)))?;
    let entry = audit::entry(actor, "trigger").about_run(&run.dag_id, &run.run_id);
    audit::record(store, entry.with_detail(detail)).await;
    Ok(run)
}

pub async fn set_paused(store: &Store, dag: &Dag, paused: bool, actor: &Actor) -> Result<()> {
    store
        .set_paused(&dag.id, &dag.file.display().to_string(), paused)
        .await?;
    let event = if paused { "pause" } else { "unpause" };
    audit::record(store, audit::entry(actor, event).about_dag(&dag.id)).await;
    Ok(())
}

/// Clears a task instance of a finished run (and, with `downstream`, the tasks below it) so
/// the scheduler runs them again; returns the task ids cleared.
pub async fn clear(
    store: &Store,
    dag: &Dag,
    task: &TaskKey,
    downstream: bool,
    actor: &Actor,
) -> Result<Vec<String>> {
    let Some(spec) = dag.task(&task.task_id) else {
        return Err(CommandError::NotFound(format!(
            "DAG {} has no task {:?}",
            dag.id, task.task_id
        )));
    };
    // The instance asked for (`stats~1` of a split stream), and the tasks below its task.
    let mut ids = vec![task.task_id.clone()];
    if downstream {
        ids.extend(dag.downstream_of(&spec.id));
    }
    clear_tasks(store, dag, &run_key(task), ids, actor).await
}

/// Clears these task instances of a finished run in one step, so the scheduler runs them
/// again; returns their ids.
pub async fn clear_tasks(
    store: &Store,
    dag: &Dag,
    run: &RunKey,
    ids: Vec<String>,
    actor: &Actor,
) -> Result<Vec<String>> {
    let Some(existing) = store.get_run(&run.dag_id, &run.run_id).await? else {
        return Err(no_run(run));
    };
    if let Some(unknown) = ids.iter().find(|id| dag.task(id).is_none()) {
        return Err(CommandError::NotFound(format!(
            "DAG {} has no task {unknown:?}",
            dag.id
        )));
    }
    let tries: Vec<(String, u32)> = ids
        .iter()
        .filter_map(|id| dag.task(id))
        .map(|t| (t.id.clone(), t.retry.retries.saturating_add(1)))
        .collect();
    if !store.clear_task_instances(run, &tries).await? {
        return Err(still_running(&existing));
    }
    let entry = audit::entry(actor, "clear")
        .about_run(&run.dag_id, &run.run_id)
        .with_detail(serde_json::json!({ "cleared": ids }));
    audit::record(store, entry).await;
    Ok(ids)
}

/// Marks a task instance of a finished run success or failed.
pub async fn mark(store: &Store, task: &TaskKey, state: TiState, actor: &Actor) -> Result<()> {
    let run = run_key(task);
    let Some(existing) = store.get_run(&run.dag_id, &run.run_id).await? else {
        return Err(no_run(&run));
    };
    if store
        .task_instance(&task.dag_id, &task.run_id, &task.task_id)
        .await?
        .is_none()
    {
        return Err(CommandError::NotFound(format!(
            "no task {:?} in run {}",
            task.task_id, task.run_id
        )));
    }
    if !store.mark_task_instance(task, state).await? {
        return Err(still_running(&existing));
    }
    let entry = audit::entry(actor, &format!("mark_{state}")).about_task(
        &task.dag_id,
        &task.run_id,
        &task.task_id,
    );
    audit::record(store, entry).await;
    Ok(())
}

/// Stops a run: a queued one at once; a running one driven by `executor` has its tasks
/// cancelled (streams flush and commit first) and ends `stopped` — this waits for that up to
/// `wait`. Returns the run as it stands then.
pub async fn stop(
    store: &Store,
    executor: Option<&Executor>,
    run: &RunKey,
    wait: Duration,
    actor: &Actor,
) -> Result<DagRunRow> {
    let Some(existing) = store.get_run(&run.dag_id, &run.run_id).await? else {
        return Err(no_run(run));
    };
    if existing.state.is_finished() {
        return Err(CommandError::Conflict(format!(
            "run {} already ended {}",
            run.run_id, existing.state
        )));
    }
    if store.stop_queued_run(run).await? {
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, "Stopped a queued run");
    } else if let Some(executor) = executor.filter(|e| e.stop_run(run)) {
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, "Stopping a run");
        wait_until_finished(executor.store(), run, wait).await?;
    } else if store.is_shared() && store.request_run_stop(run).await? {
        // Driven by another serve: it hears the request, and the workers cancel the tries.
        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, owner = ?existing.owner, "Asked the run's driver to stop it");
        wait_until_finished(store, run, wait).await?;
    } else {
        return Err(CommandError::Conflict(format!(
            "run {} is driven by another process ({}): stop it there",
            run.run_id,
            existing.owner.as_deref().unwrap_or("unknown")
        )));
    }
    let entry = audit::entry(actor, "stop").about_run(&run.dag_id, &run.run_id);
    audit::record(store, entry).await;
    store
        .get_run(&run.dag_id, &run.run_id)
        .await?
        .ok_or_else(|| no_run(run))
}

async fn wait_until_finished(store: &Store, run: &RunKey, wait: Duration) -> Result<()> {
    let mut events = store.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let finished = store
            .get_run(&run.dag_id, &run.run_id)
            .await?
            .is_none_or(|r| r.state.is_finished());
        if finished || tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        // A run's end written by another process may reach this one unannounced: look again
        // every quarter second too.
        let next_look = deadline.min(tokio::time::Instant::now() + Duration::from_millis(250));
        let _ = tokio::time::timeout_at(next_look, events.recv()).await;
    }
}

fn run_key(task: &TaskKey) -> RunKey {
    RunKey {
        dag_id: task.dag_id.clone(),
        run_id: task.run_id.clone(),
    }
}

fn no_run(run: &RunKey) -> CommandError {
    CommandError::NotFound(format!("DAG {} has no run {:?}", run.dag_id, run.run_id))
}

fn still_running(run: &DagRunRow) -> CommandError {
    CommandError::Conflict(format!(
        "run {} is {}: stop it or wait until it ends",
        run.run_id, run.state
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(extra: bool) -> Dag {
        let source = format!(
            "[dag]\nid = \"d\"\nallow_extra_conf = {extra}\n[dag.params]\nname = \"world\"\nresults = 10\nratio = 0.5\nanything = []\n[[task]]\nid = \"t\"\noperator = \"noop\"\n"
        );
        crate::dag::parse_dag_file(std::path::Path::new("d.toml"), &source).unwrap()
    }

    fn conf(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn conf_values_must_have_their_param_types() {
        let dag = dag(false);
        assert!(
            check_conf(
                &dag,
                &conf(serde_json::json!({"name": "you", "results": 3, "ratio": 2}))
            )
            .is_ok()
        );
        let error = check_conf(&dag, &conf(serde_json::json!({"results": "3"}))).unwrap_err();
        assert!(
            matches!(&error, CommandError::Invalid { field, message } if field == "conf.results" && message.contains("expected integer") && message.contains("got string")),
            "{error}"
        );
        assert!(check_conf(&dag, &conf(serde_json::json!({"results": 2.5}))).is_err());
        assert!(check_conf(&dag, &conf(serde_json::json!({"anything": {"a": 1}}))).is_err());
    }

    #[test]
    fn keys_that_are_not_params_need_allow_extra_conf() {
        let error = check_conf(&dag(false), &conf(serde_json::json!({"other": 1}))).unwrap_err();
        assert!(
            matches!(&error, CommandError::Invalid { field, message } if field == "conf.other" && message.contains("not a param")),
            "{error}"
        );
        assert!(check_conf(&dag(true), &conf(serde_json::json!({"other": 1}))).is_ok());
    }
}

/// What a backfill did (or, dry, would do): its dates, and the backfill created.
#[derive(Debug, Clone)]
pub struct BackfillOutcome {
    pub dates: Vec<PlannedDate>,
    pub backfill: Option<BackfillRow>,
}

/// The most runs of one backfill at once.
pub const MAX_BACKFILL_ACTIVE_RUNS: u32 = 1000;

/// Plans a backfill of `dag` and, unless dry, creates it: one queued run per date to run.
pub async fn backfill(
    store: &Store,
    dag: &Dag,
    request: BackfillRequest,
    actor: &Actor,
) -> Result<BackfillOutcome> {
    let invalid = |field: &str, message: String| CommandError::Invalid {
        field: field.into(),
        message,
    };
    let from =
        parse_date_in(&request.from_date, dag.timezone).map_err(|m| invalid("from_date", m))?;
    let to = parse_date_in(&request.to_date, dag.timezone).map_err(|m| invalid("to_date", m))?;
    let reprocess: Reprocess = request
        .reprocess_behavior
        .as_deref()
        .unwrap_or("none")
        .parse()
        .map_err(|m| invalid("reprocess_behavior", m))?;
    let max_active_runs = request.max_active_runs.unwrap_or(dag.max_active_runs);
    if !(1..=MAX_BACKFILL_ACTIVE_RUNS).contains(&max_active_runs) {
        return Err(invalid(
            "max_active_runs",
            format!("{max_active_runs} is out of 1..={MAX_BACKFILL_ACTIVE_RUNS}"),
        ));
    }
    check_conf(dag, &request.dag_run_conf)?;
    let existing = store.run_states_between(&dag.id, from, to).await?;
    let mut dates = crate::backfill::plan(dag, from, to, reprocess, &existing)
        .map_err(|m| invalid("to_date", m))?;
    if request.run_backwards {
        // In the order they start.
        dates.reverse();
    }
    if request.dry_run {
        return Ok(BackfillOutcome {
            dates,
            backfill: None,
        });
    }
    let to_run: Vec<_> = dates
        .iter()
        .filter(|d| d.skip.is_none())
        .map(|d| d.logical_date)
        .collect();
    if to_run.is_empty() {
        return Err(CommandError::Conflict(format!(
            "nothing to backfill: every one of the {} dates of {} from {from} to {to} is skipped (see the dry run)",
            dates.len(),
            dag.id
        )));
    }
    let new = NewBackfill {
        dag_id: dag.id.clone(),
        from,
        to,
        reprocess: reprocess.as_str().into(),
        max_active_runs,
        conf: request.dag_run_conf,
        created_by: actor.username.clone(),
        dag_version_number: Some(dag_version(store, dag).await?),
        run_backwards: request.run_backwards,
    };
    let id = store
        .create_backfill(&new, &to_run, &dag.new_task_instances())
        .await?;
    let detail = serde_json::json!({
        "backfill_id": id, "from_date": from, "to_date": to, "reprocess": reprocess.as_str(),
        "max_active_runs": max_active_runs, "run_backwards": new.run_backwards, "runs": to_run.len(),
        "skipped": dates.len() - to_run.len(), "conf": new.conf,
    });
    let entry = audit::entry(actor, "backfill").about_dag(&dag.id);
    audit::record(store, entry.with_detail(detail)).await;
    tracing::info!(dag_id = %dag.id, backfill_id = id, runs = to_run.len(), "Backfill created");
    Ok(BackfillOutcome {
        dates,
        backfill: store.backfill(id).await?,
    })
}

/// The audit event of a change to a backfill.
fn backfill_event(action: BackfillAction) -> &'static str {
    match action {
        BackfillAction::Pause => "backfill_pause",
        BackfillAction::Unpause => "backfill_unpause",
        BackfillAction::Cancel => "backfill_cancel",
    }
}

/// Pauses, resumes or cancels backfill `id` (of `dag_id` when given); returns it as it
/// stands then.
pub async fn change_backfill(
    store: &Store,
    id: i64,
    dag_id: Option<&str>,
    action: BackfillAction,
    actor: &Actor,
) -> Result<BackfillRow> {
    let unknown = || {
        CommandError::NotFound(format!(
            "no backfill {id}{}",
            dag_id.map(|d| format!(" of DAG {d}")).unwrap_or_default()
        ))
    };
    let backfill = store
        .backfill(id)
        .await?
        .filter(|b| dag_id.is_none_or(|d| d == b.dag_id))
        .ok_or_else(unknown)?;
    let changed = match action {
        BackfillAction::Pause => store.set_backfill_paused(id, true).await?,
        BackfillAction::Unpause => store.set_backfill_paused(id, false).await?,
        BackfillAction::Cancel => store.cancel_backfill(id).await?,
    };
    if !changed {
        return Err(CommandError::Conflict(format!(
            "backfill {id} of {} is completed",
            backfill.dag_id
        )));
    }
    let entry = audit::entry(actor, backfill_event(action)).about_dag(&backfill.dag_id);
    let detail = serde_json::json!({ "backfill_id": id });
    audit::record(store, entry.with_detail(detail)).await;
    store.backfill(id).await?.ok_or_else(unknown)
}

/// Creates pool `name` or changes its slots (and description, when given); audited.
pub async fn set_pool(
    store: &Store,
    name: &str,
    slots: i64,
    description: Option<&str>,
    actor: &Actor,
) -> Result<PoolRow> {
    crate::dag::check_name(name).map_err(|message| CommandError::Invalid {
        field: "name".into(),
        message,
    })?;
    if !(0..=1_000_000).contains(&slots) {
        return Err(CommandError::Invalid {
            field: "slots".into(),
            message: format!("{slots} is out of 0..=1000000"),
        });
    }
    store.set_pool(name, slots, description).await?;
    let detail = serde_json::json!({ "pool": name, "slots": slots, "description": description });
    audit::record(store, audit::entry(actor, "pool_set").with_detail(detail)).await;
    store
        .pool(name)
        .await?
        .ok_or_else(|| CommandError::NotFound(format!("no pool {name:?}")))
}

/// Deletes pool `name` (never `default_pool`); audited.
pub async fn delete_pool(store: &Store, name: &str, actor: &Actor) -> Result<()> {
    if name == DEFAULT_POOL {
        return Err(CommandError::Invalid {
            field: "name".into(),
            message: format!("{DEFAULT_POOL} cannot be deleted"),
        });
    }
    if !store.delete_pool(name).await? {
        return Err(CommandError::NotFound(format!("no pool {name:?}")));
    }
    let detail = serde_json::json!({ "pool": name });
    audit::record(
        store,
        audit::entry(actor, "pool_delete").with_detail(detail),
    )
    .await;
    Ok(())
}
