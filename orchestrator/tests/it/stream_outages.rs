//! A stream task rides out a broker outage and a MongoDB outage of 20 s each on its own, and
//! its window documents stay exact. The test owns its broker (tansu on SQLite, so a restart
//! keeps topics and offsets) and its MongoDB server, so stopping them disturbs no other test.

use crate::support;

use std::{sync::Arc, time::Duration};

use mongodb::bson::Document;
use orchestrator::{dag::parse_dag_file, scheduler::new_manual_run, store::TiState};
use support::servers::Server;

const BATCH: usize = 5_000;
const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_recovers_from_broker_and_mongodb_outages_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Server::tansu(dir.path()).await;
    let mut mongo = Server::mongo(dir.path()).await;
    let brokers = broker.address();
    let uri = format!("mongodb://{}", mongo.address());
    let ns = support::unique("outage");
    let topic = format!("{ns}.in");
    support::create_topic_on(&brokers, &topic, 2).await;
    let records = support::synthetic_users(3 * BATCH, 1_700_000_000);
    let mut placements = support::produce_on(&brokers, &topic, &records[..BATCH]).await;

    let source = support::stats_dag_source(&ns, &topic, &format!("brokers = \"{brokers}\""))
        .replace(
            "kind = \"mongodb\"",
            &format!("kind = \"mongodb\"\nuri = \"{uri}\""),
        );
    let dag = Arc::new(parse_dag_file(std::path::Path::new("outage.toml"), &source).unwrap());
    let store = support::sqlite(dir.path()).await;
    let executor = support::executor(store.clone(), &dir.path().join("logs"));
    let run = store
        .create_run(
            &new_manual_run(&dag, Default::default(), Some(executor.owner().into())),
            &dag.new_task_instances(),
        )
        .await
        .unwrap()
        .unwrap();
    let driver = support::drive_in_background(&executor, &dag, &run);
    let client = mongodb::Client::with_uri_str(format!(
        "{uri}/?serverSelectionTimeoutMS=2000&retryWrites=false"
    ))
    .await
    .unwrap();
    let stats = client.database(&ns).collection::<Document>("stats");
    let counted = |expected: usize| {
        let stats = stats.clone();
        move || {
            let stats = stats.clone();
            async move { support::users_counted(&stats).await == Ok(expected as i64) }
        }
    };
    support::eventually(
        "the first batch counted",
        Duration::from_secs(60),
        counted(BATCH),
    )
    .await;

    // The broker goes away for 20 s while the second batch is being produced: the producer
    // holds it, the stream waits, and both carry on once the broker is back.
    broker.stop().await;
    let second = tokio::spawn({
        let (brokers, topic, batch) = (
            brokers.clone(),
            topic.clone(),
            records[BATCH..2 * BATCH].to_vec(),
        );
        async move { support::produce_on(&brokers, &topic, &batch).await }
    });
    tokio::time::sleep(OUTAGE).await;
    broker.start().await;
    placements.extend(second.await.unwrap());
    support::eventually(
        "the second batch counted after the broker outage",
        Duration::from_secs(120),
        counted(2 * BATCH),
    )
    .await;

    // MongoDB goes away for 20 s while the third batch arrives: flushes fail, the task is
    // restarted with backoff, and replays only what no document includes yet.
    mongo.stop().await;
    placements.extend(support::produce_on(&brokers, &topic, &records[2 * BATCH..]).await);
    tokio::time::sleep(OUTAGE).await;
    mongo.start().await;
    let ends = support::ends_of_placements(&topic, &placements);
    support::eventually(
        "every record counted and committed after the MongoDB outage",
        Duration::from_secs(180),
        || {
            let (stats, ends, ns, brokers) =
                (stats.clone(), ends.clone(), ns.clone(), brokers.clone());
            async move {
                support::users_counted(&stats).await == Ok((3 * BATCH) as i64)
                    && support::group_lag_on(&brokers, &ns, &ends).await == Ok(0)
            }
        },
    )
    .await;

    let values: Vec<serde_json::Value> = records
        .iter()
        .map(|(_, payload)| serde_json::from_str(payload).unwrap())
        .collect();
    support::assert_exact(&support::all_documents(&stats).await, &values);
    let stream = store
        .task_instances(&run.dag_id, &run.run_id)
        .await
        .unwrap()
        .into_iter()
        .find(|ti| ti.task_id == "stats")
        .unwrap();
    assert_eq!(stream.state, TiState::Running);
    assert!(
        stream.try_number > 1,
        "the MongoDB outage failed a try and the executor restarted it (try {})",
        stream.try_number
    );
    // Why the last try failed stays on the row while the next runs (the streams page shows
    // it), with no password of a URL in it.
    let error = stream.error.clone().unwrap_or_default();
    assert!(
        error.to_lowercase().contains("mongo") || error.contains("flush"),
        "the restarted stream keeps why its last try failed: {error:?}"
    );

    support::stop_and_wait(&executor, &run, driver).await;
}
