//! Store queries the web UI leans on, on SQLite and on PostgreSQL.

use crate::support;

use chrono::{Duration, TimeZone, Utc};
use orchestrator::store::{NewRun, RunType, Store};

/// `count` scheduled runs of `dag_id`, a minute apart from 2026-01-01.
async fn runs(store: &Store, dag_id: &str, count: i64) {
    for minute in 0..count {
        let logical_date =
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minute);
        let new = NewRun {
            dag_id: dag_id.into(),
            run_id: NewRun::run_id_for(RunType::Scheduled, logical_date),
            logical_date,
            run_type: RunType::Scheduled,
            conf: Default::default(),
            owner: None,
        };
        store.create_run(&new, &[]).await.unwrap().unwrap();
    }
}

/// The DAG list's squares: the newest runs of every DAG of a page, in one query.
async fn latest_runs_of_dags_takes_the_newest_of_each(store: Store) {
    let (a, b, c) = (
        support::unique("many"),
        support::unique("few"),
        support::unique("none"),
    );
    runs(&store, &a, 5).await;
    runs(&store, &b, 2).await;
    let latest = store.latest_runs_of_dags(&[&a, &b, &c], 3).await.unwrap();
    let minutes = |dag: &str| -> Vec<i64> {
        latest[dag]
            .iter()
            .map(|r| {
                (r.logical_date - Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()).num_minutes()
            })
            .collect()
    };
    assert_eq!(minutes(&a), [4, 3, 2], "newest first, 3 at most");
    assert_eq!(minutes(&b), [1, 0]);
    assert!(!latest.contains_key(&c), "a DAG without runs has no entry");
    assert!(store.latest_runs_of_dags(&[], 3).await.unwrap().is_empty());
}

#[tokio::test]
async fn latest_runs_of_dags_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    latest_runs_of_dags_takes_the_newest_of_each(support::sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn latest_runs_of_dags_on_postgres() {
    latest_runs_of_dags_takes_the_newest_of_each(support::postgres().await).await;
}

/// A group commit of more moves than one statement writes: every move lands with its fields;
/// a batch with one move whose state or fence no longer holds writes nothing at all.
async fn group_commits_write_all_or_nothing(store: Store) {
    use orchestrator::store::{Fence, NewTaskInstance, StoreError, TiChange, TiState};
    let dag_id = support::unique("group");
    let new = NewRun {
        dag_id: dag_id.clone(),
        run_id: "manual__group".into(),
        logical_date: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        run_type: RunType::Manual,
        conf: Default::default(),
        owner: Some("driver-a".into()),
    };
    let tasks: Vec<NewTaskInstance> = (0..300)
        .map(|i| NewTaskInstance {
            task_id: format!("t{i}"),
            max_tries: 1,
            queue: "default".into(),
        })
        .collect();
    store.create_run(&new, &tasks).await.unwrap().unwrap();
    let rows_in = |state: TiState| {
        let store = store.clone();
        let (dag_id, run_id) = (dag_id.clone(), new.run_id.clone());
        async move {
            let mut rows = store.task_instances(&dag_id, &run_id).await.unwrap();
            rows.retain(|ti| ti.state == state);
            rows
        }
    };
    let moves = |rows: &mut Vec<orchestrator::store::TaskInstanceRow>, to: TiState| {
        for (i, row) in rows.iter_mut().enumerate() {
            row.state = to;
            row.error = Some(format!("note {i}"));
        }
    };

    // A stale move (already queued) and a foreign driver's move: nothing of their batch lands.
    let mut scheduled = rows_in(TiState::Scheduled).await;
    assert_eq!(scheduled.len(), 300);
    moves(&mut scheduled, TiState::Queued);
    let foreign: Vec<TiChange<'_>> = scheduled
        .iter()
        .enumerate()
        .map(|(i, row)| TiChange {
            row,
            from: TiState::Scheduled,
            fence: Fence::RunOwner(if i == 299 { "driver-b" } else { "driver-a" }),
        })
        .collect();
    let lost = store.transition_task_instances(&foreign).await;
    assert!(matches!(lost, Err(StoreError::Lost { .. })), "{lost:?}");
    assert_eq!(
        rows_in(TiState::Scheduled).await.len(),
        300,
        "nothing written"
    );

    let all: Vec<TiChange<'_>> = scheduled
        .iter()
        .map(|row| TiChange {
            row,
            from: TiState::Scheduled,
            fence: Fence::RunOwner("driver-a"),
        })
        .collect();
    store.transition_task_instances(&all).await.unwrap();
    let queued = rows_in(TiState::Queued).await;
    assert_eq!(queued.len(), 300, "every move of the batch landed");
    assert!(
        queued
            .iter()
            .all(|ti| ti.error.as_deref().is_some_and(|e| e.starts_with("note ")))
    );

    // Moving them again from `scheduled` is stale for all: refused, and they stay queued.
    let again = store.transition_task_instances(&all[..2]).await;
    assert!(matches!(again, Err(StoreError::Lost { .. })), "{again:?}");
    assert_eq!(rows_in(TiState::Queued).await.len(), 300);
}

#[tokio::test]
async fn group_commits_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    group_commits_write_all_or_nothing(support::sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn group_commits_on_postgres() {
    group_commits_write_all_or_nothing(support::postgres().await).await;
}
