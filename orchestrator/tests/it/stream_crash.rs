//! Exactly once under crashes: `orchestrator serve` is killed with SIGKILL five times at
//! random moments while its stream task folds 100,000 records into windows, in MongoDB and
//! in PostgreSQL; once the group's lag is zero, every window equals the ground truth
//! computed here.

use crate::support;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mongodb::bson::Document;
use support::{
    serve::Serve,
    sql::{SqlDb, sql_sink, stats_rows, total},
};

const RECORDS: usize = 100_000;
const BATCH: usize = 1_000;
const KILLS: usize = 5;

/// Every try log of the stream task, oldest first.
fn task_logs(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = walk(&dir.join("logs"));
    files.sort_by_key(|f| f.metadata().and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|f| {
            format!(
                "== {}\n{}",
                f.display(),
                std::fs::read_to_string(f).unwrap_or_default()
            )
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// Waits (60 s at most) until try `try_number` (or a later one) of the stream task runs in `serve`, so that
/// the kill that follows lands on a stream at work and the next `serve` has a zombie to adopt.
/// (A kill during a slow start-up, before the scheduler started the try, would prove nothing.)
async fn wait_for_running_try(serve: &mut Serve, dir: &Path, dag_id: &str, try_number: u32) {
    tokio::task::block_in_place(|| serve.wait_healthy(Duration::from_secs(30)));
    let store = orchestrator::store::Store::connect(&format!(
        "sqlite://{}",
        dir.join("updraft.db").display()
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let mut last = None;
    loop {
        let runs = store
            .list_runs(&orchestrator::store::RunFilter {
                dag_id: Some(dag_id.to_owned()),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(run) = runs.first() {
            let tis = store.task_instances(dag_id, &run.run_id).await.unwrap();
            last = tis.first().map(|ti| (ti.state, ti.try_number));
            if last.is_some_and(|(state, tried)| {
                state == orchestrator::store::TiState::Running && tried >= try_number
            }) {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "try {try_number} of the stream task did not start within 60 s (state and try: {last:?}); the end of serve's log:\n{}",
            serve.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
}

/// A small xorshift generator; the seed is printed so a failing run can be replayed with
/// `UPDRAFT_CRASH_SEED`.
struct Random(u64);

impl Random {
    fn seeded() -> Self {
        let seed = std::env::var("UPDRAFT_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash test seed {seed} (UPDRAFT_CRASH_SEED={seed} replays it)");
        Self(seed)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// Produces `records` in batches of [`BATCH`], one every ~0.2 s, in the background; their
/// placements (partition, offset).
fn produce_steadily(
    topic: &str,
    records: &[(String, String)],
) -> tokio::task::JoinHandle<Vec<(i32, i64)>> {
    let (topic, records) = (topic.to_owned(), records.to_vec());
    tokio::spawn(async move {
        let mut placements = Vec::new();
        for batch in records.chunks(BATCH) {
            placements.extend(support::produce(&topic, batch).await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        placements
    })
}

/// Where the stream's windows go, and how the test reads them back.
#[derive(Clone)]
enum Target {
    Mongodb(mongodb::Collection<Document>),
    Postgres(sqlx::AnyPool, String),
}

impl Target {
    async fn new(postgres: bool, ns: &str) -> Self {
        if postgres {
            Self::Postgres(SqlDb::Postgres.pool().await, ns.to_owned())
        } else {
            Self::Mongodb(support::mongo(ns).await.collection::<Document>("stats"))
        }
    }

    /// The stream DAG of the test, with this target as its sink.
    fn dag_source(&self, ns: &str, topic: &str) -> String {
        let source = support::stats_dag_source(ns, topic, "");
        match self {
            Self::Mongodb(_) => source,
            Self::Postgres(_, table) => {
                support::with_sink(&source, &sql_sink(SqlDb::Postgres, table))
            }
        }
    }

    /// Users counted in every window so far.
    async fn counted(&self) -> Result<i64, String> {
        match self {
            Self::Mongodb(stats) => support::users_counted(stats).await,
            Self::Postgres(pool, table) => Ok(total(SqlDb::Postgres, pool, table, "users").await),
        }
    }

    /// Every window, as documents.
    async fn windows(&self) -> Vec<Document> {
        match self {
            Self::Mongodb(stats) => support::all_documents(stats).await,
            Self::Postgres(pool, table) => stats_rows(SqlDb::Postgres, pool, table).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mongodb_windows_are_exact_after_five_sigkills_of_serve() {
    exact_after_sigkills(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_windows_are_exact_after_five_sigkills_of_serve() {
    exact_after_sigkills(true).await;
}

async fn exact_after_sigkills(postgres: bool) {
    let ns = support::unique("crash");
    let topic = format!("{ns}.in");
    support::create_topic(&topic, 3).await;
    let stats = Target::new(postgres, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/stats.toml"),
        stats.dag_source(&ns, &topic),
    )
    .unwrap();

    // 100,000 records in batches of 1,000, one every ~0.2 s: a steady ~20 s of input, so
    // every kill lands while records are in flight, folded but not yet flushed or committed.
    let records = support::synthetic_users(RECORDS, 1_700_000_000);
    let producer = produce_steadily(&topic, &records);

    let mut random = Random::seeded();
    let mut serve = Serve::start(dir.path(), &[]);
    for kill in 1..=KILLS {
        wait_for_running_try(&mut serve, dir.path(), &ns, kill as u32).await;
        tokio::time::sleep(Duration::from_millis(random.between(1_000, 3_000))).await;
        let counted = stats.counted().await.unwrap_or(0);
        serve.kill();
        eprintln!("SIGKILL {kill}: {counted} records counted");
        assert!(
            counted < RECORDS as i64,
            "kill {kill} came after the stream had counted everything: the test proves nothing"
        );
        serve = Serve::start(dir.path(), &[]);
    }

    let placements = producer.await.unwrap();
    assert_eq!(placements.len(), RECORDS);
    let ends = support::ends_of_placements(&topic, &placements);
    let counted_and_committed = || {
        let (stats, ends, ns) = (stats.clone(), ends.clone(), ns.clone());
        async move {
            stats.counted().await.is_ok_and(|n| n >= RECORDS as i64)
                && support::group_lag(&ns, &ends).await == Ok(0)
        }
    };
    let started = Instant::now();
    while !counted_and_committed().await {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the stream did not count and commit every record within 120 s: {:?} counted, committed {:?} of {ends:?}; the end of serve's log:\n{}\nthe stream task's logs:\n{}",
            stats.counted().await,
            support::committed(&ns, &ends).await,
            serve.log_tail(),
            task_logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let values: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, payload)| serde_json::from_str(payload).unwrap())
        .collect();
    support::assert_exact(&stats.windows().await, &values);
    let zombies = serve.log().matches("Found a zombie task instance").count();
    assert!(
        zombies >= KILLS,
        "each restart adopts the killed stream task ({zombies} zombies logged)"
    );
    tokio::task::spawn_blocking(move || serve.terminate())
        .await
        .unwrap();

    // SIGTERM is not a crash: the stream flushed, committed and waits in its run for the
    // next serve (up_for_retry), instead of ending the run.
    let store = orchestrator::store::Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("updraft.db").display()
    ))
    .await
    .unwrap();
    let runs = store
        .list_runs(&orchestrator::store::RunFilter {
            dag_id: Some(ns.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one run through every restart: {runs:?}");
    assert_eq!(runs[0].state, orchestrator::store::RunState::Running);
    let stream = store
        .task_instances(&ns, &runs[0].run_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(stream.state, orchestrator::store::TiState::UpForRetry);
}

/// The instances of a split stream task and the worker each runs on, as the store says.
async fn instances(
    store: &orchestrator::store::Store,
    dag_id: &str,
) -> Vec<orchestrator::store::TaskInstanceRow> {
    let runs = store
        .list_runs(&orchestrator::store::RunFilter {
            dag_id: Some(dag_id.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    match runs.first() {
        Some(run) => store
            .task_instances(dag_id, &run.run_id)
            .await
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The window documents of the shares of a split stream merged as the results page reads
/// them (with the DAG's own aggregates).
fn merged(documents: Vec<Document>, dag_source: &str) -> Vec<Document> {
    let dag = orchestrator::dag::parse_dag_file(Path::new("stats.toml"), dag_source).unwrap();
    let spec = dag.task("stats").unwrap();
    let tasks::OperatorConfig::Stream(config) =
        tasks::OperatorConfig::from_json(spec.operator, spec.config.clone()).unwrap()
    else {
        panic!("not a stream")
    };
    tasks::stream::merge_shares(documents, &config.window.unwrap().aggregates).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_shares_on_two_workers_stay_exact_in_mongodb_when_one_worker_is_sigkilled_twice() {
    shares_exact_after_worker_kills(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_shares_on_two_workers_stay_exact_in_postgres_when_one_worker_is_sigkilled_twice() {
    shares_exact_after_worker_kills(true).await;
}

/// Rows of a split stream's shares summed per window and group, as a reader of the table
/// would (`users` and `total_age` add up): a check independent of the product's merge.
fn summed_rows(rows: Vec<Document>) -> Vec<Document> {
    let mut sums: std::collections::BTreeMap<(String, String, String), (i64, f64)> =
        std::collections::BTreeMap::new();
    for row in rows {
        let key = (
            row.get_str("window_start").unwrap().to_owned(),
            row.get_str("country").unwrap().to_owned(),
            row.get_str("gender").unwrap().to_owned(),
        );
        let entry = sums.entry(key).or_default();
        entry.0 += support::int(&row, "users");
        entry.1 += support::float(&row, "total_age");
    }
    sums.into_iter()
        .map(|((start, country, gender), (users, total_age))| {
            mongodb::bson::doc! {
                "window_start": start, "country": country, "gender": gender,
                "users": users, "total_age": total_age,
            }
        })
        .collect()
}

async fn shares_exact_after_worker_kills(postgres: bool) {
    use orchestrator::store::TiState;
    use support::serve::WorkerProcess;
    let db = support::fresh_postgres_database("shares").await;
    let ns = support::unique("shares");
    let topic = format!("{ns}.in");
    support::create_topic(&topic, 4).await;
    let stats = Target::new(postgres, &ns).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    let dag_source = stats.dag_source(&ns, &topic).replacen(
        "[task.window]",
        "parallelism = 2\n[task.window]",
        1,
    );
    std::fs::write(dir.path().join("dags/stats.toml"), &dag_source).unwrap();
    let records = support::synthetic_users(RECORDS, 1_700_000_000);
    let producer = produce_steadily(&topic, &records);
    let serve_env = [
        ("UPDRAFT_DB", db.as_str()),
        ("UPDRAFT_NO_LOCAL_TASKS", "true"),
        ("UPDRAFT_WORKER_TIMEOUT", "3s"),
    ];
    let mut serve = Serve::start(dir.path(), &serve_env);
    tokio::task::block_in_place(|| serve.wait_healthy(Duration::from_secs(30)));
    // One slot each: a share per worker (a worker with free slots would claim both).
    let worker_env = [
        ("UPDRAFT_DB", db.as_str()),
        ("UPDRAFT_HEARTBEAT", "500ms"),
        ("UPDRAFT_SLOTS", "1"),
    ];
    let mut doomed = WorkerProcess::start(dir.path(), "doomed", &worker_env);
    let _steady = WorkerProcess::start(dir.path(), "steady", &worker_env);
    let store = orchestrator::store::Store::connect(&db).await.unwrap();
    let mut random = Random::seeded();
    let mut tries_before = 0;
    for kill in 1..=2 {
        // Both shares at work, at least one on the doomed worker, with more tries than before.
        let started = Instant::now();
        loop {
            let tis = instances(&store, &ns).await;
            let running = tis.iter().filter(|t| t.state == TiState::Running).count();
            let on_doomed = tis
                .iter()
                .any(|t| t.state == TiState::Running && t.hostname.as_deref() == Some("doomed"));
            let tries: u32 = tis.iter().map(|t| t.try_number).sum();
            if running == 2 && on_doomed && tries > tries_before {
                tries_before = tries;
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "kill {kill}: both shares did not run with one on the doomed worker: {:?}\n{}",
                tis.iter()
                    .map(|t| (&t.task_id, t.state, t.try_number, &t.hostname))
                    .collect::<Vec<_>>(),
                serve.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(random.between(1_000, 3_000))).await;
        let counted = stats.counted().await.unwrap_or(0);
        doomed.kill();
        eprintln!("SIGKILL {kill} of a worker: {counted} records counted");
        assert!(
            counted < RECORDS as i64,
            "kill {kill} came too late to prove anything"
        );
        doomed = WorkerProcess::start(dir.path(), "doomed", &worker_env);
    }
    let placements = producer.await.unwrap();
    let ends = support::ends_of_placements(&topic, &placements);
    let started = Instant::now();
    loop {
        let counted = stats.counted().await.unwrap_or(0);
        if counted >= RECORDS as i64 && support::group_lag(&ns, &ends).await == Ok(0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the shares did not count and commit every record within 120 s: {counted} counted, committed {:?} of {ends:?}\n{}",
            support::committed(&ns, &ends).await,
            serve.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The streams page of the serve, which runs neither share, shows both and their workers.
    let mut page = String::new();
    let started = Instant::now();
    while !(page.contains("stats~0")
        && page.contains("stats~1")
        && page.contains("on <span class=\"mono\">"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the streams page:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        page = serve.get("/streams").unwrap_or_default();
    }
    let values: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, payload)| serde_json::from_str(payload).unwrap())
        .collect();
    match &stats {
        Target::Mongodb(collection) => {
            let documents = support::all_documents(collection).await;
            for share in ["~0of2", "~1of2"] {
                assert!(
                    documents
                        .iter()
                        .any(|d| d.get_str("_id").unwrap().ends_with(share)),
                    "share {share} wrote its own documents"
                );
            }
            support::assert_exact(&merged(documents, &dag_source), &values);
        }
        Target::Postgres(..) => {
            let rows = stats.windows().await;
            support::assert_exact(&summed_rows(rows.clone()), &values);
            assert!(
                rows.len() > summed_rows(rows).len(),
                "the shares wrote rows of the same windows and groups, each its own"
            );
        }
    }
    let lost = serve.log().matches("A worker stopped heartbeating").count();
    assert!(lost >= 2, "each kill's worker was declared lost ({lost})");
    let tis = instances(&store, &ns).await;
    let mut ids: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["stats~0", "stats~1"], "one task instance per share");
}
