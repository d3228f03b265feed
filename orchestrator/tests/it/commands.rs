//! The commands the CLI and the UI share — trigger, mark, clear, stop — on a real store (SQLite
//! and PostgreSQL), after real runs of the executor.

use crate::support;

use std::{collections::BTreeMap, time::Duration};

use orchestrator::{
    commands::{self, CommandError},
    executor::RunOutcome,
    store::{AuditFilter, AuditRow},
    store::{RunFilter, RunKey, RunState, Store, TaskKey, TiState},
};

/// Who the commands act for, as the audit log keeps them.
fn ada() -> ui::views::Actor {
    ui::views::Actor::new("ada", Some("192.0.2.7".into()))
}

fn source(id: &str) -> String {
    format!(
        "[dag]\nid = \"{id}\"\n[dag.params]\nfail = \"yes\"\n\
         [[task]]\nid = \"first\"\noperator = \"shell\"\ncommand = 'test \"$FAIL\" != yes'\nenv = {{ FAIL = \"{{{{ params.fail }}}}\" }}\n\
         [[task]]\nid = \"second\"\noperator = \"noop\"\nupstream = [\"first\"]\n"
    )
}

/// The runs and task instances of DAG `id` by state as `/metrics` reads them are what the
/// rows say `after` each step (a way of keeping them counted must keep this true).
async fn counts_are_the_rows(store: &Store, id: &str, after: &str) {
    let (mut runs, mut task_instances) = (BTreeMap::new(), BTreeMap::new());
    let filter = RunFilter {
        dag_id: Some(id.into()),
        ..RunFilter::default()
    };
    for run in store.list_runs(&filter).await.unwrap() {
        *runs.entry(run.state.to_string()).or_default() += 1;
        for ti in store.task_instances(id, &run.run_id).await.unwrap() {
            *task_instances.entry(ti.state.to_string()).or_default() += 1;
        }
    }
    let of_dag = |counts: Vec<(String, String, i64)>| -> BTreeMap<String, i64> {
        counts
            .into_iter()
            .filter(|(dag_id, _, _)| dag_id == id)
            .map(|(_, state, n)| (state, n))
            .collect()
    };
    let counted = of_dag(store.run_counts().await.unwrap());
    assert_eq!(counted, runs, "runs after {after}");
    let counted = of_dag(store.task_instance_counts().await.unwrap());
    assert_eq!(counted, task_instances, "task instances after {after}");
}

async fn mark_clear_and_stop(store: Store) {
    let id = support::unique("commands");
    let dag = support::dag(&source(&id));
    let logs = tempfile::tempdir().unwrap();
    let executor = support::executor(store.clone(), logs.path());

    let refused = commands::trigger(
        &store,
        &dag,
        serde_json::json!({"fail": 1}).as_object().unwrap().clone(),
        &ada(),
    )
    .await;
    assert!(
        matches!(refused, Err(CommandError::Invalid { ref field, .. }) if field == "conf.fail"),
        "{refused:?}"
    );

    let run = commands::trigger(&store, &dag, serde_json::Map::new(), &ada())
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Queued);
    counts_are_the_rows(&store, &id, "the trigger").await;
    let key = RunKey {
        dag_id: id.clone(),
        run_id: run.run_id.clone(),
    };
    let task = |task_id: &str| TaskKey {
        dag_id: id.clone(),
        run_id: run.run_id.clone(),
        task_id: task_id.into(),
    };

    let running = commands::mark(&store, &task("first"), TiState::Success, &ada()).await;
    assert!(
        matches!(running, Err(CommandError::Conflict(_))),
        "an unfinished run is not marked: {running:?}"
    );

    assert!(
        store
            .claim_run(&id, &run.run_id, executor.owner())
            .await
            .unwrap()
    );
    let claimed = store.get_run(&id, &run.run_id).await.unwrap().unwrap();
    let outcome = support::drive_to_end(&executor, &dag, &claimed, Duration::from_secs(30)).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Failed));
    counts_are_the_rows(&store, &id, "the run failed").await;

    commands::mark(&store, &task("first"), TiState::Success, &ada())
        .await
        .unwrap();
    counts_are_the_rows(&store, &id, "a mark that left the run failed").await;
    let tis = store.task_instances(&id, &run.run_id).await.unwrap();
    let state = |t: &str| tis.iter().find(|ti| ti.task_id == t).unwrap().state;
    assert_eq!(
        (state("first"), state("second")),
        (TiState::Success, TiState::UpstreamFailed)
    );
    assert_eq!(
        store
            .get_run(&id, &run.run_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        RunState::Failed,
        "second is still upstream_failed"
    );
    commands::mark(&store, &task("second"), TiState::Success, &ada())
        .await
        .unwrap();
    let marked = store.get_run(&id, &run.run_id).await.unwrap().unwrap();
    assert_eq!(marked.state, RunState::Success, "every task passed now");
    counts_are_the_rows(&store, &id, "a mark that made the run a success").await;

    let cleared = commands::clear(&store, &dag, &task("first"), true, &ada())
        .await
        .unwrap();
    assert_eq!(cleared, ["first", "second"]);
    let reopened = store.get_run(&id, &run.run_id).await.unwrap().unwrap();
    assert_eq!(
        (reopened.state, reopened.owner.clone()),
        (RunState::Queued, None),
        "the scheduler picks it up again"
    );
    counts_are_the_rows(&store, &id, "a clear").await;
    let tis = store.task_instances(&id, &run.run_id).await.unwrap();
    assert!(
        tis.iter().all(|ti| ti.state == TiState::Scheduled),
        "{tis:?}"
    );
    let first = tis.iter().find(|ti| ti.task_id == "first").unwrap();
    assert_eq!(
        (first.try_number, first.max_tries),
        (1, 2),
        "the next try is try 2; old logs stay"
    );

    let stopped = commands::stop(
        &store,
        Some(&executor),
        &key,
        Duration::from_secs(5),
        &ada(),
    )
    .await
    .unwrap();
    assert_eq!(
        stopped.state,
        RunState::Stopped,
        "a queued run stops at once"
    );
    counts_are_the_rows(&store, &id, "a queued run stopped").await;
    let again = commands::stop(
        &store,
        Some(&executor),
        &key,
        Duration::from_secs(5),
        &ada(),
    )
    .await;
    assert!(matches!(again, Err(CommandError::Conflict(_))), "{again:?}");
    let unknown = commands::stop(
        &store,
        None,
        &RunKey {
            dag_id: id.clone(),
            run_id: "nope".into(),
        },
        Duration::ZERO,
        &ada(),
    )
    .await;
    assert!(
        matches!(unknown, Err(CommandError::NotFound(_))),
        "{unknown:?}"
    );

    // The audit log kept each command that did something (not the refused ones), in order.
    let filter = AuditFilter {
        dag_id: Some(id.clone()),
        limit: 100,
        ..AuditFilter::default()
    };
    let (entries, total) = store.audit_log(&filter).await.unwrap();
    let events: Vec<(&str, Option<&str>)> = entries
        .iter()
        .map(|row: &AuditRow| (row.entry.event.as_str(), row.entry.task_id.as_deref()))
        .collect();
    assert_eq!(
        events,
        [
            ("trigger", None),
            ("mark_success", Some("first")),
            ("mark_success", Some("second")),
            ("clear", None),
            ("stop", None)
        ]
    );
    assert_eq!(total, 5);
    for row in &entries {
        assert_eq!(row.entry.owner, "ada");
        assert_eq!(row.entry.source.as_deref(), Some("192.0.2.7"));
        assert_eq!(row.entry.run_id.as_deref(), Some(run.run_id.as_str()));
    }
    assert_eq!(
        entries[3].entry.detail["cleared"],
        serde_json::json!(["first", "second"])
    );
    let newest = AuditFilter {
        newest_first: true,
        event: Some("stop".into()),
        ..filter
    };
    let (latest, total) = store.audit_log(&newest).await.unwrap();
    assert_eq!((latest[0].entry.event.as_str(), total), ("stop", 1));
}

async fn stop_a_running_run(store: Store) {
    let id = support::unique("stoppable");
    let dag = support::dag(&format!(
        "[dag]\nid = \"{id}\"\n[[task]]\nid = \"wait\"\noperator = \"sleep\"\nduration = \"30s\"\n"
    ));
    let logs = tempfile::tempdir().unwrap();
    let executor = support::executor(store.clone(), logs.path());
    let run = commands::trigger(&store, &dag, serde_json::Map::new(), &ada())
        .await
        .unwrap();
    assert!(
        store
            .claim_run(&id, &run.run_id, executor.owner())
            .await
            .unwrap()
    );
    let claimed = store.get_run(&id, &run.run_id).await.unwrap().unwrap();
    let driver = support::drive_in_background(&executor, &dag, &claimed);
    let started = std::time::Instant::now();
    support::eventually("the task to start", Duration::from_secs(10), || async {
        store
            .task_instance(&id, &run.run_id, "wait")
            .await
            .is_ok_and(|ti| ti.is_some_and(|ti| ti.state == TiState::Running))
    })
    .await;
    let key = RunKey {
        dag_id: id.clone(),
        run_id: run.run_id.clone(),
    };
    let other_process = commands::stop(&store, None, &key, Duration::ZERO, &ada()).await;
    assert!(
        matches!(other_process, Err(CommandError::Conflict(ref m)) if m.contains("another process")),
        "{other_process:?}"
    );
    let stopped = commands::stop(
        &store,
        Some(&executor),
        &key,
        Duration::from_secs(10),
        &ada(),
    )
    .await
    .unwrap();
    assert_eq!(stopped.state, RunState::Stopped);
    counts_are_the_rows(&store, &id, "a running run stopped").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped long before the sleep's 30 s"
    );
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn mark_clear_and_stop_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    mark_clear_and_stop(support::sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn mark_clear_and_stop_on_postgres() {
    mark_clear_and_stop(support::postgres().await).await;
}

#[tokio::test]
async fn stopping_a_running_run_cancels_its_tasks() {
    let dir = tempfile::tempdir().unwrap();
    stop_a_running_run(support::sqlite(dir.path()).await).await;
}
