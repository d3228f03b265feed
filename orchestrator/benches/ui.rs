//! `scripts/bench ui`: the web UI's server time on a big SQLite store (a DAG page for a DAG with
//! 10 tasks and 10,000 runs; the DAG list with 500 DAGs) and the latency of the live log
//! (a task printing a line every 10 ms, read back over the SSE endpoint).
//!
//! Requests go through the real router and backend in-process (`oneshot`): the figures are
//! server time, without the network. Under `cargo test` it runs tiny sizes once.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use axum::{body::Body, http::Request};
use futures::StreamExt;
use orchestrator::{
    dag::DagBag,
    executor::{Executor, ExecutorConfig},
    logs::LogHub,
    scheduler::{Heartbeat, new_manual_run},
    store::Store,
    web::WebBackend,
};
use tower::ServiceExt;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Sizes {
    runs: usize,
    dags: usize,
    requests: usize,
    log_lines: usize,
    triggers: usize,
    viewers: usize,
    triggers_per_second: u64,
    load_seconds: u64,
}

const FULL: Sizes = Sizes {
    runs: 10_000,
    dags: 500,
    requests: 200,
    log_lines: 500,
    triggers: 100,
    viewers: 200,
    triggers_per_second: 20,
    load_seconds: 60,
};

const SMOKE: Sizes = Sizes {
    runs: 30,
    dags: 5,
    requests: 3,
    log_lines: 10,
    triggers: 3,
    viewers: 3,
    triggers_per_second: 2,
    load_seconds: 2,
};

fn main() -> anyhow::Result<()> {
    orchestrator::alloc::set_up();
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(&sizes))?;
    runtime.block_on(load::run(&sizes))
}

#[path = "ui/load.rs"]
mod load;

fn big_dag() -> String {
    let mut text = String::from("[dag]\nid = \"big\"\n");
    for i in 0..10 {
        text.push_str(&format!("[[task]]\nid = \"t{i}\"\noperator = \"noop\"\n"));
        if i > 0 {
            text.push_str(&format!("upstream = [\"t{}\"]\n", i - 1));
        }
    }
    text
}

const TALK: &str = "[dag]\nid = \"talk\"\n[dag.params]\nlines = 10\n[[task]]\nid = \"say\"\noperator = \"shell\"\ncommand = 'for i in $(seq 1 \"$LINES\"); do date +%s%N; sleep 0.01; done'\nenv = { LINES = \"{{ params.lines }}\" }\n";

async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags)?;
    std::fs::write(dags.join("big.toml"), big_dag())?;
    std::fs::write(dags.join("talk.toml"), TALK)?;
    for i in 0..sizes.dags {
        std::fs::write(
            dags.join(format!("d{i:03}.toml")),
            format!(
                "[dag]\nid = \"d{i:03}\"\nschedule = \"@daily\"\ntags = [\"bench\"]\n[[task]]\nid = \"a\"\noperator = \"noop\"\n"
            ),
        )?;
    }
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("u.db").display())).await?;
    let bag = Arc::new(DagBag::load(&dags)?);
    anyhow::ensure!(bag.errors.is_empty(), "bench DAGs: {:?}", bag.errors);
    let seeded = Instant::now();
    seed_runs(&store, &bag, "big", sizes.runs).await?;
    for i in 0..sizes.dags {
        seed_runs(&store, &bag, &format!("d{i:03}"), 25).await?;
    }
    println!(
        "seeded {} runs of `big` (10 tasks) and 25 runs of each of {} DAGs in {:.1} s",
        sizes.runs,
        sizes.dags,
        seeded.elapsed().as_secs_f64()
    );
    let logs = LogHub::new(dir.path().join("logs"));
    let executor = Executor::new(store.clone(), logs.clone(), ExecutorConfig::default());
    let (_bags_tx, bags) = tokio::sync::watch::channel(bag.clone());
    let backend = WebBackend::new(
        store.clone(),
        bags,
        logs,
        Some(executor.clone()),
        Heartbeat::default(),
        Duration::from_secs(5),
    );
    let app = ui::router(
        Arc::new(backend),
        ui::UiConfig {
            public_read: true,
            ..ui::UiConfig::default()
        },
    );
    page_times(
        &app,
        "DAG page (grid of 25 runs, graph, history)",
        "/dags/big",
        sizes.requests,
    )
    .await?;
    page_times(
        &app,
        "DAG grid partial (live refresh)",
        "/dags/big/live",
        sizes.requests,
    )
    .await?;
    page_times(
        &app,
        "API dagRuns (25 of them)",
        "/api/v1/dags/big/dagRuns?limit=25",
        sizes.requests,
    )
    .await?;
    page_times(
        &app,
        &format!("DAG list, {} DAGs on one page", sizes.dags + 2),
        "/dags?limit=500",
        sizes.requests.min(50),
    )
    .await?;
    log_latency(&app, &store, &executor, &bag, sizes.log_lines).await?;
    trigger_to_event(&app, &store, &bag, sizes.triggers).await
}

/// A run created in the store -> its `run` event on the pages' SSE stream.
async fn trigger_to_event(
    app: &axum::Router,
    store: &Store,
    bag: &DagBag,
    triggers: usize,
) -> anyhow::Result<()> {
    let response = app
        .clone()
        .oneshot(Request::get("/live/events").body(Body::empty())?)
        .await?;
    let mut events = response.into_body().into_data_stream();
    let dag = bag
        .get("d000")
        .or_else(|| bag.get("big"))
        .context("a DAG")?;
    let mut times = Vec::new();
    for i in 0..triggers {
        let mut new = new_manual_run(&dag, serde_json::Map::new(), None);
        new.run_id = format!("{}_{i}", new.run_id);
        let started = Instant::now();
        store.create_run(&new, &dag.new_task_instances()).await?;
        let wanted = format!("\"run_id\":\"{}\"", new.run_id);
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .context("no live event within 5 s")?
                .context("the live stream ended")??;
            if String::from_utf8_lossy(&chunk).contains(&wanted) {
                break;
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "new run -> its event on /live/events: {triggers} runs, p50 {:.2} ms, p99 {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    Ok(())
}

async fn seed_runs(store: &Store, bag: &DagBag, dag_id: &str, count: usize) -> anyhow::Result<()> {
    let dag = bag.get(dag_id).context("a bench DAG")?;
    let start = chrono::Utc::now() - chrono::Duration::hours(count as i64);
    for i in 0..count {
        let mut new = new_manual_run(&dag, serde_json::Map::new(), None);
        new.logical_date = start + chrono::Duration::hours(i as i64);
        new.run_id = format!("manual__{}", new.logical_date.to_rfc3339());
        store.create_run(&new, &dag.new_task_instances()).await?;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn page_times(
    app: &axum::Router,
    what: &str,
    uri: &str,
    requests: usize,
) -> anyhow::Result<()> {
    let mut times = Vec::with_capacity(requests);
    let mut bytes = 0;
    for _ in 0..requests {
        let started = Instant::now();
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty())?)
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{uri}: {}",
            response.status()
        );
        bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await?
            .len();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{what}: {requests} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} KB)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        bytes / 1024
    );
    Ok(())
}

/// A task prints `date +%s%N` every 10 ms; the SSE follower's receive time minus that stamp.
async fn log_latency(
    app: &axum::Router,
    store: &Store,
    executor: &Executor,
    bag: &DagBag,
    lines: usize,
) -> anyhow::Result<()> {
    let dag = bag.get("talk").context("the talk DAG")?;
    let mut conf = serde_json::Map::new();
    conf.insert("lines".into(), lines.into());
    let new = new_manual_run(&dag, conf, Some(executor.owner().to_owned()));
    let run = store
        .create_run(&new, &dag.new_task_instances())
        .await?
        .context("a new run")?;
    let uri = format!("/dags/talk/runs/{}/tasks/say/logs/1/stream", run.run_id);
    let response = app
        .clone()
        .oneshot(Request::get(&uri).body(Body::empty())?)
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{uri}: {}",
        response.status()
    );
    let driver = {
        let (executor, dag, run) = (executor.clone(), dag.clone(), run.clone());
        tokio::spawn(async move { executor.drive_run(dag, run).await })
    };
    let mut body = response.into_body().into_data_stream();
    let mut latencies = Vec::new();
    let mut pending = String::new();
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(60)
        + Duration::from_millis(20 * lines as u64);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
        let received = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        pending.push_str(&String::from_utf8_lossy(&chunk?));
        let done = pending.contains("event: end");
        for line in pending.lines().filter_map(|l| l.strip_prefix("data: ")) {
            // Only the task's own lines: nanoseconds since the epoch.
            let stamp = line.rsplit(' ').next().and_then(|s| s.parse::<i64>().ok());
            if let Some(stamp) = stamp.filter(|ns| *ns > 1_000_000_000_000_000_000) {
                latencies.push((received - stamp) as f64 / 1e6);
            }
        }
        pending.clear();
        if done {
            break;
        }
    }
    driver.await??;
    anyhow::ensure!(
        latencies.len() == lines,
        "read {} of {lines} lines",
        latencies.len()
    );
    latencies.sort_by(f64::total_cmp);
    println!(
        "live log: {lines} lines printed every 10 ms; printed -> received over SSE p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    Ok(())
}
