//! `scripts/bench ui` (second part), on tansu and nx-27017: what watching a stream costs it,
//! and how soon a results page hears of a flush.
//!
//! 1. The stream rate (records per second, first to last record) of a windowed stream task
//!    into MongoDB over a topic filled beforehand, with nobody watching and with 1,000 viewers
//!    on `/streams/events` and 200 on its results' events (SSE through the real router,
//!    in-process). Rounds alternate; the ratio compares the medians. Each round also prints
//!    the process's CPU time and RSS (the stream task, the router and the viewers are one
//!    process: the difference between rounds is what watching costs).
//! 2. Flush -> results push: with records arriving steadily, the time from the end of each
//!    flush (`last_flush_at`) to the rendered results arriving at an SSE reader.
//!
//! Under `cargo test` it runs tiny sizes once.

#[path = "support/median.rs"]
mod median;

use median::median;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use axum::{body::Body, http::Request};
use futures::StreamExt as _;
use orchestrator::{
    dag::DagBag,
    executor::{Executor, ExecutorConfig},
    logs::LogHub,
    scheduler::{Heartbeat, new_manual_run},
    store::{DagRunRow, Store, TaskKey},
    web::WebBackend,
};
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use tower::ServiceExt as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Sizes {
    records: usize,
    rounds: usize,
    streams_viewers: usize,
    results_viewers: usize,
    flushes: usize,
}

const FULL: Sizes = Sizes {
    records: 1_000_000,
    rounds: 3,
    streams_viewers: 1_000,
    results_viewers: 200,
    flushes: 60,
};

const SMOKE: Sizes = Sizes {
    records: 2_000,
    rounds: 1,
    streams_viewers: 2,
    results_viewers: 2,
    flushes: 3,
};

fn env(name: &str, how: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: {how}"))
}

fn main() -> anyhow::Result<()> {
    orchestrator::alloc::set_up();
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(&sizes))
}

/// Everything one measurement needs: a store, an executor, the UI router over them.
struct Bench {
    ns: String,
    brokers: String,
    executor: Executor,
    app: axum::Router,
    bag: Arc<DagBag>,
    _dir: tempfile::TempDir,
}

fn stream_dag(ns: &str, id: &str) -> String {
    format!(
        r#"[dag]
id = "{id}"
schedule = "@continuous"
[[task]]
id = "stats"
operator = "stream"
topics = ["{ns}.users"]
group_id = "{ns}.{id}"
flush_interval = "1s"
[task.window]
size = "1m"
event_time = ".ts"
allowed_lateness = "1h"
group_by = {{ country = ".country", gender = ".gender" }}
aggregates = {{ users = "count", avg_age = {{ avg = ".age" }} }}
[task.sink]
kind = "mongodb"
database = "{ns}"
collection = "{id}"
"#
    )
}

async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let brokers = env("UPDRAFT_KAFKA_BROKERS", "scripts/bench ui starts tansu")?;
    let mongo = env("UPDRAFT_MONGO_URI", "scripts/bench ui starts nx-27017")?;
    let ns = format!("sui{}", std::process::id());
    let ids: Vec<String> = (0..sizes.rounds * 2 + 1).map(|i| format!("s{i}")).collect();
    let dir = tempfile::tempdir()?;
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags)?;
    for id in &ids {
        std::fs::write(dags.join(format!("{id}.toml")), stream_dag(&ns, id))?;
    }
    let bag = Arc::new(DagBag::load(&dags)?);
    anyhow::ensure!(bag.errors.is_empty(), "bench DAGs: {:?}", bag.errors);
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("u.db").display())).await?;
    let executor = Executor::new(
        store.clone(),
        LogHub::new(dir.path().join("logs")),
        ExecutorConfig {
            connections: Arc::new(tasks::Connections {
                kafka_brokers: brokers.clone(),
                mongo_uri: mongo,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let (_bags_tx, bags) = tokio::sync::watch::channel(bag.clone());
    let backend = WebBackend::new(
        store,
        bags,
        executor.logs().clone(),
        Some(executor.clone()),
        Heartbeat::default(),
        Duration::from_secs(5),
    );
    let bench = Bench {
        ns: ns.clone(),
        brokers,
        app: ui::router(
            Arc::new(backend),
            ui::UiConfig {
                public_read: true,
                // The viewers are in this process: one "client" holding all of them.
                max_live_connections: 10_000,
                max_live_connections_per_client: 10_000,
                ..ui::UiConfig::default()
            },
        ),
        executor,
        bag,
        _dir: dir,
    };
    let topic = format!("{ns}.users");
    let policy = tasks::kafka::TopicPolicy {
        create: true,
        partitions: 3,
    };
    tasks::kafka::ensure_topics(&bench.brokers, &[topic.clone()].into(), policy).await?;
    let filled = Instant::now();
    produce(&bench.brokers, &topic, 0, sizes.records).await?;
    println!(
        "topic {ns}.users filled with {} records in {:.1} s",
        sizes.records,
        filled.elapsed().as_secs_f64()
    );
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    for round in 0..sizes.rounds {
        alone.push(stream_rate(&bench, &ids[round * 2], sizes, (0, 0)).await?);
        let viewers = (sizes.streams_viewers, sizes.results_viewers);
        watched.push(stream_rate(&bench, &ids[round * 2 + 1], sizes, viewers).await?);
    }
    let (alone, watched) = (median(&mut alone), median(&mut watched));
    println!(
        "stream rate, median of {} rounds: {alone:.0} records/s unwatched, {watched:.0} records/s with {} viewers on /streams and {} on its results: {:.3}x",
        sizes.rounds,
        sizes.streams_viewers,
        sizes.results_viewers,
        watched / alone
    );
    flush_to_push(&bench, ids.last().unwrap(), sizes).await
}

/// Produces `count` synthetic users (event times 1 ms apart from `first`) to `topic`.
async fn produce(brokers: &str, topic: &str, first: usize, count: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    const COUNTRIES: &[&str] = &["France", "Spain", "Norway", "India", "Brazil", "Canada"];
    let sends = (first..first + count).map(|i| {
        let payload = serde_json::json!({
            "country": COUNTRIES[i % COUNTRIES.len()],
            "gender": if i % 3 == 0 { "female" } else { "male" },
            "age": 18 + i % 60,
            "ts": 1_700_000_000.0 + i as f64 / 1000.0,
        })
        .to_string();
        let key = i.to_string();
        let producer = producer.clone();
        let topic = topic.to_owned();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))
        }
    });
    let results: Vec<_> = futures::stream::iter(sends)
        .buffer_unordered(10_000)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(())
}

/// Starts the stream DAG `id` and returns its run and the key of its task.
async fn start(bench: &Bench, id: &str) -> anyhow::Result<(DagRunRow, TaskKey)> {
    let dag = bench.bag.get(id).context("bench DAG")?;
    let new = new_manual_run(
        &dag,
        Default::default(),
        Some(bench.executor.owner().into()),
    );
    let run = bench
        .executor
        .store()
        .create_run(&new, &dag.new_task_instances())
        .await?
        .context("a new run")?;
    let executor = bench.executor.clone();
    let driven = run.clone();
    tokio::spawn(async move { executor.drive_run(dag, driven).await });
    let key = TaskKey {
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: "stats".into(),
    };
    Ok((run, key))
}

/// Opens an SSE stream of the router and reads it until aborted.
fn viewer(app: &axum::Router, uri: String) -> tokio::task::JoinHandle<()> {
    let app = app.clone();
    tokio::spawn(async move {
        let Ok(response) = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("a request"))
            .await;
        let mut body = response.into_body().into_data_stream();
        while let Some(Ok(_)) = body.next().await {}
    })
}

/// This process's CPU time (user + system), in seconds.
fn cpu_seconds() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |usage| {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        seconds(usage.user_time()) + seconds(usage.system_time())
    })
}

/// This process's resident memory now, in MB.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Records per second of one stream run over the whole topic, with (streams page, results
/// page) viewers watching.
async fn stream_rate(
    bench: &Bench,
    id: &str,
    sizes: &Sizes,
    (streams_viewers, results_viewers): (usize, usize),
) -> anyhow::Result<f64> {
    let (run, key) = start(bench, id).await?;
    let mut watching = Vec::new();
    for _ in 0..streams_viewers {
        watching.push(viewer(&bench.app, "/streams/events".into()));
    }
    for _ in 0..results_viewers {
        watching.push(viewer(
            &bench.app,
            format!("/dags/{id}/runs/{}/tasks/stats/results/events", run.run_id),
        ));
    }
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let limit = started + Duration::from_secs(600);
    let mut first: Option<(Instant, u64)> = None;
    let last = loop {
        anyhow::ensure!(
            Instant::now() < limit,
            "{id} did not read the topic within 600 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(metrics) = bench.executor.stream_metrics_of(&key) else {
            continue;
        };
        let read = metrics.records_in;
        if read > 0 && first.is_none() {
            first = Some((Instant::now(), read));
        }
        if read >= sizes.records as u64 {
            break Instant::now();
        }
    };
    let (cpu, rss) = (cpu_seconds() - cpu_before, rss_mb());
    bench.executor.stop_run(&run.key());
    for watcher in watching {
        watcher.abort();
    }
    // From the first figures that show records (from the start when the first ones show all).
    let (started, at_start) = first
        .filter(|(_, read)| *read < sizes.records as u64)
        .unwrap_or((started, 0));
    let rate = (sizes.records as u64 - at_start) as f64 / (last - started).as_secs_f64().max(1e-3);
    let seconds = (last - started).as_secs_f64();
    println!(
        "  {id}: {rate:.0} records/s with {streams_viewers} + {results_viewers} viewers; process CPU {cpu:.2} s in {seconds:.2} s ({:.0}%), RSS {rss:.0} MB",
        100.0 * cpu / seconds.max(1e-3)
    );
    Ok(rate)
}

/// With records arriving steadily, the time from each flush's end to its results push.
async fn flush_to_push(bench: &Bench, id: &str, sizes: &Sizes) -> anyhow::Result<()> {
    let topic = format!("{}.users", bench.ns);
    let (run, key) = start(bench, id).await?;
    // Let it catch up with the topic first: only flushes of new records are measured.
    let limit = Instant::now() + Duration::from_secs(600);
    while bench
        .executor
        .stream_metrics_of(&key)
        .is_none_or(|m| m.records_in < sizes.records as u64)
    {
        anyhow::ensure!(Instant::now() < limit, "{id} did not catch up within 600 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let feeding = {
        let (brokers, topic) = (bench.brokers.clone(), topic.clone());
        tokio::spawn(async move {
            for second in 0.. {
                let first = 10_000_000 + second * 200;
                if produce(&brokers, &topic, first, 200).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let response = bench
        .app
        .clone()
        .oneshot(
            Request::get(format!(
                "/dags/{id}/runs/{}/tasks/stats/results/events",
                run.run_id
            ))
            .body(Body::empty())?,
        )
        .await?;
    let mut body = response.into_body().into_data_stream();
    let mut latencies = Vec::new();
    let limit = Instant::now() + Duration::from_secs(sizes.flushes as u64 * 3 + 30);
    while latencies.len() < sizes.flushes {
        anyhow::ensure!(Instant::now() < limit, "only {} pushes", latencies.len());
        let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next()).await? else {
            anyhow::bail!("the results stream ended");
        };
        let received = chrono::Utc::now();
        if !chunk?.windows(11).any(|w| w == b"event: html") {
            continue;
        }
        let flushed = bench
            .executor
            .stream_metrics_of(&key)
            .and_then(|m| m.last_flush_at)
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
            .context("a flush time")?;
        latencies.push(
            (received - flushed.with_timezone(&chrono::Utc))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0,
        );
    }
    feeding.abort();
    bench.executor.stop_run(&run.key());
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "flush -> results pushed to a viewer, {} flushes while 800 records/s arrive: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
