//! Store queries the web UI leans on, on SQLite and on PostgreSQL.

mod support;

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
