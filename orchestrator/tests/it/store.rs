//! Store queries the web UI leans on, on SQLite and on PostgreSQL.

use crate::support;

use chrono::{Duration, TimeZone, Utc};
use orchestrator::store::{
    NewRun, NewTaskInstance, RunColumn, RunFilter, RunType, Store, TiFilter, TiState, TimeRange,
};

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
            backfill_id: None,
            dag_version_number: None,
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

/// A new run's rows are as a driver takes them without reading them. A group commit of more
/// moves than one statement writes, and one of a few moves: every move lands with its fields; a batch with one move whose state or fence no longer holds
/// writes nothing at all.
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
        backfill_id: None,
        dag_version_number: None,
    };
    let tasks: Vec<NewTaskInstance> = (0..300)
        .map(|i| NewTaskInstance {
            task_id: format!("t{i}"),
            max_tries: 1 + i % 3,
            pool: "default_pool".into(),
            pool_slots: 1,
            priority_weight: 1,
            queue: if i % 2 == 0 { "default" } else { "etl" }.into(),
        })
        .collect();
    let run = store.create_run(&new, &tasks).await.unwrap().unwrap();
    // The rows that the driver of a run it created takes without reading them back are the
    // rows written.
    let mut written = store.task_instances(&dag_id, &new.run_id).await.unwrap();
    written.sort_by_key(|ti| ti.task_id[1..].parse::<u32>().unwrap());
    let known: Vec<_> = tasks.iter().map(|t| t.clone().into_row(&run)).collect();
    assert_eq!(written, known);
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
            via: None,
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
    // A batch small enough for one statement (on SQLite, written without a transaction):
    // two moves that hold and a foreign one write nothing either.
    let lost = store.transition_task_instances(&foreign[297..]).await;
    assert!(matches!(lost, Err(StoreError::Lost { .. })), "{lost:?}");
    assert_eq!(
        rows_in(TiState::Scheduled).await.len(),
        300,
        "nothing of the small batch written"
    );
    // The most one statement takes (64 on SQLite, still without a transaction), the foreign
    // move last: nothing written.
    let lost = store.transition_task_instances(&foreign[236..]).await;
    assert!(matches!(lost, Err(StoreError::Lost { .. })), "{lost:?}");
    assert_eq!(
        rows_in(TiState::Scheduled).await.len(),
        300,
        "nothing of the 64 moves written"
    );

    let all: Vec<TiChange<'_>> = scheduled
        .iter()
        .map(|row| TiChange {
            row,
            from: TiState::Scheduled,
            via: None,
            fence: Fence::RunOwner("driver-a"),
        })
        .collect();
    store.transition_task_instances(&all[..3]).await.unwrap();
    assert_eq!(
        rows_in(TiState::Queued).await.len(),
        3,
        "a small batch lands whole"
    );
    store.transition_task_instances(&all[3..]).await.unwrap();
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

/// Airflow's list operations: runs and task instances filtered, ordered and paged in SQL.
async fn runs_and_task_instances_filter_across_dags(store: Store) {
    let (a, b) = (support::unique("fa"), support::unique("fb"));
    let day = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for (dag, count) in [(&a, 3), (&b, 2)] {
        for minute in 0..count {
            let logical_date = day + Duration::minutes(minute);
            let new = NewRun {
                dag_id: dag.clone(),
                run_id: NewRun::run_id_for(RunType::Scheduled, logical_date),
                logical_date,
                run_type: RunType::Scheduled,
                conf: Default::default(),
                owner: None,
                backfill_id: None,
                dag_version_number: None,
            };
            let tis: Vec<NewTaskInstance> = ["x", "y"]
                .into_iter()
                .map(|task_id| NewTaskInstance {
                    task_id: task_id.into(),
                    max_tries: 1,
                    pool: "default_pool".into(),
                    pool_slots: 1,
                    priority_weight: 1,
                    queue: if task_id == "x" {
                        "default".into()
                    } else {
                        "heavy".into()
                    },
                })
                .collect();
            store.create_run(&new, &tis).await.unwrap().unwrap();
        }
    }
    let filter = RunFilter {
        dag_ids: vec![a.clone(), b.clone()],
        logical_date: TimeRange {
            from: Some(day + Duration::minutes(1)),
            to: None,
        },
        order_by: Some((RunColumn::LogicalDate, true)),
        limit: Some(10),
        ..RunFilter::default()
    };
    let runs = store.list_runs(&filter).await.unwrap();
    let seen: Vec<(String, i64)> = runs
        .iter()
        .map(|r| (r.dag_id.clone(), (r.logical_date - day).num_minutes()))
        .collect();
    assert_eq!(
        seen,
        [(a.clone(), 2), (a.clone(), 1), (b.clone(), 1)],
        "minute 1 on, newest first, then by DAG"
    );
    assert_eq!(store.count_runs(&filter).await.unwrap(), 3);

    let heavy = TiFilter {
        dag_ids: vec![a.clone(), b.clone()],
        queues: vec!["heavy".into()],
        states: vec![TiState::Scheduled],
        limit: 2,
        offset: 1,
        ..TiFilter::default()
    };
    let named = |page: &[(orchestrator::store::TaskInstanceRow, chrono::DateTime<Utc>)]| {
        page.iter()
            .map(|(ti, logical)| {
                (
                    ti.dag_id.clone(),
                    ti.task_id.clone(),
                    (*logical - day).num_minutes(),
                )
            })
            .collect::<Vec<(String, String, i64)>>()
    };
    let (page, total) = store.find_task_instances(&heavy).await.unwrap();
    assert_eq!(total, 5, "one `y` per run");
    assert_eq!(
        named(&page),
        [(b.clone(), "y".into(), 0), (a.clone(), "y".into(), 1)],
        "by logical date, then DAG; the second and third"
    );
    // Filtered by run alone, the runs are read first: the same order, and the same count.
    let by_run = TiFilter {
        dag_ids: vec![a.clone(), b.clone()],
        limit: 3,
        offset: 3,
        ..TiFilter::default()
    };
    let (page, total) = store.find_task_instances(&by_run).await.unwrap();
    assert_eq!(total, 10, "two per run");
    assert_eq!(
        named(&page),
        [
            (b.clone(), "y".into(), 0),
            (a.clone(), "x".into(), 1),
            (a.clone(), "y".into(), 1)
        ],
        "by logical date, DAG and task; the fourth to the sixth"
    );
    let since_minute_1 = TiFilter {
        logical_date: TimeRange {
            from: Some(day + Duration::minutes(1)),
            to: None,
        },
        limit: 1,
        offset: 5,
        ..by_run
    };
    let (page, total) = store.find_task_instances(&since_minute_1).await.unwrap();
    assert_eq!(total, 6, "three runs from minute 1 on");
    assert_eq!(named(&page), [(a.clone(), "y".into(), 2)], "the last");
    // The DAG page's grid reads the cells of its page's tasks in its runs, and no others.
    let run_ids: Vec<String> = [0, 2]
        .into_iter()
        .map(|minute| NewRun::run_id_for(RunType::Scheduled, day + Duration::minutes(minute)))
        .collect();
    let mut cells = store.grid_cells(&a, &run_ids, &["y"]).await.unwrap();
    cells.sort_by(|l, r| l.run_id.cmp(&r.run_id));
    let cells: Vec<(String, String, TiState, u32)> = cells
        .into_iter()
        .map(|c| (c.run_id, c.task_id, c.state, c.try_number))
        .collect();
    assert_eq!(
        cells,
        [
            (run_ids[0].clone(), "y".into(), TiState::Scheduled, 0),
            (run_ids[1].clone(), "y".into(), TiState::Scheduled, 0),
        ]
    );
    assert!(
        store
            .grid_cells(&a, &run_ids, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let none = TiFilter {
        dag_ids: vec![a],
        states: vec![TiState::Success],
        limit: 10,
        ..TiFilter::default()
    };
    assert_eq!(store.find_task_instances(&none).await.unwrap().1, 0);
}

#[tokio::test]
async fn list_filters_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    runs_and_task_instances_filter_across_dags(support::sqlite(dir.path()).await).await;
}

#[tokio::test]
async fn list_filters_on_postgres() {
    runs_and_task_instances_filter_across_dags(support::postgres().await).await;
}

/// DAG versions on both engines: a new number only for a new text (a text back to an older
/// one is a new version too), each text stored once and deflated; 1,000 edits of a 200-line
/// DAG file stay small.
#[tokio::test]
async fn dag_versions_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("v.db").display());
    let postgres = support::fresh_postgres_database("versions").await;
    for url in [sqlite, postgres] {
        let store = Store::connect(&url).await.unwrap();
        let text = |n: usize| {
            let mut text = format!("[dag]\nid = \"big\"\n# edit {n}\n");
            for i in 0..199 {
                text.push_str(&format!(
                    "[[task]]\nid = \"task_{i}\"\noperator = \"noop\"\n"
                ));
            }
            text
        };
        let hash = |n: usize| format!("{n:064x}");
        assert_eq!(
            store.dag_version("big", &hash(0), &text(0)).await.unwrap(),
            1
        );
        assert_eq!(
            store.dag_version("big", &hash(0), &text(0)).await.unwrap(),
            1,
            "{url}: same text"
        );
        assert_eq!(
            store.dag_version("big", &hash(1), &text(1)).await.unwrap(),
            2
        );
        assert_eq!(
            store.dag_version("big", &hash(0), &text(0)).await.unwrap(),
            3,
            "{url}: back to an old text"
        );
        let (row, stored) = store.dag_version_source("big", 2).await.unwrap().unwrap();
        assert_eq!(stored, text(1), "{url}: the text comes back whole");
        assert_eq!(row.source_bytes as usize, text(1).len());
        assert!(store.dag_version_source("big", 9).await.unwrap().is_none());
        // Three versions so far: 997 more edits make 1,000.
        for n in 2..999 {
            store.dag_version("big", &hash(n), &text(n)).await.unwrap();
        }
        let versions = store.dag_versions("big").await.unwrap();
        assert_eq!(versions.len(), 1_000);
        let stored: i64 = versions.iter().map(|v| v.stored_bytes).sum();
        let raw: i64 = versions.iter().map(|v| v.source_bytes).sum();
        println!(
            "{url}: 1,000 versions of a {}-byte DAG file: {raw} bytes of text stored in {stored}",
            text(0).len()
        );
        assert!(stored < 3_000_000, "{url}: {stored} bytes stored");
    }
}
