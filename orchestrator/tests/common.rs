//! Shared helpers: the two metadata engines and DAG files written on the fly.

#![allow(dead_code)]

use std::{path::Path, sync::Arc};

use orchestrator::{
    dag::{Dag, parse_dag_file},
    executor::{Executor, ExecutorConfig},
    logs::LogHub,
    store::Store,
};

/// A fresh SQLite store in `dir`.
pub async fn sqlite(dir: &Path) -> Store {
    Store::connect(&format!("sqlite://{}", dir.join("updraft.db").display()))
        .await
        .expect("SQLite store")
}

/// The PostgreSQL store named by UPDRAFT_TEST_POSTGRES_URL (scripts/test starts one).
pub async fn postgres() -> Store {
    let url = std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("UPDRAFT_TEST_POSTGRES_URL is not set: start PostgreSQL with `eval \"$(scripts/postgres start)\"` or run the whole suite with scripts/test")
    });
    Store::connect(&url).await.unwrap_or_else(|e| panic!("cannot reach PostgreSQL at UPDRAFT_TEST_POSTGRES_URL ({e}): start it with `eval \"$(scripts/postgres start)\"`"))
}

/// A DAG id unique to this test process, so tests can share a PostgreSQL database.
pub fn unique_id(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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
        },
    )
}
