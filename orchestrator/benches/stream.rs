//! `scripts/bench stream`: on the broker, MongoDB and PostgreSQL servers of `scripts/kafka`,
//! `scripts/mongo` and `scripts/postgres`, in one run: the produce rate of `http_to_kafka`
//! from the fake API, the raw consume rate of its topics, the `stream` task's rate with
//! windows and 1 s flushes to MongoDB and to PostgreSQL, and for each the produce -> counted
//! latency.
//!
//! `cargo bench --bench stream` runs the full sizes; under `cargo test` (no `--bench`) tiny
//! sizes, so the suite proves the benchmark still works.

#[path = "support/median.rs"]
mod median;

use median::median;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use futures::TryStreamExt as _;
use mongodb::bson::{Document, doc};
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer as _},
    producer::{FutureProducer, FutureRecord},
};
use tasks::{LogSink, Metrics, OperatorConfig, TaskContext};
use tokio_util::sync::CancellationToken;

/// The allocator of the `orchestrator` binary, so the tasks run here as they do there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Sizes {
    calls: usize,
    per_call: usize,
    latency_records: usize,
    latency_rate: usize,
}

const FULL: Sizes = Sizes {
    calls: 40,
    per_call: 5000,
    latency_records: 10_000,
    latency_rate: 2000,
};

const SMOKE: Sizes = Sizes {
    calls: 2,
    per_call: 200,
    latency_records: 200,
    latency_rate: 400,
};

struct Quiet;

impl LogSink for Quiet {
    fn line(&self, _: &str) {}
}

fn context() -> TaskContext {
    TaskContext {
        cancel: CancellationToken::new(),
        log: Arc::new(Quiet),
        metrics: Metrics::default(),
        connections: Arc::new(tasks::Connections {
            kafka_brokers: std::env::var("UPDRAFT_KAFKA_BROKERS").unwrap_or_default(),
            mongo_uri: std::env::var("UPDRAFT_MONGO_URI").unwrap_or_default(),
            postgres_url: std::env::var("UPDRAFT_TEST_POSTGRES_URL").unwrap_or_default(),
            ..Default::default()
        }),
        share: Default::default(),
        env_passthrough: Arc::new([]),
    }
}

fn env(name: &str, how: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: {how}"))
}

/// Rounds of the stream rate per sink: even, so each sink goes first in half of them (the
/// sink that went second read lower in 8 of 10 rounds on 2026-12-07, by up to 9%).
const ROUNDS: usize = 4;

fn main() -> anyhow::Result<()> {
    orchestrator::alloc::set_up();
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { FULL } else { SMOKE };
    let brokers = env(
        "UPDRAFT_KAFKA_BROKERS",
        "start the broker with `eval \"$(scripts/kafka start)\"`",
    )?;
    let mongo = env(
        "UPDRAFT_MONGO_URI",
        "start MongoDB with `eval \"$(scripts/mongo start)\"`",
    )?;
    let postgres = env(
        "UPDRAFT_TEST_POSTGRES_URL",
        "start PostgreSQL with `eval \"$(scripts/postgres start)\"`",
    )?;
    let ns = format!("bench{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // UPDRAFT_BENCH_ONLY=latency measures produce -> counted alone; =produce the producers.
    let only = std::env::var("UPDRAFT_BENCH_ONLY").unwrap_or_default();
    let latency_only = only == "latency";
    runtime.block_on(async {
        if latency_only {
            let sinks = [Sink::Mongodb(mongo.clone()), Sink::Postgres(postgres.clone())];
            return latencies(&ns, &brokers, &sinks, &sizes).await;
        }
        let raw_first = produce_raw(&brokers, &ns, &sizes).await?;
        let records = produce_from_api(&ns, &sizes, Api::Fake).await?;
        let (paged_records, paged) = produce_from_api(&ns, &sizes, Api::FakePaged).await?;
        let (static_records, alone) = produce_from_api(&ns, &sizes, Api::Static).await?;
        let (_, one_topic) = produce_from_api(&ns, &sizes, Api::StaticOneTopic).await?;
        // The broker's cost per record grows as it fills (BENCHMARKS.md): the raw producer
        // runs first and again last, and the ratios are to the mean of the two.
        let raw_last = produce_raw(&brokers, &ns, &sizes).await?;
        let raw_produce = (raw_first.all_at_once + raw_last.all_at_once) / 2.0;
        let raw_per_call = (raw_first.per_call + raw_last.per_call) / 2.0;
        println!(
            "raw producer first / last: {:.0} / {:.0} records/s; the ratios below are to their mean, {raw_produce:.0}",
            raw_first.all_at_once, raw_last.all_at_once
        );
        println!(
            "http_to_kafka = {:.2} x the raw producer",
            records.1 / raw_produce
        );
        println!(
            "http_to_kafka, the same calls as pages of one task = {:.2} x the raw producer, {:.2} x one task per call",
            paged / raw_produce,
            paged / records.1
        );
        println!(
            "http_to_kafka without the API's cost = {:.2} x the raw producer",
            alone / raw_produce
        );
        println!(
            "http_to_kafka into one topic by a plain key = {:.2} x the raw producer, {:.2} x the fan-out by expression",
            one_topic / raw_produce,
            one_topic / alone
        );
        // Acknowledging each call before the next can be the faster raw figure (BENCHMARKS.md).
        println!(
            "against the raw producer acknowledging each call before the next ({raw_per_call:.0} records/s, mean of first and last): http_to_kafka = {:.2} x, as pages of one task = {:.2} x",
            records.1 / raw_per_call,
            paged / raw_per_call
        );
        if only == "produce" {
            return Ok(());
        }
        // The raw consumer and the stream rounds read the users, paged and static topics
        // (600,000 records at full size, ~6 s a round): a round's rate then spans about five
        // of the task's once-a-second reports, where 200,000 records gave one or two.
        let records = records.0 + paged_records + static_records;
        let raw = consume_raw(&brokers, &ns, records)?;
        let sinks = [Sink::Mongodb(mongo.clone()), Sink::Postgres(postgres.clone())];
        // Rounds alternate which sink goes first, so neither gains from the broker's warm-up.
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            for i in [round % 2, 1 - round % 2] {
                let rate = stream_rate(&ns, records, &sinks[i], round).await?;
                println!("round {}: {} {rate:.0} records/s", round + 1, sinks[i].name());
                rates[i].push(rate);
            }
        }
        for (sink, rates) in sinks.iter().zip(&mut rates) {
            let task = median(rates);
            println!(
                "stream task with 1-minute windows and 1 s flushes to {}, median of {ROUNDS} rounds: {task:.0} records/s = {:.2} x the raw consumer (target >= 0.95)",
                sink.name(),
                task / raw
            );
        }
        latencies(&ns, &brokers, &sinks, &sizes).await
    })
}

/// Produce -> counted on each sink, with 1 s and with 250 ms flushes.
async fn latencies(ns: &str, brokers: &str, sinks: &[Sink], sizes: &Sizes) -> anyhow::Result<()> {
    for (flush, target_ms) in [("1s", 1500), ("250ms", 500)] {
        for sink in sinks {
            latency(ns, brokers, sink, sizes, flush, target_ms).await?;
        }
    }
    Ok(())
}

/// Where the benchmarked stream writes its windows.
enum Sink {
    /// A MongoDB URI.
    Mongodb(String),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Sink {
    fn name(&self) -> &'static str {
        match self {
            Self::Mongodb(_) => "MongoDB",
            Self::Postgres(_) => "PostgreSQL",
        }
    }

    /// The process name (`comm`) of the sink's server processes, whose CPU a round reports.
    fn server_comm(&self) -> &'static str {
        match self {
            Self::Mongodb(_) => "nx-27017",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The sink of a stream config writing into `table` (a collection in MongoDB).
    fn config(&self, ns: &str, table: &str) -> serde_json::Value {
        match self {
            Self::Mongodb(_) => {
                serde_json::json!({"kind": "mongodb", "database": ns, "collection": table})
            }
            Self::Postgres(url) => {
                serde_json::json!({"kind": "postgres", "url": url, "table": table})
            }
        }
    }

    /// (bucket, n) of every window written into `table` by the latency stream.
    async fn bucket_counts(&self, ns: &str, table: &str) -> anyhow::Result<Vec<(usize, usize)>> {
        match self {
            Self::Mongodb(uri) => {
                let client =
                    mongodb::Client::with_uri_str(format!("{uri}/?retryWrites=false")).await?;
                let collection = client.database(ns).collection::<Document>(table);
                let mut cursor = collection.find(doc! {}).await?;
                let mut counts = Vec::new();
                while let Some(document) = cursor.try_next().await? {
                    counts.push((
                        number(&document, "bucket") as usize,
                        number(&document, "n") as usize,
                    ));
                }
                Ok(counts)
            }
            Self::Postgres(url) => {
                let pool = postgres_pool(url).await?;
                let rows: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(
                    format!("SELECT bucket, n FROM {table}"),
                ))
                .fetch_all(&pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(bucket, n)| {
                        let bucket = bucket?.parse::<f64>().ok()? as usize;
                        Some((bucket, n? as usize))
                    })
                    .collect())
            }
        }
    }
}

/// One pool per URL for the whole bench.
async fn postgres_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    static POOL: tokio::sync::OnceCell<sqlx::PgPool> = tokio::sync::OnceCell::const_new();
    Ok(POOL
        .get_or_try_init(|| sqlx::PgPool::connect(url))
        .await?
        .clone())
}

/// The ceiling: the same number of users, rendered beforehand, produced by an rdkafka
/// producer with `http_to_kafka`'s settings (idempotent, acks=all, lz4) to one topic per
/// nationality, waiting for every acknowledgement.
/// The raw producer's rates, records/s: every record sent at once, and each call's records
/// acknowledged before the next call's are sent.
struct RawRates {
    all_at_once: f64,
    per_call: f64,
}

async fn produce_raw(brokers: &str, ns: &str, sizes: &Sizes) -> anyhow::Result<RawRates> {
    let users = fake_randomuser::users(&user_query(sizes.per_call, "raw")?, chrono::Utc::now());
    let records: Vec<(String, String, String)> = users
        .iter()
        .map(|user| {
            let nat = user["nat"].as_str().unwrap_or("xx").to_ascii_lowercase();
            let key = user["login"]["uuid"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (format!("{ns}.raw.{nat}"), key, user.to_string())
        })
        .collect();
    let topics = records.iter().map(|(topic, _, _)| topic.clone()).collect();
    let policy = tasks::kafka::TopicPolicy {
        create: true,
        partitions: 1,
    };
    tasks::kafka::ensure_topics(brokers, &topics, policy)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let producer = tasks::kafka::producer(brokers, Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Untimed, as the tasks' first call: the producer learns its topics' leaders.
    send_all(&producer, records.iter().take(sizes.per_call)).await?;
    let total = sizes.calls * sizes.per_call;
    let cpu = CpuUse::now();
    let started = Instant::now();
    send_all(&producer, records.iter().cycle().take(total)).await?;
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "raw rdkafka producer, same settings and broker: {total} users rendered beforehand, {rate:.0} records/s; {}",
        cpu.per_thousand(total)
    );
    // As a task must: every call's records acknowledged before the next call's are sent.
    let cpu = CpuUse::now();
    let started = Instant::now();
    for _ in 0..sizes.calls {
        send_all(&producer, records.iter().take(sizes.per_call)).await?;
    }
    let per_call = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "the same raw producer, each call of {} acknowledged before the next: {per_call:.0} records/s = {:.2} x all at once; {}",
        sizes.per_call,
        per_call / rate,
        cpu.per_thousand(total)
    );
    Ok(RawRates {
        all_at_once: rate,
        per_call,
    })
}

/// Sends every record of `(topic, key, payload)` and waits for every acknowledgement.
async fn send_all<'a>(
    producer: &FutureProducer,
    records: impl Iterator<Item = &'a (String, String, String)>,
) -> anyhow::Result<()> {
    let mut deliveries = Vec::new();
    for (topic, key, payload) in records {
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((_, back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// CPU time used by this process and by the broker since a point in time: whether a rate
/// is bound by the cores they share (the fake API and the tasks run in this process).
struct CpuUse {
    at: Instant,
    own: Duration,
    broker: Duration,
}

impl CpuUse {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            own: cpu_time("self"),
            broker: broker_cpu(),
        }
    }

    /// "CPU per 1,000 records: this process A ms, the broker B ms; C of D cores busy".
    fn per_thousand(&self, records: usize) -> String {
        let own = cpu_time("self").saturating_sub(self.own);
        let broker = broker_cpu().saturating_sub(self.broker);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / records as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!(
            "CPU per 1,000 records: this process {:.1} ms, the broker {:.1} ms; {:.2} of {cores} cores busy",
            per(own),
            per(broker),
            (own + broker).as_secs_f64() / self.at.elapsed().as_secs_f64()
        )
    }
}

/// User and system CPU time of a process, from /proc (zero where it cannot be read).
fn cpu_time(pid: &str) -> Duration {
    // Linux reports CPU time in clock ticks of 1/100 s.
    Duration::from_millis((stat_field(pid, 11) + stat_field(pid, 12)) * 10)
}

/// A number of /proc/<pid>/stat, counted from the state after the command name (utime is
/// 11, stime 12, the start time 19); zero where it cannot be read.
fn stat_field(pid: &str, index: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(index))
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// CPU time so far of this process, the broker and the sink's server processes.
fn round_cpu(sink: &Sink) -> [Duration; 3] {
    [
        cpu_time("self"),
        broker_cpu(),
        pids_named(sink.server_comm())
            .iter()
            .map(|pid| cpu_time(pid))
            .sum(),
    ]
}

/// The processes whose `comm` is `comm`.
fn pids_named(comm: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (name.trim() == comm).then_some(pid)
        })
        .collect()
}

/// The broker's process (`tansu`, as `scripts/kafka` starts it; the latest started when a
/// stopped one is still exiting), when on this machine.
fn broker_pid() -> Option<String> {
    pids_named("tansu")
        .into_iter()
        .max_by_key(|pid| stat_field(pid, 19))
}

/// The broker's CPU time so far (zero when it is not on this machine).
fn broker_cpu() -> Duration {
    broker_pid().map_or(Duration::ZERO, |pid| cpu_time(&pid))
}

/// The fake API's query for `results` users of `seed`.
fn user_query(results: usize, seed: &str) -> anyhow::Result<fake_randomuser::UserQuery> {
    let params = [("results", results.to_string()), ("seed", seed.to_owned())]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    fake_randomuser::UserQuery::parse(&params).map_err(|e| anyhow::anyhow!(e))
}

/// Keeps a task's log lines with the time each was written, to split a call into phases.
struct Timed {
    started: Instant,
    lines: std::sync::Mutex<Vec<(Instant, String)>>,
}

impl LogSink for Timed {
    fn line(&self, line: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push((Instant::now(), line.to_owned()));
        }
    }
}

impl Timed {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            lines: Default::default(),
        }
    }

    /// The time from the start to the first line starting with `prefix`.
    fn at(&self, prefix: &str) -> Duration {
        self.lines
            .lock()
            .ok()
            .and_then(|lines| {
                lines
                    .iter()
                    .find(|(_, line)| line.starts_with(prefix))
                    .map(|(at, _)| at.duration_since(self.started))
            })
            .unwrap_or_default()
    }
}

/// Where `http_to_kafka` gets its users: the fake API generating them on each call, or one
/// answer generated beforehand and served as it is (the operator's own cost alone).
#[derive(Clone, Copy)]
enum Api {
    Fake,
    /// The fake API's same calls as the pages of one task (`pages`): each page's produce
    /// overlaps the next page's fetch and routing.
    FakePaged,
    Static,
    /// The static answer into one topic named in the config, keyed by a plain path: only
    /// the key is parsed out of each record.
    StaticOneTopic,
}

/// `http_to_kafka` GETs from the fake API and fans out to one topic per nationality; the
/// records produced and their rate.
async fn produce_from_api(ns: &str, sizes: &Sizes, api: Api) -> anyhow::Result<(usize, f64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let router = match api {
        Api::Fake | Api::FakePaged => fake_randomuser::router(),
        Api::Static | Api::StaticOneTopic => {
            let query = user_query(sizes.per_call, "static")?;
            let body = axum::body::Bytes::from(fake_randomuser::response_body(&query));
            axum::Router::new().route(
                "/api/",
                axum::routing::get(move || {
                    let body = body.clone();
                    async move { body }
                }),
            )
        }
    };
    tokio::spawn(async move { axum::serve(listener, router).await });
    let topic = match api {
        Api::Fake => format!("\"{ns}.users.\" + (.nat | ascii_downcase)"),
        Api::FakePaged => format!("\"{ns}.paged.\" + (.nat | ascii_downcase)"),
        Api::Static => format!("\"{ns}.static.\" + (.nat | ascii_downcase)"),
        Api::StaticOneTopic => format!("{ns}.one"),
    };
    let (tasks, pages) = match api {
        Api::FakePaged => (1, sizes.calls),
        _ => (sizes.calls, 1),
    };
    let call = |seed: &str, page: usize, pages: usize| {
        let url = format!(
            "http://{address}/api/?results={}&seed={seed}&page={page}",
            sizes.per_call
        );
        run_http_to_kafka(url, topic.clone(), pages)
    };
    // The raw producer's topics exist and its producer is connected before its clock
    // starts. So too here: a first call, untimed, creates the topics and the tasks' shared
    // producer, as a DAG's first run does once for every run after it.
    let (_, first_elapsed, first_records) = call("first", 1, 1).await?;
    println!(
        "http_to_kafka's first call, untimed: {first_records} records in {} ms (creates the topics, connects the producer)",
        first_elapsed.as_millis()
    );
    let mut total = 0;
    let mut busy = Duration::ZERO;
    // GET, parse and route, produce (every acknowledgement).
    let mut phases = [Duration::ZERO; 3];
    let cpu = CpuUse::now();
    for number in 1..=tasks {
        let (timed, elapsed, records) = call("bench", number, pages).await?;
        busy += elapsed;
        let response = timed.at("Response");
        let routed = timed.at("Selected and routed");
        phases[0] += response;
        phases[1] += routed.saturating_sub(response);
        phases[2] += elapsed.saturating_sub(routed);
        total += records;
    }
    ensure!(total == sizes.calls * sizes.per_call, "produced {total}");
    let rate = total as f64 / busy.as_secs_f64();
    let per_call = |d: Duration| d.as_millis() / tasks as u128;
    let cpu = cpu.per_thousand(total);
    if pages > 1 {
        println!(
            "http_to_kafka from the fake API in one task of {pages} pages of {}: {total} records, {rate:.0} records/s; {cpu}",
            sizes.per_call
        );
        return Ok((total + first_records, rate));
    }
    println!(
        "http_to_kafka from {}: {total} records in {} calls of {}, {rate:.0} records/s (target >= 100,000); per call: GET {} ms, parse and route {} ms, produce {} ms; {cpu}",
        match api {
            Api::Fake | Api::FakePaged => "the fake API",
            Api::Static => "one answer generated beforehand",
            Api::StaticOneTopic =>
                "one answer generated beforehand, into one topic by a plain key (.login.uuid)",
        },
        sizes.calls,
        sizes.per_call,
        per_call(phases[0]),
        per_call(phases[1]),
        per_call(phases[2]),
    );
    Ok((total + first_records, rate))
}

/// Runs one `http_to_kafka` task of `pages` pages from `url` into `topic`: its log lines
/// with their times, how long it took and the records it produced.
async fn run_http_to_kafka(
    url: String,
    topic: String,
    pages: usize,
) -> anyhow::Result<(Arc<Timed>, Duration, usize)> {
    let config: OperatorConfig = serde_json::from_value(serde_json::json!({
        "operator": "http_to_kafka",
        "url": url,
        "key": ".login.uuid",
        "topic": topic,
        "partitions": 1,
        "pages": pages,
    }))?;
    let timed = Arc::new(Timed::new());
    let ctx = TaskContext {
        log: timed.clone(),
        ..context()
    };
    let result = config
        .build()?
        .execute(&ctx)
        .await
        .map_err(|e| anyhow::anyhow!("http_to_kafka: {e}"))?;
    let elapsed = timed.started.elapsed();
    let records = result["records"].as_u64().context("records")? as usize;
    Ok((timed, elapsed, records))
}

/// The topics the raw consumer and the stream task read: three producers' users.
fn read_topics(ns: &str) -> String {
    format!("^{ns}\\.(users|paged|static)\\..*")
}

/// An rdkafka consumer that only counts the records of those topics.
fn consume_raw(brokers: &str, ns: &str, expected: usize) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{ns}.raw"))
        // The stream task's fetch setting, so both read the broker the same way.
        .set("fetch.wait.max.ms", "100")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&read_topics(ns)])?;
    let mut count = 0;
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    while count < expected {
        ensure!(
            Instant::now() < deadline,
            "raw consumer read {count} of {expected}"
        );
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            count += 1;
        }
    }
    let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    let rate = count as f64 / seconds.max(1e-6);
    println!("raw rdkafka consumer (counts only): {count} records, {rate:.0} records/s");
    Ok(rate)
}

fn stream_config(
    topics: &str,
    group: &str,
    flush_interval: &str,
    window: serde_json::Value,
    sink: serde_json::Value,
) -> anyhow::Result<OperatorConfig> {
    Ok(serde_json::from_value(serde_json::json!({
        "operator": "stream",
        "topics": [topics],
        "group_id": group,
        "flush_interval": flush_interval,
        "window": window,
        "sink": sink,
    }))?)
}

/// The stream task over the same topics: records per second from its first record to the last.
async fn stream_rate(ns: &str, expected: usize, sink: &Sink, round: usize) -> anyhow::Result<f64> {
    let group = format!("{ns}_stats_{}_{round}", sink.name().to_ascii_lowercase());
    let config = stream_config(
        &read_topics(ns),
        &group,
        "1s",
        serde_json::json!({
            "size": "1m",
            "allowed_lateness": "1h",
            "group_by": {"country": ".location.country", "gender": ".gender"},
            "aggregates": {"users": "count", "avg_age": {"avg": ".dob.age"}},
        }),
        sink.config(ns, &group),
    )?;
    let ctx = context();
    let metrics = ctx.metrics.clone();
    let cancel = ctx.cancel.clone();
    let operator = config.build()?;
    let cpu_before = round_cpu(sink);
    let task = tokio::spawn(async move { operator.execute(&ctx).await });
    // Metrics are published once a second, each exact when published: the rate is taken
    // between the first report that shows records and the last one before all were read (the
    // report showing them all comes up to a second after the last record).
    let mut reports: Vec<(Instant, usize)> = Vec::new();
    // Each flush's duration (first half on the task's loop, then its writes while the task
    // reads on) while records were being read.
    let mut flushes: Vec<u64> = Vec::new();
    let mut flushes_seen = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = metrics.stream().unwrap_or_default();
        let seen = now.records_in as usize;
        if seen >= expected {
            break;
        }
        if seen > 0 && reports.last().is_none_or(|(_, last)| *last != seen) {
            reports.push((Instant::now(), seen));
        }
        if now.flushes != flushes_seen {
            flushes_seen = now.flushes;
            flushes.push(now.last_flush_ms);
        }
        ensure!(
            Instant::now() < deadline,
            "stream task read {seen} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ended = Instant::now();
    // Before the task stops: PostgreSQL's backends of its connections exit with them.
    let cpu_after = round_cpu(sink);
    let rate = match (reports.first(), reports.last()) {
        (Some((t0, n0)), Some((t1, n1))) if n1 > n0 => {
            (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
        }
        (Some((t0, n0)), _) => (expected - n0) as f64 / ended.duration_since(*t0).as_secs_f64(),
        _ => 0.0,
    };
    cancel.cancel();
    task.await?.map_err(|e| anyhow::anyhow!("stream: {e}"))?;
    let [own, broker, server] = [0, 1, 2]
        .map(|i| cpu_after[i].saturating_sub(cpu_before[i]).as_secs_f64() * 1e6 / expected as f64);
    println!(
        "  {} flushes ended while reading, {} ms from start to end in all: {flushes:?} ms; CPU per 1,000 records: this process {own:.1} ms, the broker {broker:.1} ms, {} {server:.1} ms",
        flushes.len(),
        flushes.iter().sum::<u64>(),
        sink.server_comm()
    );
    Ok(rate)
}

/// Records produced at a steady rate to one partition, counted by a live stream task in
/// buckets of 100: a record is counted when its bucket's count in the sink passes its rank.
async fn latency(
    ns: &str,
    brokers: &str,
    sink: &Sink,
    sizes: &Sizes,
    flush: &str,
    target_ms: u64,
) -> anyhow::Result<()> {
    let suffix = format!("{}_{flush}", sink.name().to_ascii_lowercase());
    let topic = format!("{ns}.latency.{suffix}");
    let group = format!("{ns}_latency_{suffix}");
    let config = stream_config(
        &topic,
        &group,
        flush,
        serde_json::json!({
            "size": "1h",
            "event_time": ".ts",
            "allowed_lateness": "1h",
            "group_by": {"bucket": ".i / 100 | floor"},
            "aggregates": {"n": "count"},
        }),
        sink.config(ns, &group),
    )?;
    tasks::kafka::ensure_topics(
        brokers,
        &[topic.clone()].into_iter().collect(),
        tasks::kafka::TopicPolicy {
            create: true,
            partitions: 1,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = context();
    let cancel = ctx.cancel.clone();
    let operator = config.build()?;
    let task = tokio::spawn(async move { operator.execute(&ctx).await });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "0")
        .create()?;
    let total = sizes.latency_records;
    let start = Instant::now();
    let mut produced_at = vec![Duration::ZERO; total];
    let mut counted_at: Vec<Option<Duration>> = vec![None; total];
    let mut sent = 0;
    let mut deliveries = Vec::new();
    let deadline = Duration::from_secs(120);
    while counted_at.iter().any(Option::is_none) {
        let due = ((start.elapsed().as_secs_f64() * sizes.latency_rate as f64) as usize).min(total);
        while sent < due {
            let payload = serde_json::json!({"i": sent, "ts": 0}).to_string();
            produced_at[sent] = start.elapsed();
            deliveries.push(
                producer
                    .send_result(FutureRecord::<(), _>::to(&topic).payload(&payload))
                    .map_err(|(e, _)| e)?,
            );
            sent += 1;
        }
        let counts = sink.bucket_counts(ns, &group).await?;
        let now = start.elapsed();
        for (bucket, n) in counts {
            for rank in 0..n.min(100) {
                let i = bucket * 100 + rank;
                if i < total && counted_at[i].is_none() {
                    counted_at[i] = Some(now);
                }
            }
        }
        ensure!(
            start.elapsed() < deadline,
            "records still uncounted after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for delivery in deliveries {
        let _ = delivery.await;
    }
    cancel.cancel();
    task.await?.map_err(|e| anyhow::anyhow!("stream: {e}"))?;
    let mut latencies: Vec<Duration> = counted_at
        .iter()
        .zip(&produced_at)
        .map(|(counted, produced)| counted.unwrap_or_default().saturating_sub(*produced))
        .collect();
    latencies.sort();
    let at = |p: f64| latencies[((p / 100.0) * (latencies.len() - 1) as f64).round() as usize];
    println!(
        "produce -> counted in {}, {total} records at {}/s, {flush} flushes: p50 {} ms, p99 {} ms, max {} ms (polled every ~20 ms) (target p99 < {target_ms} ms)",
        sink.name(),
        sizes.latency_rate,
        at(50.0).as_millis(),
        at(99.0).as_millis(),
        at(100.0).as_millis(),
    );
    Ok(())
}

fn number(document: &Document, key: &str) -> i64 {
    match document.get(key) {
        Some(mongodb::bson::Bson::Int64(n)) => *n,
        Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
        Some(mongodb::bson::Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}
