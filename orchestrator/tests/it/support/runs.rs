//! The two metadata engines, DAG files written on the fly, and creating and driving runs
//! in this process (every wait bounded).

use std::{path::Path, sync::Arc, time::Duration};

use orchestrator::{
    dag::{Dag, parse_dag_file},
    executor::{Executor, ExecutorConfig, RunOutcome},
    logs::LogHub,
    scheduler::new_manual_run,
    store::{DagRunRow, RunFilter, Store, TaskInstanceRow, TaskKey},
};
use tokio::task::JoinHandle;

/// What driving a run in the background gives back.
pub type Driver = JoinHandle<Result<RunOutcome, orchestrator::executor::ExecutorError>>;

/// Drives `run` in the background (a stream runs until stopped).
pub fn drive_in_background(executor: &Executor, dag: &Arc<Dag>, run: &DagRunRow) -> Driver {
    let (executor, dag, run) = (executor.clone(), dag.clone(), run.clone());
    tokio::spawn(async move { executor.drive_run(dag, run).await })
}

/// Stops `run` and waits (30 s at most) for its driver to finish; the run's outcome.
pub async fn stop_and_wait(executor: &Executor, run: &DagRunRow, driver: Driver) -> RunOutcome {
    assert!(
        executor.stop_run(&run.key()),
        "{} is not running",
        run.run_id
    );
    tokio::time::timeout(std::time::Duration::from_secs(30), driver)
        .await
        .expect("the run stops within 30 s of being stopped")
        .unwrap()
        .unwrap()
}

/// A fresh SQLite store in `dir`.
pub async fn sqlite(dir: &Path) -> Store {
    Store::connect(&format!("sqlite://{}", dir.join("updraft.db").display()))
        .await
        .expect("SQLite store")
}

/// The task instances of the one run of `dag_id` that the CLI made in `dir`.
pub async fn task_instances_of_only_run(dir: &Path, dag_id: &str) -> Vec<TaskInstanceRow> {
    let store = sqlite(dir).await;
    let filter = RunFilter {
        dag_id: Some(dag_id.into()),
        ..RunFilter::default()
    };
    let run = store.list_runs(&filter).await.unwrap().remove(0);
    store.task_instances(dag_id, &run.run_id).await.unwrap()
}

/// The PostgreSQL store named by UPDRAFT_TEST_POSTGRES_URL (scripts/test starts one).
pub async fn postgres() -> Store {
    let url = std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("UPDRAFT_TEST_POSTGRES_URL is not set: start PostgreSQL with `eval \"$(scripts/postgres start)\"` or run the whole suite with scripts/test")
    });
    Store::connect(&url).await.unwrap_or_else(|e| panic!("cannot reach PostgreSQL at UPDRAFT_TEST_POSTGRES_URL ({e}): start it with `eval \"$(scripts/postgres start)\"`"))
}

pub fn dag(source: &str) -> Arc<Dag> {
    Arc::new(parse_dag_file(Path::new("test.toml"), source).unwrap_or_else(|e| panic!("{e}")))
}

pub fn executor(store: Store, logs: &Path) -> Executor {
    Executor::new(
        store,
        LogHub::new(logs),
        ExecutorConfig {
            parallelism: 8,
            grace_period: std::time::Duration::from_secs(2),
            connections: Arc::new(connections()),
            ..Default::default()
        },
    )
}

/// The broker and server scripts/test started, where tasks connect by default (the binary reads
/// the same variables).
pub fn connections() -> tasks::Connections {
    let defaults = tasks::Connections::default();
    tasks::Connections {
        kafka_brokers: std::env::var("UPDRAFT_KAFKA_BROKERS").unwrap_or(defaults.kafka_brokers),
        mongo_uri: std::env::var("UPDRAFT_MONGO_URI").unwrap_or(defaults.mongo_uri),
        postgres_url: std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or(defaults.postgres_url),
        mysql_url: std::env::var("UPDRAFT_TEST_MYSQL_URL").unwrap_or(defaults.mysql_url),
    }
}

/// Creates a manual run of `dag` with `conf`, owned (already running) by `executor`.
pub async fn start_run(executor: &Executor, dag: &Arc<Dag>, conf: serde_json::Value) -> DagRunRow {
    let new = new_manual_run(
        dag,
        conf.as_object().cloned().unwrap_or_default(),
        Some(executor.owner().into()),
    );
    executor
        .store()
        .create_run(&new, &dag.new_task_instances())
        .await
        .expect("the run is stored")
        .expect("no run with that id yet")
}

/// Drives `run` to its end, failing after `limit`.
pub async fn drive_to_end(
    executor: &Executor,
    dag: &Arc<Dag>,
    run: &DagRunRow,
    limit: Duration,
) -> RunOutcome {
    tokio::time::timeout(limit, executor.drive_run(dag.clone(), run.clone()))
        .await
        .unwrap_or_else(|_| panic!("{} did not end within {limit:?}", run.run_id))
        .expect("the executor drives the run")
}

/// The key of `task_id` in `run`.
pub fn task_key(run: &DagRunRow, task_id: &str) -> TaskKey {
    TaskKey {
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: task_id.into(),
    }
}

/// A DAG file of the repo's `dags/` folder with its names made unique to this test.
pub fn repo_dag(file: &str, renames: &[(&str, &str)]) -> Arc<Dag> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dags")
        .join(file);
    let mut source = std::fs::read_to_string(&path).unwrap();
    for (from, to) in renames {
        assert!(source.contains(from), "{file} has no {from:?}");
        source = source.replace(from, to);
    }
    Arc::new(parse_dag_file(&path, &source).unwrap_or_else(|e| panic!("{e}")))
}

/// A temporary folder with a fresh SQLite store and an executor logging into it (keep the
/// folder alive as long as the store).
pub async fn harness() -> (tempfile::TempDir, Store, Executor) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = sqlite(dir.path()).await;
    let executor = executor(store.clone(), &dir.path().join("logs"));
    (dir, store, executor)
}

/// Starts a manual run of `dag` and drives it in the background (a stream runs until stopped).
pub async fn start_in_background(executor: &Executor, dag: &Arc<Dag>) -> (DagRunRow, Driver) {
    let run = start_run(executor, dag, serde_json::json!({})).await;
    let driver = drive_in_background(executor, dag, &run);
    (run, driver)
}

/// Runs the one-task `dag` with `conf` `times` times, each to success.
pub async fn run_to_success(dag: &Arc<Dag>, conf: serde_json::Value, times: usize) {
    for _ in 0..times {
        let (outcome, task) = run_single_task_with(dag, conf.clone()).await;
        assert_eq!(
            outcome,
            RunOutcome::Finished(orchestrator::store::RunState::Success),
            "{:?}",
            task.error
        );
    }
}

/// Runs the one-task `dag` to its end (60 s at most) on a fresh store: the outcome and the
/// task instance.
pub async fn run_single_task(dag: &Arc<Dag>) -> (RunOutcome, orchestrator::store::TaskInstanceRow) {
    run_single_task_with(dag, serde_json::json!({})).await
}

/// [`run_single_task`] with a conf.
pub async fn run_single_task_with(
    dag: &Arc<Dag>,
    conf: serde_json::Value,
) -> (RunOutcome, orchestrator::store::TaskInstanceRow) {
    let (_dir, store, executor) = harness().await;
    let run = start_run(&executor, dag, conf).await;
    let outcome = drive_to_end(&executor, dag, &run, Duration::from_secs(60)).await;
    let instance = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .remove(0);
    (outcome, instance)
}

/// A new, empty PostgreSQL database on the server of UPDRAFT_TEST_POSTGRES_URL, for tests whose
/// processes must not see other tests' runs (a scheduler takes every queued run it finds);
/// its URL.
pub async fn fresh_postgres_database(prefix: &str) -> String {
    let url = std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("UPDRAFT_TEST_POSTGRES_URL is not set: start PostgreSQL with `eval \"$(scripts/postgres start)\"` or run the whole suite with scripts/test")
    });
    let name = super::unique(prefix).to_lowercase();
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url} ({e}): start it with `eval \"$(scripts/postgres start)\"`"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot create database {name} ({e}): scripts/postgres gives its user CREATEDB")
        });
    admin.close().await;
    let (server, _) = url
        .rsplit_once('/')
        .expect("a database URL ends in /<database>");
    format!("{server}/{name}")
}
