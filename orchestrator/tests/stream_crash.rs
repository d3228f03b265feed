//! Exactly once across crashes: `orchestrator serve` is SIGKILLed 5 times while a stream task
//! aggregates 100,000 records into MongoDB; once the consumer lag is zero every window
//! document equals the ground truth computed here.

mod services;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use mongodb::bson::Document;

const RECORDS: usize = 100_000;
const KILLS: usize = 5;

fn spawn_serve(dir: &Path) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--grace-period", "5s"])
        .env("UPDRAFT_DAGS_FOLDER", dir.join("dags"))
        .env("UPDRAFT_DB", format!("sqlite://{}", dir.join("updraft.db").display()))
        .env("UPDRAFT_LOGS_FOLDER", dir.join("logs"))
        .env("UPDRAFT_KAFKA_BROKERS", services::kafka_brokers())
        .env("UPDRAFT_MONGO_URI", services::mongo_uri())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A moment between 1.5 and 4 s, from a generator seeded by the clock (printed for replay).
fn random_pause(state: &mut u64) -> Duration {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Duration::from_millis(1500 + (*state >> 33) % 2500)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_five_times_and_the_aggregates_stay_exact() {
    let ns = services::unique("crash");
    let topic = format!("{ns}.events");
    services::create_topic(&topic, 4).await;
    let records = services::synthetic_users(RECORDS, 1_700_000_000);
    let ends = services::produce(&topic, &records).await;
    let truth: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, payload)| serde_json::from_str(payload).unwrap())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(
        dir.path().join("dags/crash.toml"),
        services::stats_dag_source(&ns, &topic, ""),
    )
    .unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill schedule seed {seed}");
    let mut serve = spawn_serve(dir.path());
    for _ in 0..KILLS {
        tokio::time::sleep(random_pause(&mut seed)).await;
        serve.kill().unwrap();
        serve.wait().unwrap();
        serve = spawn_serve(dir.path());
    }
    let stats = services::mongo(&ns).await.collection::<Document>("stats");
    let started = Instant::now();
    loop {
        let lag = tokio::task::spawn_blocking({
            let (ns, ends) = (ns.clone(), ends.clone());
            move || services::group_lag(&ns, &ends)
        })
        .await
        .unwrap();
        if lag == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the consumer lag is still {lag} after 240 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    services::assert_exact(&services::all_documents(&stats).await, &truth);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = serve.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
}
