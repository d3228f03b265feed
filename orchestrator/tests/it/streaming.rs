//! The streaming pipelines end to end on the real broker (tansu) and MongoDB server
//! (nx-27017): `random_users` into topics, `user_stats` into MongoDB, bad records.

use crate::support;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use mongodb::bson::Document;
use orchestrator::{dag::parse_dag_file, executor::RunOutcome, store::RunState};
use support::{
    Consumed, assert_exact, minute_of, start_run, stats_dag_source, synthetic_users, task_key,
};

/// Serves the fake API on a free port of this process; its base URL.
async fn fake_api() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, fake_randomuser::router())
            .await
            .unwrap()
    });
    format!("http://{address}/api/")
}

/// (minute start, country, gender) -> (users, sum of ages), computed from the records.
fn ground_truth(records: &[Consumed]) -> BTreeMap<(i64, String, String), (i64, f64)> {
    let mut truth = BTreeMap::new();
    for record in records {
        let user: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        let minute = record.timestamp_ms.div_euclid(60_000) * 60_000;
        let key = (
            minute,
            user["location"]["country"].as_str().unwrap().to_owned(),
            user["gender"].as_str().unwrap().to_owned(),
        );
        let entry = truth.entry(key).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += user["dob"]["age"].as_f64().unwrap();
    }
    truth
}

/// `pages = 3`: three GETs of the API with `page=1..3` set, each page routed whole and
/// produced while the next is fetched; every user of every page arrives once, keyed by uuid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_to_kafka_produces_every_page() {
    let ns = support::unique("pages");
    let api = fake_api().await;
    let _ = support::kafka_brokers();
    let dag = support::dag(&format!(
        r#"
[dag]
id = "{ns}"
[[task]]
id = "fetch"
operator = "http_to_kafka"
url = "{api}?results=150&seed=pages&page=9"
pages = 3
key = ".login.uuid"
topic = "{ns}.paged"
partitions = 1
"#
    ));
    let (outcome, ti) = support::run_single_task(&dag).await;
    assert_eq!(
        outcome,
        RunOutcome::Finished(RunState::Success),
        "{:?}",
        ti.error
    );
    let result = ti.result.unwrap();
    assert_eq!(
        (result["records"].clone(), result["pages"].clone()),
        (450.into(), 3.into())
    );
    let records =
        support::consume_all(&[format!("{ns}.paged")], 450, Duration::from_secs(30)).await;
    let uuids: std::collections::BTreeSet<_> = records.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        (records.len(), uuids.len()),
        (450, 450),
        "three different pages"
    );
    // The pages asked for are 1, 2 and 3 (the URL's own page=9 is replaced), and a page is
    // sent while the one before is still being acknowledged: the topic holds page 1's users,
    // then page 2's, then page 3's, each page in its own order.
    let mut expected = Vec::new();
    for page in 1..=3 {
        let body = reqwest::get(format!("{api}?results=150&seed=pages&page={page}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let users: serde_json::Value = serde_json::from_str(&body).unwrap();
        for user in users["results"].as_array().unwrap() {
            expected.push(user["login"]["uuid"].as_str().map(str::to_owned));
        }
    }
    let produced: Vec<_> = records.iter().map(|r| r.key.clone()).collect();
    assert!(produced == expected, "the topic holds the pages in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_users_to_topics_then_user_stats_into_mongodb() {
    let ns = support::unique("e2e");
    let database = ns.clone();
    let db = support::mongo(&database).await;
    let api = fake_api().await;
    let (_dir, store, executor) = support::harness().await;
    let _ = support::kafka_brokers();

    // 1. random_users: 500 users from the API, fanned out by nationality, keyed by uuid.
    let producer_dag = support::repo_dag(
        "random_users.toml",
        &[("\"users.\"", &format!("\"{ns}.users.\""))],
    );
    let run = start_run(
        &executor,
        &producer_dag,
        serde_json::json!({"api_url": api, "results": 500}),
    )
    .await;
    let outcome =
        support::drive_to_end(&executor, &producer_dag, &run, Duration::from_secs(60)).await;
    let tis = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap();
    let fetch = tis.iter().find(|t| t.task_id == "fetch_users").unwrap();
    assert_eq!(
        outcome,
        RunOutcome::Finished(RunState::Success),
        "{:?}",
        fetch.error
    );
    let result = fetch.result.clone().unwrap();
    assert_eq!(result["records"], 500);
    let topics: Vec<String> = result["topics"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(topics.len() > 5, "users of many nationalities: {topics:?}");
    let records = support::consume_all(&topics, 500, Duration::from_secs(30)).await;
    assert_eq!(records.len(), 500);
    let mut uuids = std::collections::BTreeSet::new();
    for record in &records {
        let user: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        let nat = user["nat"].as_str().unwrap().to_ascii_lowercase();
        assert_eq!(record.topic, format!("{ns}.users.{nat}"));
        assert_eq!(record.key.as_deref(), user["login"]["uuid"].as_str());
        uuids.insert(record.key.clone().unwrap());
        assert_eq!(
            result["topics"][&record.topic].as_u64().unwrap(),
            records.iter().filter(|r| r.topic == record.topic).count() as u64
        );
    }
    assert_eq!(uuids.len(), 500);

    // 2. user_stats: windows by country and gender, and the users by uuid, in MongoDB.
    let stats_dag = support::repo_dag(
        "user_stats.toml",
        &[
            (
                "'^users\\.[a-z]{2}$'",
                &format!("'^{ns}\\.users\\.[a-z]{{2}}$'"),
            ),
            (
                "database = \"updraft\"",
                &format!("database = \"{database}\""),
            ),
            (
                "group_id = \"user_stats.stats\"",
                &format!("group_id = \"{ns}.stats\""),
            ),
            (
                "group_id = \"user_stats.users\"",
                &format!("group_id = \"{ns}.users\""),
            ),
        ],
    );
    let (run, driver) = support::start_in_background(&executor, &stats_dag).await;
    let stats = db.collection::<Document>("user_stats");
    let users = db.collection::<Document>("users");
    support::eventually(
        "live metrics of the stream task",
        Duration::from_secs(60),
        || {
            let metrics = executor.stream_metrics_of(&task_key(&run, "stats"));
            async move {
                metrics.is_some_and(|m| {
                    m.records_in == 500 && !m.lag.is_empty() && m.last_flush_at.is_some()
                })
            }
        },
    )
    .await;
    support::eventually(
        "every user counted in MongoDB",
        Duration::from_secs(60),
        || {
            let (stats, users) = (stats.clone(), users.clone());
            async move {
                let counted: i64 = support::all_documents(&stats)
                    .await
                    .iter()
                    .map(|d| support::int(d, "users"))
                    .sum();
                let stored = users.count_documents(Document::new()).await.unwrap();
                counted == 500 && stored == 500
            }
        },
    )
    .await;
    let truth = ground_truth(&records);
    let documents = support::all_documents(&stats).await;
    assert_eq!(
        documents.len(),
        truth.len(),
        "one document per window and group"
    );
    for document in &documents {
        let key = (
            minute_of(document),
            document.get_str("country").unwrap().to_owned(),
            document.get_str("gender").unwrap().to_owned(),
        );
        let (count, sum_age) = truth
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected document {document}"));
        assert_eq!(support::int(document, "users"), *count, "{document}");
        let avg = support::float(document, "avg_age");
        assert!((avg - sum_age / *count as f64).abs() < 1e-9, "{document}");
    }
    let some_user = users
        .find_one(mongodb::bson::doc! {"_id": uuids.first().unwrap()})
        .await
        .unwrap()
        .expect("users are upserted by login.uuid");
    assert!(some_user.get_document("login").is_ok());

    // /metrics carries the same figures, per task and per partition (the lag once
    // librdkafka's statistics, every 2 s, have reported it).
    let scrape = || async {
        let text = orchestrator::telemetry::render(&store, Some(&executor))
            .await
            .unwrap();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    };
    let of_stats =
        |scrape: &prometheus_parse::Scrape, name: &str| -> Vec<prometheus_parse::Sample> {
            scrape
                .samples
                .iter()
                .filter(|s| {
                    s.metric == name
                        && s.labels.get("dag_id") == Some(run.dag_id.as_str())
                        && s.labels.get("task_id") == Some("stats")
                })
                .cloned()
                .collect()
        };
    support::eventually(
        "the lag per partition in /metrics",
        Duration::from_secs(15),
        || async { !of_stats(&scrape().await, "updraft_stream_lag").is_empty() },
    )
    .await;
    let metrics = scrape().await;
    let records_in = of_stats(&metrics, "updraft_stream_records_in_total");
    assert!(
        matches!(&records_in[..], [s] if s.value == prometheus_parse::Value::Counter(500.0)),
        "{records_in:?}"
    );
    let lag = of_stats(&metrics, "updraft_stream_lag");
    assert!(
        lag.iter()
            .all(|s| s.labels.get("topic").is_some() && s.labels.get("partition").is_some()),
        "{lag:?}"
    );
    let outcome = support::stop_and_wait(&executor, &run, driver).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Stopped));
    assert!(
        executor
            .stream_metrics_of(&task_key(&run, "stats"))
            .is_none(),
        "metrics are withdrawn when the try ends"
    );
    assert_eq!(
        support::group_lag(&format!("{ns}.stats"), &support::ends_of(&records)).await,
        Ok(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_records_go_to_the_dead_letter_topic_and_the_rest_stays_exact() {
    let ns = support::unique("dlq");
    let topic = format!("{ns}.in");
    let dlq = format!("{ns}.dlq");
    support::create_topic(&topic, 2).await;
    let mut records = synthetic_users(2000, 1_700_000_000);
    let mut good = Vec::new();
    for (i, (_, payload)) in records.iter_mut().enumerate() {
        match i % 100 {
            17 => *payload = format!("{{\"broken\": {i}"),
            53 => {
                let mut value: serde_json::Value = serde_json::from_str(payload).unwrap();
                value.as_object_mut().unwrap().remove("age");
                *payload = value.to_string();
            }
            _ => good.push(serde_json::from_str::<serde_json::Value>(payload).unwrap()),
        }
    }
    support::produce(&topic, &records).await;

    let (_dir, _store, executor) = support::harness().await;
    let dag = Arc::new(
        parse_dag_file(
            std::path::Path::new("dlq.toml"),
            &stats_dag_source(&ns, &topic, &format!("dead_letter_topic = \"{dlq}\"")),
        )
        .unwrap(),
    );
    let (run, driver) = support::start_in_background(&executor, &dag).await;
    let dead = support::consume_all(std::slice::from_ref(&dlq), 40, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 40);
    for record in &dead {
        let error = &record.headers["error"];
        assert!(
            error.contains("invalid JSON")
                || (error.contains("total_age") || error.contains("avg_age")),
            "{error}"
        );
        assert_eq!(record.headers["source_topic"], topic);
        let offset: i64 = record.headers["source_offset"].parse().unwrap();
        assert!(offset >= 0);
        assert!(record.headers.contains_key("source_partition"));
    }
    let stats = support::mongo(&ns).await.collection::<Document>("stats");
    let expected = good.len() as i64;
    assert_eq!(expected, 1960);
    support::eventually("every good record counted", Duration::from_secs(60), || {
        let stats = stats.clone();
        async move { support::users_counted(&stats).await == Ok(expected) }
    })
    .await;
    assert_exact(&support::all_documents(&stats).await, &good);
    support::stop_and_wait(&executor, &run, driver).await;
}

/// tansu answers a fetch from an offset inside a record batch with the batches after it: a
/// task resuming there must re-read from further back, or it skips the rest of the batch.
/// Here the stream is fetched from offset 0 (a batch start), 1,000 before the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_resuming_inside_a_record_batch_reads_the_rest_of_it() {
    resume_inside_one_batch("midbatch", 400, 150).await;
}

/// Fetched from 1,000 records before the commit, still inside the one batch there is: tansu
/// answers nothing at all, and the task must notice the silence and go further back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_resuming_deep_inside_the_last_batch_reads_the_rest_of_it() {
    resume_inside_one_batch("deepbatch", 2_000, 1_500).await;
}

/// `count` records in one batch, the group committed at `resume_at`: the stream counts
/// exactly the records from `resume_at` on.
async fn resume_inside_one_batch(name: &str, count: usize, resume_at: i64) {
    let ns = support::unique(name);
    let topic = format!("{ns}.in");
    support::create_topic(&topic, 1).await;
    let records = synthetic_users(count, 1_700_000_000);
    let placements = support::produce_in_one_batch(&topic, &records).await;
    support::commit(&ns, &topic, 0, resume_at).await;

    let (_dir, _store, executor) = support::harness().await;
    let dag = support::dag(&stats_dag_source(&ns, &topic, ""));
    let (run, driver) = support::start_in_background(&executor, &dag).await;
    let stats = support::mongo(&ns).await.collection::<Document>("stats");
    let ends = support::ends_of_placements(&topic, &placements);
    let expected_count = (count as i64) - resume_at;
    support::eventually(
        "the records after the committed offset counted and committed",
        Duration::from_secs(60),
        || {
            let (stats, ends, ns) = (stats.clone(), ends.clone(), ns.clone());
            async move {
                support::users_counted(&stats).await == Ok(expected_count)
                    && support::group_lag(&ns, &ends).await == Ok(0)
            }
        },
    )
    .await;
    let expected: Vec<serde_json::Value> = records[resume_at as usize..]
        .iter()
        .map(|(_, payload)| serde_json::from_str(payload).unwrap())
        .collect();
    assert_exact(&support::all_documents(&stats).await, &expected);
    support::stop_and_wait(&executor, &run, driver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_to_kafka_fails_clearly_and_retries_when_the_broker_is_unreachable() {
    let api = fake_api().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dag = support::dag(&format!(
        r#"[dag]
id = "{id}"
[[task]]
id = "fetch"
operator = "http_to_kafka"
url = "{api}?results=20"
key = ".login.uuid"
topic = "users"
brokers = "{closed}"
retries = 1
retry_delay = "100ms"
"#,
        id = support::unique("unreachable"),
    ));
    let (outcome, fetch) = support::run_single_task(&dag).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Failed));
    assert_eq!(fetch.try_number, 2, "the failure was retried once");
    let error = fetch.error.unwrap();
    assert!(
        error.contains(&format!("cannot reach the Kafka brokers at {closed}")),
        "{error}"
    );
}

/// Word count, the Kafka-sink way: sentences exploded into words by a jq transform, counted
/// per word over sliding event-time windows, each window produced once when the watermark
/// closes it; a record for closed windows is late and goes to the dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn word_counts_over_sliding_windows_go_to_a_topic_and_late_records_to_the_dlq() {
    const VOCABULARY: &[&str] = &["kafka", "rust", "stream", "window", "mongo", "jq"];
    let ns = support::unique("words");
    let (input, output, dlq) = (
        format!("{ns}.sentences"),
        format!("{ns}.counts"),
        format!("{ns}.dlq"),
    );
    support::create_topic(&input, 1).await;
    let base_s: i64 = 1_700_000_000;
    let sentence = |i: i64, ts: i64| {
        let words: Vec<&str> = (0..3)
            .map(|k| VOCABULARY[((i * 7 + k * 5 + i / 4) % 6) as usize])
            .collect();
        (
            i.to_string(),
            serde_json::json!({"text": words.join(" "), "ts": ts}).to_string(),
        )
    };
    // 300 sentences one second apart, then one far behind the watermark (late), then one far
    // ahead that closes every window of the first 300.
    let mut records: Vec<(String, String)> = (0..300).map(|i| sentence(i, base_s + i)).collect();
    records.push(sentence(300, base_s + 10));
    records.push(sentence(301, base_s + 1_000));
    support::produce(&input, &records).await;

    let mut truth: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for (_, payload) in &records[..300] {
        let value: serde_json::Value = serde_json::from_str(payload).unwrap();
        let ts_ms = value["ts"].as_i64().unwrap() * 1000;
        let mut start = ts_ms.div_euclid(30_000) * 30_000;
        while start > ts_ms - 60_000 {
            for word in value["text"].as_str().unwrap().split(' ') {
                *truth.entry((start, word.to_owned())).or_default() += 1;
            }
            start -= 30_000;
        }
    }

    let dag = support::dag(&format!(
        r#"[dag]
id = "{ns}"
schedule = "@continuous"
[[task]]
id = "words"
operator = "stream"
topics = ["{input}"]
group_id = "{ns}"
flush_interval = "200ms"
dead_letter_topic = "{dlq}"
transform = ['. as $s | $s.text | split(" ")[] | {{word: ., ts: $s.ts}}']
[task.window]
size = "1m"
slide = "30s"
event_time = ".ts"
allowed_lateness = "5s"
group_by = {{ word = ".word" }}
aggregates = {{ n = "count" }}
[task.sink]
kind = "kafka"
topic = "{output}"
"#
    ));
    let (_dir, _store, executor) = support::harness().await;
    let (run, driver) = support::start_in_background(&executor, &dag).await;

    let counts = support::consume_all(
        std::slice::from_ref(&output),
        truth.len(),
        Duration::from_secs(60),
    )
    .await;
    let mut produced: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for record in &counts {
        let window: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339(window["window_start"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        let word = window["word"].as_str().unwrap().to_owned();
        assert_eq!(window["closed"], true, "{window}");
        assert_eq!(record.key.as_deref(), window["_id"].as_str());
        let previous = produced.insert((start, word), window["n"].as_i64().unwrap());
        assert!(previous.is_none(), "a window produced twice: {window}");
    }
    assert_eq!(produced, truth);

    let dead = support::consume_all(std::slice::from_ref(&dlq), 1, Duration::from_secs(30)).await;
    assert!(
        dead[0].headers["error"].contains("late"),
        "{:?}",
        dead[0].headers
    );
    assert_eq!(dead[0].headers["source_offset"], "300");
    support::eventually(
        "one late record in the live metrics",
        Duration::from_secs(10),
        || {
            let metrics = executor.stream_metrics_of(&task_key(&run, "words"));
            async move { metrics.is_some_and(|m| m.late == 1) }
        },
    )
    .await;
    // A Kafka sink writes no documents; its flushes produce records, and count.
    let metrics = executor
        .stream_metrics_of(&task_key(&run, "words"))
        .unwrap();
    assert!(
        metrics.flushes > 0 && metrics.last_flush_at.is_some(),
        "{metrics:?}"
    );
    support::stop_and_wait(&executor, &run, driver).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_to_kafka_names_missing_topics_when_creation_is_off() {
    let api = fake_api().await;
    let ns = support::unique("nocreate");
    let _ = support::kafka_brokers();
    let dag = support::dag(&format!(
        r#"[dag]
id = "{ns}"
[[task]]
id = "fetch"
operator = "http_to_kafka"
url = "{api}?results=50&nat=fr,de"
key = ".login.uuid"
topic = '"{ns}." + (.nat | ascii_downcase)'
create_topics = false
"#
    ));
    let (outcome, fetch) = support::run_single_task(&dag).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Failed));
    let error = fetch.error.unwrap();
    assert!(
        error.contains(&format!("{ns}.de, {ns}.fr"))
            && error.contains("do not exist")
            && error.contains("create_topics is off"),
        "{error}"
    );
}

/// `generate_to_kafka`: seeded simulated records routed to a topic per server type and keyed
/// by server id; the same seed draws the same records again.
#[tokio::test]
async fn generate_to_kafka_produces_seeded_records_by_topic() {
    let ns = support::unique("gen");
    let dag = support::dag(&format!(
        r#"[dag]
id = "{ns}"
[[task]]
id = "emit"
operator = "generate_to_kafka"
records = 300
seed = 42
topic = '"{ns}." + .server_type'
key = ".server_id"
[task.fields]
server_id = {{ pick = ["s1", "s2", "s3", "s4"] }}
server_type = {{ pick = ["web", "db"], weights = [3, 1] }}
status = {{ pick = ["running", "stopped", "maintenance", "failed"] }}
cpu = {{ float = [0, 100], decimals = 1 }}
at = "now_epoch"
n = "sequence"
"#
    ));
    for _ in 0..2 {
        let (outcome, emit) = support::run_single_task(&dag).await;
        assert_eq!(
            outcome,
            RunOutcome::Finished(RunState::Success),
            "{:?}",
            emit.error
        );
        assert_eq!(emit.result.as_ref().unwrap()["records"], 300);
    }
    let topics = [format!("{ns}.web"), format!("{ns}.db")];
    let records = support::consume_all(&topics, 600, Duration::from_secs(60)).await;
    let mut by_n: BTreeMap<u64, Vec<serde_json::Value>> = BTreeMap::new();
    for record in &records {
        let mut value: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        assert_eq!(
            record.topic,
            format!("{ns}.{}", value["server_type"].as_str().unwrap())
        );
        assert_eq!(record.key.as_deref(), value["server_id"].as_str());
        let cpu = value["cpu"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu), "{value}");
        value.as_object_mut().unwrap().remove("at");
        by_n.entry(value["n"].as_u64().unwrap())
            .or_default()
            .push(value);
    }
    assert_eq!(by_n.len(), 300, "sequence 0..300");
    for (n, copies) in &by_n {
        assert_eq!(copies.len(), 2, "record {n} once per run");
        assert_eq!(
            copies[0], copies[1],
            "the same seed draws the same record {n}"
        );
    }
    let web = records.iter().filter(|r| r.topic.ends_with(".web")).count();
    assert!(
        (360..=540).contains(&web),
        "3 in 4 web servers: {web} of 600"
    );
}

/// `file_to_kafka`: a file of 2,500 lines streamed in batches of 1,000 into one partition, in
/// order; a line that is not UTF-8 goes as its raw bytes (a stream dead-letters it).
#[tokio::test]
async fn file_to_kafka_streams_every_line_in_order() {
    let ns = support::unique("file");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines.txt");
    let mut content = Vec::new();
    for i in 0..2_500 {
        if i == 1_234 {
            content.extend_from_slice(b"\xff not utf-8\n");
        } else {
            content.extend_from_slice(format!("line {i}: the quick brown fox\n").as_bytes());
        }
    }
    std::fs::write(&path, &content).unwrap();
    let dag = support::dag(&format!(
        "[dag]\nid = \"{ns}\"\n[[task]]\nid = \"send\"\noperator = \"file_to_kafka\"\npath = \"{}\"\ntopic = \"{ns}\"\nbatch = 1000\n",
        path.display()
    ));
    let (outcome, send) = support::run_single_task(&dag).await;
    assert_eq!(
        outcome,
        RunOutcome::Finished(RunState::Success),
        "{:?}",
        send.error
    );
    assert_eq!(send.result.as_ref().unwrap()["records"], 2_500);
    let records =
        support::consume_all(std::slice::from_ref(&ns), 2_500, Duration::from_secs(60)).await;
    let mut in_order = records.clone();
    in_order.sort_by_key(|r| r.offset);
    for (i, record) in in_order.iter().enumerate() {
        assert_eq!(record.partition, 0);
        if i == 1_234 {
            assert_eq!(record.payload, String::from_utf8_lossy(b"\xff not utf-8"));
        } else {
            let line: String = serde_json::from_str(&record.payload).unwrap();
            assert_eq!(line, format!("line {i}: the quick brown fox"));
        }
    }
}

/// The user-logins pipeline of `dags/`: 150 simulated logins are cleaned into their own topic
/// (RFC 3339 times, `UNK` locales, tidy device types) and counted per state over sliding
/// windows into MongoDB, each document equal to counts computed here from the records read
/// back; logins without a state are dead-lettered by both counting tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn user_logins_are_cleaned_and_counted_per_state_over_sliding_windows() {
    let ns = support::unique("logins");
    let (input, clean, stats, dlq) = (
        format!("\"{ns}.in\""),
        format!("\"{ns}.clean\""),
        format!("\"{ns}.stats\""),
        format!("\"{ns}.dlq\""),
    );
    let database = format!("database = \"{ns}\"");
    let producer = support::repo_dag("user_logins.toml", &[("\"user-login\"", &input)]);
    let cleaner = support::repo_dag(
        "user_login_clean.toml",
        &[
            ("\"user-login\"", &input),
            ("\"user-login-clean\"", &clean),
            ("\"user_login_clean.", &format!("\"{ns}.clean.")),
            ("\"dlq.user_logins\"", &dlq),
        ],
    );
    let counter = support::repo_dag(
        "user_login_stats.toml",
        &[
            ("\"user-login-clean\"", &clean),
            ("\"user-login-stats\"", &stats),
            ("\"user_login_stats.", &format!("\"{ns}.stats.")),
            ("\"dlq.user_logins\"", &dlq),
            ("database = \"updraft\"", &database),
        ],
    );
    let db = support::mongo(&ns).await;
    let (_dir, _store, executor) = support::harness().await;
    let mut drivers = Vec::new();
    for dag in [&cleaner, &counter] {
        drivers.push(support::start_in_background(&executor, dag).await);
    }
    support::run_to_success(&producer, serde_json::json!({}), 3).await;

    // Cleaned: every login once, transformed.
    let inputs = support::consume_all(&[format!("{ns}.in")], 150, Duration::from_secs(60)).await;
    let cleaned =
        support::consume_all(&[format!("{ns}.clean")], 150, Duration::from_secs(60)).await;
    let expected_clean = |payload: &str| -> serde_json::Value {
        let mut login: serde_json::Value = serde_json::from_str(payload).unwrap();
        let at = chrono::DateTime::from_timestamp(login["timestamp"].as_i64().unwrap(), 0).unwrap();
        login["timestamp"] = at.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
        if login["locale"].is_null() {
            login["locale"] = "UNK".into();
        }
        let device = login["device_type"].as_str().unwrap().trim().to_lowercase();
        login["device_type"] = device.into();
        login
    };
    let sorted = |mut values: Vec<String>| {
        values.sort();
        values
    };
    let want = sorted(
        inputs
            .iter()
            .map(|r| expected_clean(&r.payload).to_string())
            .collect(),
    );
    let got = sorted(
        cleaned
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.payload)
                    .unwrap()
                    .to_string()
            })
            .collect(),
    );
    assert_eq!(got, want);
    assert!(cleaned.iter().all(|r| {
        let login: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
        r.key.as_deref() == Some(login["user_id"].to_string().as_str())
    }));

    // Counted: logins per state in every 1-minute window that slides by 10 s.
    let mut truth = support::WindowCounts::new();
    let mut without_state = 0;
    for record in &inputs {
        let login: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        let Some(state) = login["state"].as_str() else {
            without_state += 1;
            continue;
        };
        let t = login["timestamp"].as_i64().unwrap() * 1000;
        let last_start = t.div_euclid(10_000) * 10_000;
        for k in 0..6 {
            *truth
                .entry((last_start - k * 10_000, state.to_owned()))
                .or_insert(0) += 1;
        }
    }
    assert!(truth.len() >= 6, "logins of at least one state: {truth:?}");
    support::wait_for_window_counts(
        &db.collection::<Document>("user_login_stats"),
        "state",
        "logins",
        &truth,
        Duration::from_secs(60),
    )
    .await;

    // Kafka: each window once it closes. One login an hour after the others moves the
    // watermark past every window above; its own windows stay open.
    let last = inputs
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.payload).unwrap()["timestamp"]
                .as_i64()
                .unwrap()
        })
        .max()
        .unwrap();
    let later = chrono::DateTime::from_timestamp(last + 3_600, 0).unwrap();
    let closer = serde_json::json!({"user_id": 0, "state": "ZZ", "timestamp": later.format("%Y-%m-%dT%H:%M:%SZ").to_string()});
    support::produce(&format!("{ns}.clean"), &[("0".into(), closer.to_string())]).await;
    let closed =
        support::assert_kafka_window_counts(&format!("{ns}.stats"), "state", "logins", &truth)
            .await;
    assert!(
        closed.iter().all(|r| {
            let window: serde_json::Value = serde_json::from_str(&r.payload).unwrap();
            r.key.as_deref() == window["_id"].as_str() && window.get("_state").is_none()
        }),
        "each window keyed by its id, without the sink's internal state: {closed:?}"
    );

    // Logins without a state: dead-lettered by both counting tasks, the rest exact.
    if without_state > 0 {
        let dead = support::consume_all(
            &[format!("{ns}.dlq")],
            2 * without_state,
            Duration::from_secs(60),
        )
        .await;
        assert!(
            dead.iter()
                .all(|d| d.headers["error"].contains("login without a state")),
            "{dead:?}"
        );
    }
    for (run, driver) in drivers {
        let outcome = support::stop_and_wait(&executor, &run, driver).await;
        assert_eq!(outcome, RunOutcome::Finished(RunState::Stopped));
    }
}

/// The names pipeline of `dags/`: 20 runs of `names` (one person each, from the fake API) and
/// `first_letters` counting first letters per day into MongoDB, equal to counts computed here
/// from the names read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_are_counted_by_first_letter_per_day() {
    let ns = support::unique("names");
    let api = fake_api().await;
    let producer = support::repo_dag(
        "names.toml",
        &[("topic = \"names\"", &format!("topic = \"{ns}.names\""))],
    );
    let letters = support::repo_dag(
        "first_letters.toml",
        &[
            ("[\"names\"]", &format!("[\"{ns}.names\"]")),
            ("\"first_letters.", &format!("\"{ns}.")),
            ("\"dlq.names\"", &format!("\"{ns}.dlq\"")),
            ("database = \"updraft\"", &format!("database = \"{ns}\"")),
            ("topic = \"stats\"", &format!("topic = \"{ns}.stats\"")),
        ],
    );
    let db = support::mongo(&ns).await;
    let (_dir, _store, executor) = support::harness().await;
    let (run, driver) = support::start_in_background(&executor, &letters).await;
    support::run_to_success(&producer, serde_json::json!({"api_url": api}), 20).await;
    let names = support::consume_all(&[format!("{ns}.names")], 20, Duration::from_secs(60)).await;
    let mut truth = support::WindowCounts::new();
    for record in &names {
        let person: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        let first = person["first"].as_str().unwrap();
        let letter: String = first
            .chars()
            .take(1)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let day = record.timestamp_ms.div_euclid(86_400_000) * 86_400_000;
        *truth.entry((day, letter)).or_insert(0) += 1;
    }
    support::wait_for_window_counts(
        &db.collection::<Document>("first_letters"),
        "letter",
        "names",
        &truth,
        Duration::from_secs(60),
    )
    .await;
    // Kafka: each day once it is over. A name two days later (Kafka time) closes every day
    // above; its own day stays open.
    let later = names.iter().map(|r| r.timestamp_ms).max().unwrap() + 2 * 86_400_000;
    support::produce_at(&format!("{ns}.names"), "", r#"{"first":"Zoe"}"#, later).await;
    support::assert_kafka_window_counts(&format!("{ns}.stats"), "letter", "names", &truth).await;
    let outcome = support::stop_and_wait(&executor, &run, driver).await;
    assert_eq!(outcome, RunOutcome::Finished(RunState::Stopped));
}
