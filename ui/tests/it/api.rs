//! The REST API: Airflow-shaped answers, errors as `{status, title, detail}`, logs with
//! `Range`, the live streams resuming where they left off.

use crate::support;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use support::{App, RUN_ID, TOKEN, json, json_request, text};

#[tokio::test]
async fn dags_list_and_detail() {
    let app = App::public();
    let (status, body) = json(
        app.send(json_request(
            "GET",
            "/api/v1/dags?limit=10&offset=0",
            None,
            "",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_entries"], 1);
    assert_eq!(body["dags"][0]["dag_id"], "hello");
    assert_eq!(body["import_errors"][0]["problems"][0]["line"], 3);
    let (status, body) = json(
        app.send(json_request("GET", "/api/v1/dags/hello", None, ""))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["params"][1]["kind"], "integer");
    let (status, body) = json(
        app.send(json_request("GET", "/api/v1/dags/nope", None, ""))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        serde_json::json!({"type": "about:blank", "status": 404, "title": "Not Found", "detail": "no DAG \"nope\""})
    );
}

#[tokio::test]
async fn a_bad_query_parameter_is_a_400_naming_it() {
    let app = App::public();
    for (uri, parameter) in [
        ("/api/v1/dags?limit=ten", "limit"),
        // Numbers that do not fit are refused, not wrapped into a negative SQL OFFSET.
        ("/api/v1/dags?offset=18446744073709551615", "offset"),
        ("/api/v1/dags?limit=4294967296", "limit"),
        (
            "/api/v1/dags/hello/dagRuns?offset=18446744073709551615",
            "offset",
        ),
        ("/api/v1/dags/hello/dagRuns?offset=-1", "offset"),
    ] {
        let (status, body) = json(app.send(json_request("GET", uri, None, "")).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(parameter),
            "{uri}: {body}"
        );
    }
}

#[tokio::test]
async fn triggering_returns_the_run_and_checks_the_conf() {
    let app = App::public();
    let (status, body) = json(
        app.send(json_request(
            "POST",
            "/api/v1/dags/hello/dagRuns",
            Some(TOKEN),
            r#"{"conf": {"results": 3}}"#,
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dag_run_id"], RUN_ID);
    assert_eq!(body["conf"]["results"], 3);
    let (status, body) = json(
        app.send(json_request(
            "POST",
            "/api/v1/dags/hello/dagRuns",
            Some(TOKEN),
            r#"{"conf": {"results": "3"}}"#,
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("conf.results: expected integer"),
        "{body}"
    );
    let (status, body) = json(
        app.send(json_request(
            "POST",
            "/api/v1/dags/hello/dagRuns",
            Some(TOKEN),
            r#"{"conf": {"results": 3"#,
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("line 1 column"),
        "invalid JSON with its position: {body}"
    );
    let (status, body) = json(
        app.send(json_request(
            "POST",
            "/api/v1/dags/hello/dagRuns",
            Some(TOKEN),
            r#"{"config": {}}"#,
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `config`"),
        "{body}"
    );
    let (status, _) = json(
        app.send(json_request(
            "POST",
            "/api/v1/dags/nope/dagRuns",
            Some(TOKEN),
            "{}",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.backend.memory().triggered.len(), 1);
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let conf = format!(r#"{{"conf": {{"name": "{}"}}}}"#, "x".repeat(400 * 1024));
    let (status, body) = json(
        App::public()
            .send(json_request(
                "POST",
                "/api/v1/dags/hello/dagRuns",
                Some(TOKEN),
                &conf,
            ))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["status"], 413);
}

#[tokio::test]
async fn runs_task_instances_stop_clear_and_mark() {
    let app = App::public();
    let base = format!("/api/v1/dags/hello/dagRuns/{RUN_ID}");
    let (status, body) = json(
        app.send(json_request(
            "GET",
            "/api/v1/dags/hello/dagRuns?state=success",
            None,
            "",
        ))
        .await,
    )
    .await;
    assert_eq!(
        (status, body["total_entries"].clone()),
        (StatusCode::OK, 1.into())
    );
    let (status, body) = json(
        app.send(json_request(
            "GET",
            "/api/v1/dags/hello/dagRuns?state=sleeping",
            None,
            "",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].as_str().unwrap().starts_with("state:"));
    let (status, body) = json(app.send(json_request("GET", &base, None, "")).await).await;
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, "success".into())
    );
    let (status, body) = json(
        app.send(json_request(
            "GET",
            &format!("{base}/taskInstances"),
            None,
            "",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_entries"], 2);
    assert_eq!(body["task_instances"][1]["state"], "failed");
    let (status, body) = json(
        app.send(json_request(
            "POST",
            &format!("{base}/stop"),
            Some(TOKEN),
            "",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["detail"].as_str().unwrap().contains("already ended"));
    let (status, body) = json(
        app.send(json_request(
            "POST",
            &format!("{base}/taskInstances/greet/clear"),
            Some(TOKEN),
            r#"{"include_downstream": true}"#,
        ))
        .await,
    )
    .await;
    assert_eq!(
        (status, body["task_ids"][0].clone()),
        (StatusCode::OK, "greet".into())
    );
    let (status, _) = json(
        app.send(json_request(
            "PATCH",
            &format!("{base}/taskInstances/report"),
            Some(TOKEN),
            r#"{"new_state": "success"}"#,
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = json(
        app.send(json_request(
            "PATCH",
            &format!("{base}/taskInstances/report"),
            Some(TOKEN),
            r#"{"new_state": "running"}"#,
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let memory = app.backend.memory();
    assert_eq!(memory.cleared, [("greet".to_owned(), true)]);
    assert_eq!(memory.marked.len(), 1);
}

#[tokio::test]
async fn unknown_api_paths_and_runs_are_json_404s() {
    let app = App::public();
    for uri in [
        "/api/v1/nope",
        "/api/v1/dags/hello/dagRuns/nope",
        "/api/v1/dags/hello/dagRuns/nope/taskInstances",
    ] {
        let (status, body) = json(app.send(json_request("GET", uri, None, "")).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(body["status"], 404, "{uri}");
    }
}

#[tokio::test]
async fn log_files_are_plain_text_with_ranges() {
    let app = App::public();
    let uri = format!("/api/v1/dags/hello/dagRuns/{RUN_ID}/taskInstances/greet/logs/1");
    let (status, body) = app.get(&uri).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("hello world"));
    let response = app
        .send(
            Request::get(&uri)
                .header(header::RANGE, "bytes=0-23")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    let (_, body) = text(response).await;
    assert_eq!(body, "2026-11-25T10:00:00.000Z");
    let (status, _) = app
        .get(&format!(
            "/api/v1/dags/hello/dagRuns/{RUN_ID}/taskInstances/greet/logs/9"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn earlier_log_lines_come_as_json_chunks() {
    let uri = format!("/dags/hello/runs/{RUN_ID}/tasks/greet/logs/1/chunk?before=36");
    let (status, body) = json(
        App::public()
            .send(json_request("GET", &uri, None, ""))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["start"].clone(), body["end"].clone()),
        (0.into(), 36.into())
    );
    let (status, _) = App::public()
        .get(&format!(
            "/dags/hello/runs/{RUN_ID}/tasks/greet/logs/1/chunk"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "before is required");
}

#[tokio::test]
async fn the_log_stream_resumes_from_the_last_event_id_and_ends_explicitly() {
    let app = App::public();
    let uri = format!("/dags/hello/runs/{RUN_ID}/tasks/greet/logs/1/stream");
    let response = app
        .send(
            Request::get(&uri)
                .header("last-event-id", "36")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let (_, body) = text(response).await;
    assert!(
        !body.contains("Try 1 of 1"),
        "lines before the offset are not sent again: {body}"
    );
    assert!(body.contains("event: lines\nid: 113\ndata: 2026-11-25T10:00:00.100Z hello world\ndata: 2026-11-25T10:00:00.200Z Task succeeded\n"), "{body}");
    assert!(body.contains("event: end\n"), "{body}");
    let (_, _) = text(
        app.send(
            Request::get(format!("{uri}?from=7"))
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(app.backend.memory().follow_from, [36, 7]);
}

#[tokio::test]
async fn the_live_stream_replays_what_a_reconnecting_page_missed() {
    let app = App::public();
    let response = app
        .send(
            Request::get("/live/events")
                .header("last-event-id", "1")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let (_, body) = text(response).await;
    assert!(!body.contains("id: 1\n"));
    assert!(
        body.contains("event: state\n") && body.contains("id: 2\n") && body.contains("id: 3\n"),
        "{body}"
    );
    assert!(body.contains("\"dag_id\":\"hello\""));
    let (_, body) = text(
        app.send(
            Request::get("/live/events")
                .header("last-event-id", "0")
                .body(Body::empty())
                .unwrap(),
        )
        .await,
    )
    .await;
    assert!(
        body.starts_with("event: reset\n"),
        "a gap asks the page to reload: {body}"
    );
}

#[tokio::test]
async fn health_is_json() {
    for uri in ["/health", "/api/v1/health"] {
        let (status, body) =
            json(App::public().send(json_request("GET", uri, None, "")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "healthy");
        assert_eq!(body["scheduler"]["heartbeat_age_seconds"], 0.5);
    }
}

#[tokio::test]
async fn task_logs_answer_json_with_a_continuation_token_when_asked() {
    use axum::http::header;
    let app = App::public();
    let uri = format!("/api/v1/dags/hello/dagRuns/{RUN_ID}/taskInstances/greet/logs/1");
    let get = |uri: String, accept: &'static str| {
        let mut request = json_request("GET", &uri, None, "");
        request
            .headers_mut()
            .insert(header::ACCEPT, accept.parse().unwrap());
        request
    };
    let (status, body) = json(app.send(get(uri.clone(), "application/json")).await).await;
    assert_eq!(status, StatusCode::OK);
    let content = body["content"].as_str().unwrap();
    assert!(content.contains("hello world"), "{body}");
    let token = body["continuation_token"].as_str().unwrap().to_owned();
    assert_eq!(token, content.len().to_string());
    let (_, rest) = json(
        app.send(get(format!("{uri}?token={token}"), "application/json"))
            .await,
    )
    .await;
    assert_eq!(rest["content"], "", "nothing new after the token");
    let (status, body) = json(
        app.send(get(format!("{uri}?token=x"), "application/json"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, text) = support::text(app.send(get(uri, "text/plain")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.starts_with("2026-11-25T10:00:00.000Z Try 1"),
        "the file as text: {text}"
    );
}

#[tokio::test]
async fn clear_task_instances_takes_airflows_body() {
    let app = App::public();
    let clear = |body: String| {
        json_request(
            "POST",
            "/api/v1/dags/hello/clearTaskInstances",
            Some(TOKEN),
            &body,
        )
    };
    let (status, body) = json(
        app.send(clear(format!(
            r#"{{"dag_run_id": "{RUN_ID}", "task_ids": ["greet"], "include_downstream": true}}"#
        )))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["report"], "only the failed one, below greet: {body}");
    assert!(
        app.backend.memory().cleared.is_empty(),
        "a dry run unless dry_run is false"
    );
    let (status, body) = json(
        app.send(clear(format!(
            r#"{{"dag_run_id": "{RUN_ID}", "task_ids": ["greet"], "include_downstream": true, "only_failed": false, "dry_run": false}}"#
        )))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cleared: Vec<String> = app
        .backend
        .memory()
        .cleared
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(cleared, ["greet", "report"]);
    let (status, body) = json(app.send(clear(r#"{"task_ids": ["greet"]}"#.into())).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("dag_run_id"),
        "{body}"
    );
}
