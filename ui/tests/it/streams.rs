//! The streams page, a stream's page, its results page, their pushed partials (SSE) and the
//! JSON API, over the in-memory backend.

use crate::support;

use axum::http::StatusCode;
use support::{App, MemoryBackend, RUN_ID};

const STREAM: &str = "/dags/users/runs/manual__2026-11-25T10:00:00Z/tasks/stats";

fn events(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter(|e| e.starts_with("event: html"))
        .collect()
}

#[tokio::test]
async fn the_streams_page_shows_rates_lag_sparklines_and_marks() {
    let (status, html) = App::public().get("/streams").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-stream=\"users.stats\""), "{html}");
    assert!(html.contains("250/s in · 8/s out"), "{html}");
    assert!(html.contains("data-lag=\"30\""));
    assert!(
        html.contains("on <span class=\"mono\">worker-7</span>"),
        "the worker running the try"
    );
    assert!(html.contains("most behind: <span class=\"mono\">users.fr/1</span> 20, <span class=\"mono\">users.fr/0</span> 10"), "{html}");
    assert_eq!(
        html.matches("<polyline points=").count(),
        2,
        "rate and lag sparklines"
    );
    assert!(
        html.contains(">restarting<"),
        "a stream restarted lately is marked"
    );
    assert!(!html.contains(">lag growing<"));
    assert!(
        html.contains("MongoDB: writing results failed: &#60;unreachable&#62;"),
        "escaped"
    );
    assert!(html.contains("data-push-src=\"/streams/events\""));
    assert!(html.contains(&format!("href=\"{STREAM}/results\"")));
    assert!(html.contains("href=\"/streams\""), "in the navigation");
}

#[tokio::test]
async fn without_streams_the_page_says_how_to_start_one() {
    let backend = MemoryBackend {
        streams: Vec::new(),
        ..MemoryBackend::default()
    };
    let (status, html) = App::public_with(backend).get("/streams").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"no-streams\""), "{html}");
    assert!(html.contains("@continuous"));
}

#[tokio::test]
async fn the_figures_are_pushed_rendered_each_tick() {
    let (status, body) = App::public().get("/streams/events").await;
    assert_eq!(status, StatusCode::OK);
    let pushed = events(&body);
    assert_eq!(pushed.len(), 3, "one push per tick: {body}");
    assert!(pushed[0].contains("data-stream=\"users.stats\""));
    let (_, other) = App::public()
        .get("/streams/events?dag_id=users&run_id=x&task_id=stats")
        .await;
    assert!(
        events(&other)
            .iter()
            .all(|e| e.contains("id=\"no-streams\"")),
        "a filter for another run keeps nothing: {other}"
    );
}

#[tokio::test]
async fn a_stream_page_shows_its_dead_letters() {
    let (status, html) = App::public().get(&format!("{STREAM}/stream")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"dead-letters\""), "{html}");
    assert!(html.contains("invalid JSON: expected value"));
    assert!(html.contains("users.fr/1@17"));
    assert!(html.contains("&#60;not json&#62;"), "payloads are escaped");
    assert!(html.contains("data-push-src=\"/streams/events?dag_id=users&#38;run_id="));
}

#[tokio::test]
async fn a_task_that_is_no_running_stream_has_no_stream_page() {
    for path in [
        format!("/dags/hello/runs/{RUN_ID}/tasks/greet/stream"),
        format!("/dags/hello/runs/{RUN_ID}/tasks/greet/results"),
    ] {
        let (status, html) = App::public().get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("no stream greet running"), "{html}");
    }
    let (status, _) = App::public()
        .get(&format!("/dags/hello/runs/{RUN_ID}/tasks/..%2Fx/stream"))
        .await;
    assert_ne!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_results_page_charts_the_newest_window_by_group() {
    let (status, html) = App::public().get(&format!("{STREAM}/results")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"results-chart\""), "{html}");
    assert_eq!(html.matches("<g class=\"bar").count(), 2);
    assert!(html.contains("data-label=\"France\" data-value=\"7\""));
    assert!(html.contains("Spain &#60;b&#62;"), "labels are escaped");
    assert!(html.contains("users by country"));
    assert!(
        html.contains("merged from its 2 shares"),
        "a split stream's page says its documents are merged"
    );
    assert_eq!(
        html.matches("<option value=\"2026-11-25T10").count(),
        2,
        "the window selector"
    );
    assert!(
        html.contains(&format!(
            "data-push-src=\"{STREAM}/results/events?measure=0\""
        )),
        "the newest window is followed: {html}"
    );
    let france = html.find("data-group=\"France\"").unwrap();
    let spain = html.find("data-group=\"Spain &#60;b&#62;\"").unwrap();
    assert!(france < spain, "largest first");
}

#[tokio::test]
async fn a_window_and_a_measure_can_be_picked() {
    let (_, older) = App::public()
        .get(&format!("{STREAM}/results?window=2026-11-25T10:00:00.000Z"))
        .await;
    assert!(older.contains("data-label=\"Norway\""), "{older}");
    assert!(!older.contains("data-label=\"France\""));
    assert!(older.contains("results/events?window=2026-11-25T10%3A00%3A00.000Z&#38;measure=0"));
    let (_, by_age) = App::public()
        .get(&format!("{STREAM}/results?measure=1"))
        .await;
    assert!(by_age.contains("avg_age by country"));
    let spain = by_age.find("data-group=\"Spain &#60;b&#62;\"").unwrap();
    let france = by_age.find("data-group=\"France\"").unwrap();
    assert!(spain < france, "sorted by the measure charted");
    let (_, out_of_range) = App::public()
        .get(&format!("{STREAM}/results?measure=9"))
        .await;
    assert!(out_of_range.contains("users by country"));
}

#[tokio::test]
async fn results_are_pushed_once_per_flush() {
    let (status, body) = App::public().get(&format!("{STREAM}/results/events")).await;
    assert_eq!(status, StatusCode::OK);
    let pushed = events(&body);
    assert_eq!(
        pushed.len(),
        2,
        "ticks with 5, 5 and 6 flushes push twice: {body}"
    );
    assert!(pushed[1].contains("id=\"results-chart\""));
}

#[tokio::test]
async fn viewers_of_one_results_page_share_one_read_per_flush() {
    let app = App::public();
    let uri = format!("{STREAM}/results/events");
    let viewers = (0..20).map(|_| app.get(&uri));
    let bodies = futures::future::join_all(viewers).await;
    for (status, body) in &bodies {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(events(body).len(), 2, "{body}");
    }
    let reads = app.backend.memory().results_reads;
    assert_eq!(reads, 2, "two flushes, one sink read each for 20 viewers");
}

#[tokio::test]
async fn the_api_answers_streams_and_results_as_json() {
    let app = App::public();
    let (status, streams) = support::json(
        app.send(support::json_request("GET", "/api/v1/streams", None, ""))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(streams[0]["task_id"], "stats");
    assert_eq!(streams[0]["lag"]["users.fr/1"], 20);
    let (status, results) = support::json(
        app.send(support::json_request(
            "GET",
            &format!("/api/v1/dags/users/dagRuns/{RUN_ID}/taskInstances/stats/results"),
            None,
            "",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results["rows"][0]["label"], "France");
    let (status, error) = support::json(
        app.send(support::json_request(
            "GET",
            &format!("/api/v1/dags/hello/dagRuns/{RUN_ID}/taskInstances/greet/stream"),
            None,
            "",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["status"], 404);
}

#[tokio::test]
async fn a_running_run_with_streams_shows_their_panel() {
    let backend = MemoryBackend {
        streaming_run: true,
        ..MemoryBackend::default()
    };
    let (status, html) = App::public_with(backend)
        .get(&format!("/dags/hello/runs/{RUN_ID}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("id=\"run-streams\" data-push-src=\"/streams/events?dag_id=hello&#38;run_id=manual__2026-11-25T10%3A00%3A00Z\""),
        "{html}"
    );
    assert!(html.contains("/tasks/greet/results\" class=\"results-link\""));
    let (_, finished) = App::public()
        .get(&format!("/dags/hello/runs/{RUN_ID}"))
        .await;
    assert!(
        !finished.contains("id=\"run-streams\""),
        "no stream task, no panel"
    );
}

#[tokio::test]
async fn live_connections_beyond_the_cap_get_503_and_a_retry_after() {
    use axum::http::{Request, header};
    let app = support::App::new(
        support::MemoryBackend::default(),
        ui::UiConfig {
            public_read: true,
            max_live_connections_per_client: 2,
            ..ui::UiConfig::default()
        },
    );
    let open = || async {
        app.send(
            Request::get("/live/events")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
    };
    let first = open().await;
    let second = open().await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let refused = open().await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "5");
    let (_, body) = support::json(refused).await;
    assert!(
        body["detail"].as_str().unwrap().contains("your address"),
        "{body}"
    );
    let (status, _) = app.get("/dags").await;
    assert_eq!(status, StatusCode::OK, "pages are not capped");
    drop(first);
    assert_eq!(
        open().await.status(),
        StatusCode::OK,
        "a closed stream frees its slot"
    );
    drop(second);
}
