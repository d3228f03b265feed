//! Pools through a real `serve`: 20 tasks of 3 DAGs in a pool of 2 never run more than 2 at
//! once (sampled from the store every 20 ms), and the tries waiting for the pool start highest
//! `priority_weight` first.

use crate::support;

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use orchestrator::store::{RunFilter, Store, TiState};
use support::serve::{Serve, cli, cli_output};

/// DAG `id` with `tasks` independent tasks in pool `etl`, each with its own priority.
fn dag(id: &str, tasks: std::ops::Range<i32>) -> String {
    let mut text = format!("[dag]\nid = \"{id}\"\nmax_active_tasks = 16\n");
    for priority in tasks {
        text.push_str(&format!(
            "[[task]]\nid = \"t{priority}\"\noperator = \"shell\"\ncommand = \"sleep 0.3\"\npool = \"etl\"\npriority_weight = {priority}\n"
        ));
    }
    text
}

#[tokio::test]
async fn pool_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("updraft.db").display());
    a_pool_of_two_runs_two_at_a_time_highest_priority_first(dir.path(), &db).await;
}

/// On PostgreSQL the tries are claimed by workers (here serve's own): the claim counts the
/// pool's slots in its transaction.
#[tokio::test]
async fn pool_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::fresh_postgres_database("pools").await;
    a_pool_of_two_runs_two_at_a_time_highest_priority_first(dir.path(), &db).await;
}

async fn a_pool_of_two_runs_two_at_a_time_highest_priority_first(dir: &Path, db: &str) {
    std::fs::create_dir_all(dir.join("dags")).unwrap();
    for (id, tasks) in [("p1", 1..8), ("p2", 8..15), ("p3", 15..21)] {
        std::fs::write(dir.join(format!("dags/{id}.toml")), dag(id, tasks)).unwrap();
    }
    let set = cli_output(
        cli(dir)
            .env("UPDRAFT_DB", db)
            .args(["pools", "set", "etl", "--slots", "2"]),
    );
    assert!(set.contains("Pool etl has 2 slots"), "{set}");
    for id in ["p1", "p2", "p3"] {
        cli_output(cli(dir).env("UPDRAFT_DB", db).args(["dags", "trigger", id]));
    }
    let store = Store::connect(db).await.unwrap();
    let mut serve = Serve::start(dir, &[("UPDRAFT_DB", db)]);
    serve.wait_healthy(Duration::from_secs(30));
    let mut most_at_once = 0;
    let mut reason_seen = false;
    let mut started: HashMap<i32, chrono::DateTime<chrono::Utc>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let filter = orchestrator::store::TiFilter {
            limit: 100,
            ..Default::default()
        };
        let tis: Vec<_> = store
            .find_task_instances(&filter)
            .await
            .unwrap()
            .0
            .into_iter()
            .map(|(ti, _)| ti)
            .collect();
        let running = tis.iter().filter(|t| t.state == TiState::Running).count();
        most_at_once = most_at_once.max(running);
        for ti in &tis {
            if let Some(start) = ti.start {
                started
                    .entry(ti.task_id[1..].parse().unwrap())
                    .or_insert(start);
            }
        }
        // A waiting task's row on the run page says why it waits (`scheduled` until its
        // slots are taken when `serve` runs it, `queued` for a worker).
        if let Some(waiting) = tis
            .iter()
            .find(|t| matches!(t.state, TiState::Scheduled | TiState::Queued))
            && !reason_seen
        {
            let page = serve
                .get(&format!("/dags/{}/runs/{}", waiting.dag_id, waiting.run_id))
                .unwrap_or_default();
            reason_seen = page.contains("waiting for pool etl: 2 of 2 slots used");
        }
        let done = tis.iter().filter(|t| t.state == TiState::Success).count();
        if done == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "{done} of 20 done");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most_at_once, 2, "a pool of 2 runs 2 at a time, no more");
    assert!(reason_seen, "the run page said why waiting tasks waited");
    let runs = store.list_runs(&RunFilter::default()).await.unwrap();
    let p1 = runs.iter().find(|r| r.dag_id == "p1").unwrap();
    let tis_of = |pool: &str| {
        serve
            .get(&format!(
                "/api/v1/dags/p1/dagRuns/{}/taskInstances?pool={pool}",
                p1.run_id
            ))
            .unwrap_or_default()
    };
    let etl = tis_of("etl");
    assert!(
        etl.contains("\"total_entries\":7") && etl.contains("\"pool\":\"etl\""),
        "{etl}"
    );
    assert!(tis_of("default_pool").contains("\"total_entries\":0"));
    // The first two took free slots as they came; every later one waited for the pool, and
    // the highest waiting priority took each slot that freed. Two slots free at nearly the
    // same moment, so the two tries they admit may record their starts either way round.
    let mut start_order: Vec<(chrono::DateTime<chrono::Utc>, i32)> = started
        .iter()
        .map(|(priority, start)| (*start, *priority))
        .collect();
    start_order.sort();
    let waited: Vec<i32> = start_order[2..].iter().map(|(_, p)| *p).collect();
    for (i, priority) in waited.iter().enumerate() {
        let later_higher = waited.iter().skip(i + 2).find(|later| *later > priority);
        assert!(
            later_higher.is_none(),
            "{priority} started before {later_higher:?}: {waited:?}"
        );
    }
    let listed = cli_output(cli(dir).env("UPDRAFT_DB", db).args(["pools", "list"]));
    assert!(
        listed.contains("etl") && listed.contains("default_pool"),
        "{listed}"
    );
    let page = serve.get("/pools").unwrap_or_default();
    assert!(page.contains("data-pool=\"etl\""), "{page}");
    let api = serve.get("/api/v1/pools/etl").unwrap_or_default();
    assert!(
        api.contains("\"slots\":2") && api.contains("\"running_slots\":0"),
        "{api}"
    );
    let runs = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 3);
    serve.terminate();
}

/// With one slot for the whole process (`--parallelism 1`) and no pool in the way, the waiting
/// tries of a run start highest `priority_weight` first, whatever order the file lists them in.
/// (The first two take runners at once and may swap: the line starts whichever asks first.)
#[tokio::test]
async fn tries_waiting_for_the_process_slots_start_highest_priority_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let mut text = String::from("[dag]\nid = \"prio\"\n");
    for priority in 1..=6 {
        text.push_str(&format!(
            "[[task]]\nid = \"t{priority}\"\noperator = \"shell\"\ncommand = \"sleep 0.05\"\npriority_weight = {priority}\n"
        ));
    }
    std::fs::write(dir.path().join("dags/prio.toml"), text).unwrap();
    cli_output(cli(dir.path()).args(["run", "prio", "--parallelism", "1"]));
    let mut tis = support::task_instances_of_only_run(dir.path(), "prio").await;
    assert!(tis.iter().all(|t| t.state == TiState::Success), "{tis:?}");
    tis.sort_by_key(|t| t.start);
    let order: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
    assert!(
        order == ["t6", "t5", "t4", "t3", "t2", "t1"]
            || order == ["t5", "t6", "t4", "t3", "t2", "t1"],
        "started in the order {order:?}"
    );
}
