//! What the integration tests share. Here: unique names, free ports and bounded waits. In the
//! submodules: metadata stores, DAGs and driving runs (`runs`), `orchestrator serve` as a
//! process with a guard (`serve`), the Kafka broker (`kafka`), MongoDB (`mongo`), the SQL
//! sinks' PostgreSQL and MariaDB (`sql`), servers a
//! test owns alone so it can stop them (`servers`), and expected window contents (`windows`).
//! `scripts/test` starts the services; a test never skips when one is missing: it fails and
//! says how to start it.

pub mod kafka;
pub mod mongo;
pub mod runs;
pub mod serve;
pub mod servers;
pub mod sql;
pub mod windows;

use std::time::{Duration, Instant};

pub use kafka::*;
pub use mongo::*;
pub use runs::*;
pub use windows::*;

/// A name unique to this test process and call, usable as a DAG id, topic or database.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loopback port nothing listens on at the moment.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Waits until `check` holds, polling every 200 ms; fails naming `what` after `limit`. A
/// check that meets a transient error (a server restarting) answers false and is asked again.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`eventually`] for tests without a runtime.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (`limit` at most) until something listens on `port`.
pub async fn wait_port(port: u16, what: &str, limit: Duration) {
    eventually(
        &format!("{what} to listen on port {port}"),
        limit,
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await
}
