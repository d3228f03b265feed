//! `/metrics`: parsed as Prometheus text, checked against the store; the bearer token.

use crate::support;

use std::{collections::BTreeMap, time::Duration};

use axum::{body::Body, http::Request};
use orchestrator::{store::RunState, web::metrics_router};
use prometheus_parse::{Sample, Scrape, Value};
use tower::ServiceExt as _;

async fn scrape(app: &axum::Router, token: Option<&str>) -> (u16, String) {
    let mut request = Request::get("/metrics");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

fn samples<'a>(scrape: &'a Scrape, name: &str, dag_id: &str) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get("dag_id") == Some(dag_id))
        .collect()
}

fn value(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => *v,
        other => panic!("{} is not a single value: {other:?}", sample.metric),
    }
}

#[tokio::test]
async fn metrics_match_the_store_and_need_the_token_when_set() {
    let (_dir, store, executor) = support::harness().await;
    let id = support::unique("metrics");
    let dag = support::dag(&format!(
        "[dag]\nid = \"{id}\"\n[[task]]\nid = \"ok\"\noperator = \"noop\"\n[[task]]\nid = \"bad\"\noperator = \"shell\"\ncommand = \"exit 1\"\nretries = 1\nretry_delay = \"0s\"\n[[task]]\nid = \"after\"\noperator = \"noop\"\nupstream = [\"bad\"]\n"
    ));
    // Built first, as `serve` does: a process records observations once it serves them.
    let open = metrics_router(store.clone(), Some(executor.clone()), None, true);
    for _ in 0..2 {
        let run = support::start_run(&executor, &dag, serde_json::json!({})).await;
        let outcome = support::drive_to_end(&executor, &dag, &run, Duration::from_secs(30)).await;
        assert_eq!(
            outcome,
            orchestrator::executor::RunOutcome::Finished(RunState::Failed)
        );
        // Manual run ids are timestamps: keep them apart.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let (status, text) = scrape(&open, None).await;
    assert_eq!(status, 200, "{text}");
    let metrics = parse(&text);

    let runs: BTreeMap<String, f64> = samples(&metrics, "updraft_dag_runs", &id)
        .into_iter()
        .map(|s| (s.labels.get("state").unwrap().to_owned(), value(s)))
        .collect();
    assert_eq!(runs, BTreeMap::from([("failed".to_string(), 2.0)]));
    let mut expected = BTreeMap::new();
    for run in store
        .list_runs(&orchestrator::store::RunFilter {
            dag_id: Some(id.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
    {
        for ti in store.task_instances(&id, &run.run_id).await.unwrap() {
            *expected.entry(ti.state.to_string()).or_insert(0.0) += 1.0;
        }
    }
    let instances: BTreeMap<String, f64> = samples(&metrics, "updraft_task_instances", &id)
        .into_iter()
        .map(|s| (s.labels.get("state").unwrap().to_owned(), value(s)))
        .collect();
    assert_eq!(instances, expected);
    assert_eq!(expected["success"], 2.0);
    assert_eq!(expected["failed"], 2.0);
    assert_eq!(expected["upstream_failed"], 2.0);

    // Tries: `ok` once per run, `bad` twice per run (a retry, then failed).
    let tries = |task: &str, outcome: &str| -> f64 {
        samples(&metrics, "updraft_task_duration_seconds_count", &id)
            .into_iter()
            .filter(|s| {
                s.labels.get("task_id") == Some(task) && s.labels.get("outcome") == Some(outcome)
            })
            .map(value)
            .sum()
    };
    assert_eq!(tries("ok", "success"), 2.0);
    assert_eq!(tries("bad", "retry"), 2.0);
    assert_eq!(tries("bad", "failed"), 2.0);

    let private = metrics_router(store.clone(), Some(executor.clone()), None, false);
    assert_eq!(
        scrape(&private, None).await.0,
        401,
        "private reading and no token: closed"
    );
    let guarded = metrics_router(store, Some(executor), Some("s3cret".into()), false);
    assert_eq!(scrape(&guarded, None).await.0, 401);
    assert_eq!(scrape(&guarded, Some("wrong")).await.0, 401);
    let (status, text) = scrape(&guarded, Some("s3cret")).await;
    assert_eq!(status, 200);
    assert!(!samples(&parse(&text), "updraft_dag_runs", &id).is_empty());
}
