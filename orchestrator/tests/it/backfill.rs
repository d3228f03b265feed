//! Backfills through a real `serve`, on SQLite and on PostgreSQL: the CLI plans and queues
//! them, the scheduler runs a backfill's runs at most its `max_active_runs` at once and
//! completes it, the DAG's own scheduled runs start on time beside it, and reprocess modes,
//! pause and cancel behave as the CLI says.

use crate::support;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use chrono::Utc;
use orchestrator::store::{
    BackfillProgress, BackfillRow, DagRunRow, RunFilter, RunKey, RunState, RunType, Store, TaskKey,
    TiState,
};
use support::serve::{Serve, cli, cli_output};

/// Every 2 s, one run at a time of its own; each run sleeps 1 s.
const DAG: &str = r#"[dag]
id = "bf"
schedule = "*/2 * * * * *"
catchup = false
max_active_runs = 1
[[task]]
id = "work"
operator = "shell"
command = "sleep 1"
"#;

const FROM: &str = "2026-11-01T00:00:00Z";
/// 21 fire times from FROM.
const TO: &str = "2026-11-01T00:00:40Z";

fn backfill(dir: &Path, db: &str, args: &[&str]) -> String {
    cli_output(
        cli(dir)
            .env("UPDRAFT_DB", db)
            .args(["backfill", "bf", "--from", FROM, "--to", TO])
            .args(args),
    )
}

#[tokio::test]
async fn backfill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("updraft.db").display());
    backfills_run_beside_the_schedule(dir.path(), &db).await;
}

#[tokio::test]
async fn backfill_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::fresh_postgres_database("backfill").await;
    backfills_run_beside_the_schedule(dir.path(), &db).await;
}

async fn backfills_run_beside_the_schedule(dir: &Path, db: &str) {
    std::fs::create_dir_all(dir.join("dags")).unwrap();
    std::fs::write(dir.join("dags/bf.toml"), DAG).unwrap();

    let dry = backfill(dir, db, &["--dry-run"]);
    assert!(dry.contains("21 of 21 dates of bf would run"), "{dry}");
    let queued = backfill(dir, db, &["--max-active-runs", "2"]);
    assert!(
        queued.contains("Backfill 1 of bf: 21 runs queued"),
        "{queued}"
    );
    let again = backfill(dir, db, &["--dry-run"]);
    assert!(
        again.contains("0 of 21 dates of bf would run, 21 skipped")
            && again.contains("skip: a run is queued"),
        "{again}"
    );

    let store = Store::connect(db).await.unwrap();
    let mut serve = Serve::start(dir, &[("UPDRAFT_DB", db)]);
    serve.wait_healthy(Duration::from_secs(30));
    let started = Utc::now();
    let mut most_at_once = 0;
    let mut scheduled_delays = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = store
            .list_runs(&RunFilter {
                dag_id: Some("bf".into()),
                limit: Some(1000),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        let (backfill, own): (Vec<_>, Vec<_>) = runs
            .into_iter()
            .partition(|r| r.run_type == RunType::Backfill);
        let running = backfill
            .iter()
            .filter(|r| r.state == RunState::Running)
            .count();
        most_at_once = most_at_once.max(running);
        // The DAG's own runs start within a second or so of their time, backfill or not.
        for run in own.iter().filter(|r| r.logical_date > started) {
            if let Some(start) = run.start {
                scheduled_delays.push((start - run.logical_date).num_milliseconds());
            }
        }
        let done = backfill
            .iter()
            .filter(|r| r.state == RunState::Success)
            .count();
        if done == 21 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backfill did not finish: {done} of 21 done, {running} running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        most_at_once, 2,
        "at most --max-active-runs 2 at once, and 2 used"
    );
    assert!(
        !scheduled_delays.is_empty(),
        "scheduled runs ran beside the backfill"
    );
    let worst = scheduled_delays.iter().max().copied().unwrap_or_default();
    assert!(
        worst < 2_500,
        "a scheduled run started {worst} ms after its time while the backfill ran"
    );
    // The scheduler completes it on its next pass.
    let list = || {
        cli_output(
            cli(dir)
                .env("UPDRAFT_DB", db)
                .args(["backfills", "list", "bf"]),
        )
    };
    support::wait_until("the backfill to complete", Duration::from_secs(10), || {
        list().contains("completed")
    });
    assert!(list().contains(" 21 "), "{}", list());

    // Reprocess: none skips every date, all reruns them as new runs; a paused backfill
    // starts nothing, and a cancelled one stops its queued runs.
    let none = backfill(dir, db, &["--dry-run"]);
    assert!(none.contains("0 of 21 dates of bf would run"), "{none}");
    let failed = backfill(dir, db, &["--dry-run", "--reprocess", "failed"]);
    assert!(failed.contains("0 of 21 dates of bf would run"), "{failed}");
    let rerun = backfill(dir, db, &["--reprocess", "all", "--max-active-runs", "1"]);
    assert!(
        rerun.contains("Backfill 2 of bf: 21 runs queued"),
        "{rerun}"
    );
    let paused = cli_output(
        cli(dir)
            .env("UPDRAFT_DB", db)
            .args(["backfills", "pause", "2"]),
    );
    assert!(paused.contains("Backfill 2 of bf is paused"), "{paused}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cancelled = cli_output(
        cli(dir)
            .env("UPDRAFT_DB", db)
            .args(["backfills", "cancel", "2"]),
    );
    assert!(
        cancelled.contains("Backfill 2 of bf is cancelled"),
        "{cancelled}"
    );
    let second = store.backfill(2).await.unwrap().unwrap();
    assert!(
        second.progress.stopped >= 20 && second.progress.success <= 1,
        "paused, then cancelled: its queued runs stopped ({:?})",
        second.progress
    );
    let old = store
        .get_run("bf", "backfill__2026-11-01T00:00:00Z")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.state, RunState::Success, "a rerun keeps the old run");
    assert!(
        store
            .get_run("bf", "backfill__2026-11-01T00:00:00Z__2")
            .await
            .unwrap()
            .is_some(),
        "the rerun is a new run"
    );
    let refused = cli(dir)
        .env("UPDRAFT_DB", db)
        .args(["backfills", "resume", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("is completed"),
        "{stderr}"
    );
    for id in [1, 2] {
        assert_progress_counts_the_runs(&store, id).await;
    }
    a_cleared_run_reopens_its_backfill(&store).await;
    a_backfill_runs_backwards(dir, db, &store).await;
    serve.terminate();
}

/// The counters a backfill keeps as its runs move add up to its runs' states.
async fn assert_progress_counts_the_runs(store: &Store, id: i64) {
    let mut counted = BackfillProgress::default();
    for run in runs_of_backfill(store, id).await {
        counted.total += 1;
        match run.state {
            RunState::Queued => counted.queued += 1,
            RunState::Running => counted.running += 1,
            RunState::Success => counted.success += 1,
            RunState::Failed => counted.failed += 1,
            RunState::Stopped => counted.stopped += 1,
        }
    }
    let kept = store.backfill(id).await.unwrap().unwrap().progress;
    assert_eq!(kept, counted, "backfill {id}'s progress against its runs");
}

/// Marking a backfill's run failed moves its counters; clearing it reopens the completed
/// backfill, which runs it again and completes once more.
async fn a_cleared_run_reopens_its_backfill(store: &Store) {
    let run = RunKey {
        dag_id: "bf".into(),
        run_id: "backfill__2026-11-01T00:00:02Z".into(),
    };
    let task = TaskKey {
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: "work".into(),
    };
    assert!(
        store
            .mark_task_instance(&task, TiState::Failed)
            .await
            .unwrap()
    );
    let marked = store.backfill(1).await.unwrap().unwrap();
    assert_eq!(
        (marked.progress.success, marked.progress.failed),
        (20, 1),
        "{:?}",
        marked.progress
    );
    assert!(
        store
            .clear_task_instances(&run, &[("work".into(), 1)])
            .await
            .unwrap()
    );
    let reopened = store.backfill(1).await.unwrap().unwrap();
    assert_eq!(reopened.state(), "running", "{reopened:?}");
    assert_eq!(reopened.progress.queued, 1, "{:?}", reopened.progress);
    wait_for_backfill(store, 1, |b| b.progress.success == 21).await;
    assert_progress_counts_the_runs(store, 1).await;
}

/// `--run-backwards` lists and starts the latest dates first.
async fn a_backfill_runs_backwards(dir: &Path, db: &str, store: &Store) {
    let args = |dry: bool| {
        let mut command = cli(dir);
        command.env("UPDRAFT_DB", db).args([
            "backfill",
            "bf",
            "--from",
            FROM,
            "--to",
            "2026-11-01T00:00:06Z",
            "--reprocess",
            "all",
            "--max-active-runs",
            "1",
            "--run-backwards",
        ]);
        if dry {
            command.arg("--dry-run");
        }
        cli_output(&mut command)
    };
    let dry = args(true);
    let (latest, oldest) = (dry.find("00:00:06"), dry.find("00:00:00"));
    assert!(
        latest.is_some() && oldest.is_some() && latest < oldest,
        "the dry run lists the latest date first:\n{dry}"
    );
    let queued = args(false);
    assert!(
        queued.contains("Backfill 3 of bf: 4 runs queued"),
        "{queued}"
    );
    wait_for_backfill(store, 3, |_| true).await;
    let mut runs = runs_of_backfill(store, 3).await;
    runs.sort_by_key(|r| r.start);
    let started: Vec<u32> = runs
        .iter()
        .map(|r| chrono::Timelike::second(&r.logical_date))
        .collect();
    assert_eq!(started, [6, 4, 2, 0], "started latest first");
}

/// Waits (up to 30 s) for backfill `id` to be completed with `check` true of it.
async fn wait_for_backfill(store: &Store, id: i64, check: impl Fn(&BackfillRow) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let backfill = store.backfill(id).await.unwrap().unwrap();
        if backfill.state() == "completed" && check(&backfill) {
            return;
        }
        assert!(Instant::now() < deadline, "backfill {id}: {backfill:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The runs of `bf` that backfill `id` made.
async fn runs_of_backfill(store: &Store, id: i64) -> Vec<DagRunRow> {
    let filter = RunFilter {
        dag_id: Some("bf".into()),
        limit: Some(1000),
        ..RunFilter::default()
    };
    let runs = store.list_runs(&filter).await.unwrap();
    runs.into_iter()
        .filter(|r| r.backfill_id == Some(id))
        .collect()
}
