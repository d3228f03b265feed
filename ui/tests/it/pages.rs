//! Every page renders what it should; unknown things are 404 pages; user strings are escaped.

use crate::support;

use axum::http::StatusCode;
use support::{App, MemoryBackend, RUN_ID};

#[tokio::test]
async fn the_dag_list_shows_dags_recent_runs_and_an_import_error_banner() {
    let (status, html) = App::public().get("/dags").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/dags/hello\""), "{html}");
    assert!(html.contains("Say hello"));
    assert!(html.contains("*/5 * * * *"));
    assert!(
        html.contains("class=\"sq s-success\""),
        "a square per recent run"
    );
    assert!(html.contains("id=\"import-errors-banner\""));
    assert!(html.contains("dags/broken.toml"));
    assert!(
        html.contains("data-live-src=\"/dags/rows"),
        "the rows refresh live"
    );
}

#[tokio::test]
async fn the_dag_filter_narrows_the_list() {
    let (_, html) = App::public().get("/dags?search=nomatch").await;
    assert!(!html.contains("href=\"/dags/hello\""));
    assert!(html.contains("No DAG matches"));
    let (_, html) = App::public().get("/dags/rows?search=example").await;
    assert!(html.contains("href=\"/dags/hello\""));
}

#[tokio::test]
async fn the_import_errors_page_lists_file_line_column_and_field() {
    let (status, html) = App::public().get("/import-errors").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("dags/broken.toml"));
    assert!(html.contains("line 3, column 7"));
    assert!(html.contains("dag.schedule"));
    assert!(
        html.contains("bad cron expression &#34;every day&#34;")
            || html.contains("bad cron expression &quot;every day&quot;"),
        "{html}"
    );
}

#[tokio::test]
async fn the_dag_page_has_the_grid_the_graph_the_history_and_the_source() {
    let (status, html) = App::public().get("/dags/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"grid\""));
    assert!(
        html.contains("class=\"cell s-failed\""),
        "cells coloured by state"
    );
    assert!(
        html.contains(&format!("/dags/hello/runs/{RUN_ID}/tasks/greet/logs/1")),
        "cells link to the try's log"
    );
    assert!(html.contains("<svg class=\"graph\""));
    assert!(html.contains("class=\"edge\""), "an edge greet -> report");
    assert!(
        html.contains("class=\"node s-failed\""),
        "nodes coloured by the selected run"
    );
    assert!(html.contains("id=\"history\""));
    assert!(html.contains("id=\"L1\""), "source lines are numbered");
    let (status, live) = App::public().get("/dags/hello/live").await;
    assert_eq!(status, StatusCode::OK);
    assert!(live.contains("id=\"grid\"") && !live.contains("<html"));
}

#[tokio::test]
async fn a_bad_history_filter_is_refused_with_its_field() {
    let (status, html) = App::public().get("/dags/hello?state=bogus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("state: unknown state"), "{html}");
}

#[tokio::test]
async fn unknown_dags_runs_and_tries_are_404_pages() {
    let app = App::public();
    let session = app.sign_in().await;
    for uri in [
        "/dags/nope".to_owned(),
        "/dags/nope/trigger".to_owned(),
        format!("/dags/hello/runs/{RUN_ID}x"),
        format!("/dags/hello/runs/{RUN_ID}/tasks/greet/logs/2"),
        format!("/dags/hello/runs/{RUN_ID}/tasks/greet/logs/0"),
        format!("/dags/hello/runs/{RUN_ID}/tasks/nope/logs/1"),
    ] {
        let (status, html) = app.get_in(&session, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(html.contains("id=\"error-detail\""), "{uri}: {html}");
    }
}

#[tokio::test]
async fn path_traversal_names_nothing() {
    let app = App::public();
    for uri in [
        "/dags/..%2F..%2Fetc/runs/x/tasks/y/logs/1/raw",
        "/dags/hello/runs/..%2F..%2Fetc/tasks/passwd/logs/1/raw",
        "/dags/hello/runs/x/tasks/..%2F..%2F..%2Fetc%2Fpasswd/logs/1/raw",
        "/api/v1/dags/hello/dagRuns/..%2F..%2F/taskInstances/t/logs/1",
    ] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert!(!body.contains("root:"), "{uri}");
    }
}

#[tokio::test]
async fn a_param_holding_a_script_is_escaped_on_the_trigger_page() {
    let backend = MemoryBackend {
        name_default: "<script>alert(1)</script>".into(),
        ..MemoryBackend::default()
    };
    let app = App::public_with(backend);
    let session = app.sign_in().await;
    let (status, html) = app.get_in(&session, "/dags/hello/trigger").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>alert(1)</script>"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    let (_, json) = app.get("/api/v1/dags/hello").await;
    assert!(
        json.contains("<script>alert(1)</script>"),
        "JSON keeps the value as it is"
    );
}

#[tokio::test]
async fn the_trigger_form_has_one_typed_input_per_param_and_a_conf_editor() {
    let app = App::public();
    let session = app.sign_in().await;
    let (_, html) = app.get_in(&session, "/dags/hello/trigger").await;
    assert!(
        html.contains("name=\"param.name\" value=\"world\""),
        "{html}"
    );
    assert!(
        html.contains(
            "type=\"number\" id=\"param-results\" name=\"param.results\" value=\"10\" step=\"1\""
        ),
        "{html}"
    );
    assert!(html.contains("id=\"conf\" name=\"conf\" data-json=\"object\""));
}

#[tokio::test]
async fn the_run_page_shows_task_instances_a_timeline_conf_and_results() {
    let (status, html) = App::public()
        .get(&format!("/dags/hello/runs/{RUN_ID}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"task-instances\""));
    assert!(html.contains("data-task=\"report\" data-state=\"failed\""));
    assert!(html.contains("class=\"gantt\""));
    assert!(html.contains("worker-7"), "the worker that ran each try");
    assert!(html.contains("id=\"run-conf\""));
    assert!(
        html.contains("&#34;exit_code&#34;") || html.contains("&quot;exit_code&quot;"),
        "results shown"
    );
    assert!(
        !html.contains("id=\"stop-run\""),
        "a finished run has no stop button"
    );
    assert!(
        !html.contains("id=\"clear-greet\""),
        "actions need a sign-in"
    );
}

#[tokio::test]
async fn the_log_page_opens_on_the_tail_with_permalinks_and_highlights_search_hits() {
    let base = format!("/dags/hello/runs/{RUN_ID}/tasks/greet/logs/1");
    let (status, html) = App::public().get(&base).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"o0\""), "lines anchored by byte offset");
    assert!(
        html.contains(&format!("href=\"{base}?at=36#o36\"")),
        "{html}"
    );
    assert!(html.contains("data-finished=\"true\""));
    assert!(html.contains(&format!("data-stream-url=\"{base}/stream\"")));
    let (_, html) = App::public().get(&format!("{base}?q=HELLO")).await;
    assert!(html.contains("1 matching line for"), "{html}");
    assert!(html.contains("<mark>hello</mark>"));
    let (status, _) = App::public()
        .get(&format!("/dags/hello/runs/{RUN_ID}/tasks/greet"))
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a task's page is its latest try's log"
    );
}

#[tokio::test]
async fn static_assets_are_served_with_long_cache_lifetimes() {
    let app = App::public();
    let response = app
        .send(
            axum::http::Request::get("/static/app.js")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let (status, _) = app.get("/static/nope.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, html) = app.get("/dags").await;
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
}

#[tokio::test]
async fn the_workers_page_shows_each_worker_its_tries_and_who_schedules() {
    let (status, html) = App::public().get("/workers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-worker=\"w1\""), "{html}");
    assert!(html.contains("default, etl"));
    assert!(html.contains("1 / 8"), "slots used of slots");
    assert!(
        html.contains("href=\"/dags/etl/runs/manual__1/tasks/load/logs/2\""),
        "a link to each running try's log"
    );
    assert!(html.contains("Scheduling: <span class=\"mono\">host-a:1</span>"));
    assert!(
        html.contains("stands by"),
        "this serve is not the one scheduling"
    );
    assert!(
        html.contains("href=\"/workers\""),
        "the menu links the page"
    );
}

#[tokio::test]
async fn the_workers_api_answers_the_same_view() {
    let (status, json) = support::json(
        App::public()
            .send(support::json_request("GET", "/api/v1/workers", None, ""))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["scheduler"], "host-a:1");
    assert_eq!(json["workers"][0]["name"], "w1");
    assert_eq!(json["workers"][0]["tries"][0]["try_number"], 2);
    assert_eq!(json["workers"][0]["queues"][1], "etl");
}

/// Pages, the API, errors and static assets all carry the security headers.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    use axum::{body::Body, http::Request};
    let app = App::public();
    for uri in [
        "/dags",
        "/api/v1/dags",
        "/nope",
        "/login",
        "/health",
        "/static/app.css",
    ] {
        let response = app
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        let headers = response.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("x-frame-options"), Some("DENY"), "{uri}");
        assert_eq!(header("x-content-type-options"), Some("nosniff"), "{uri}");
        assert_eq!(header("referrer-policy"), Some("same-origin"), "{uri}");
        assert!(
            header("content-security-policy")
                .is_some_and(|csp| csp.contains("frame-ancestors 'none'")
                    && csp.contains("script-src 'self';")
                    && !csp.contains("unsafe-eval")),
            "{uri}"
        );
    }
}

#[test]
fn no_template_has_an_inline_script_or_handler() {
    // The CSP's `script-src 'self'` blocks both: they would silently stop working.
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut stack = vec![templates];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            checked += 1;
            for (n, line) in text.lines().enumerate() {
                let inline_script = line.contains("<script") && !line.contains(" src=");
                let handler = line
                    .split_whitespace()
                    .any(|word| word.starts_with("on") && word.contains("=\""));
                assert!(
                    !inline_script && !handler && !line.contains("javascript:"),
                    "{}:{}: inline script under a CSP without 'unsafe-inline': {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
    assert!(checked > 10, "found the templates");
}

#[tokio::test]
async fn the_run_page_shows_the_dag_version_it_ran_and_its_code() {
    let (status, html) = App::public()
        .get(&format!("/dags/hello/runs/{RUN_ID}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"run-dag-version\""), "{html}");
    assert!(
        html.contains(">v2</a>") && html.contains("file changed since"),
        "{html}"
    );
    assert!(html.contains("id=\"dag-version-source\""), "{html}");
    assert!(
        html.contains("# as it ran"),
        "the code as the run was created: {html}"
    );
    assert!(
        html.contains("id=\"dag-version-diff\"") && html.contains("<span class=\"d-del\">-id"),
        "the diff to the file now: {html}"
    );
    let (status, text) = App::public()
        .get(&format!("/dags/hello/runs/{RUN_ID}/source"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "[dag]\nid = \"hello\"  # as it ran\n");
    let (status, body) = App::public().get("/api/v1/dags/hello/dagVersions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["total_entries"], 2);
    assert_eq!(body["dag_versions"][1]["is_current"], true);
    let (_, run) = App::public()
        .get(&format!("/api/v1/dags/hello/dagRuns/{RUN_ID}"))
        .await;
    assert!(run.contains("\"dag_version_number\":2"), "{run}");
    let (status, _) = App::public().get("/api/v1/dags/nope/dagVersions").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
