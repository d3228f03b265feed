//! Roles per route: a viewer reads, an op also acts, an admin also reads the audit log. The
//! UI hides what a role cannot do and the server refuses it (403), for sessions and tokens.

use crate::support;

use axum::http::{Request, StatusCode, header};
use support::{App, RUN_ID, Session, TOKEN, VIEWER_TOKEN, form_request, json, json_request, text};
use ui::UiConfig;

/// Every write of the UI and the API: (method, path, form or JSON body).
fn writes() -> Vec<(&'static str, String, &'static str)> {
    let run = format!("/dags/hello/runs/{RUN_ID}");
    let api_run = format!("/api/v1/dags/hello/dagRuns/{RUN_ID}");
    vec![
        ("POST", "/dags/hello/pause".into(), "paused=true"),
        ("POST", "/dags/hello/trigger".into(), "conf=%7B%7D"),
        (
            "POST",
            "/dags/hello/backfill".into(),
            "from_date=2026-01-01&to_date=2026-01-02",
        ),
        ("POST", "/dags/hello/backfills/1/pause".into(), ""),
        ("POST", format!("{run}/stop"), ""),
        ("POST", format!("{run}/tasks/greet/clear"), ""),
        ("POST", format!("{run}/tasks/greet/mark"), "state=success"),
        (
            "PATCH",
            "/api/v1/dags/hello".into(),
            r#"{"is_paused": true}"#,
        ),
        (
            "POST",
            "/api/v1/dags/hello/dagRuns".into(),
            r#"{"conf": {}}"#,
        ),
        ("POST", format!("{api_run}/stop"), ""),
        (
            "POST",
            "/api/v1/dags/hello/backfills".into(),
            r#"{"from_date": "2026-01-01", "to_date": "2026-01-02"}"#,
        ),
        ("PUT", "/api/v1/dags/hello/backfills/1/cancel".into(), ""),
        (
            "PATCH",
            format!("{api_run}/taskInstances/greet"),
            r#"{"new_state": "success"}"#,
        ),
        (
            "POST",
            format!("{api_run}/taskInstances/greet/clear"),
            r#"{"include_downstream": false}"#,
        ),
    ]
}

/// A write in `session`: forms for pages, JSON with the CSRF header for the API.
fn write_in(session: &Session, method: &str, path: &str, body: &str) -> Request<axum::body::Body> {
    let mut request = if path.starts_with("/api/") {
        json_request(method, path, None, body)
    } else {
        form_request(path, None, &format!("{body}&csrf={}", session.csrf))
    };
    let headers = request.headers_mut();
    headers.insert(header::COOKIE, session.cookie.parse().unwrap());
    headers.insert("x-csrf-token", session.csrf.parse().unwrap());
    request
}

fn private() -> App {
    App::new(support::MemoryBackend::default(), UiConfig::default())
}

#[tokio::test]
async fn a_viewer_is_refused_every_write_and_an_op_or_admin_gets_through() {
    let app = private();
    for (username, allowed) in [("vera", false), ("olga", true), ("admin", true)] {
        let session = app.sign_in_as(username).await;
        for (method, path, body) in writes() {
            let response = app.send(write_in(&session, method, &path, body)).await;
            let (status, text) = text(response).await;
            if allowed {
                // Through to the backend: done, or refused by the run's state (409).
                assert!(
                    status.is_success()
                        || status.is_redirection()
                        || status == StatusCode::CONFLICT,
                    "{username} {method} {path}: {status} {text}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{username} {method} {path}");
                assert!(
                    text.contains("needs the role op"),
                    "{method} {path}: {text}"
                );
            }
        }
    }
    let memory = app.backend.memory();
    assert!(
        memory.actors.iter().all(|a| a.username != "vera"),
        "no command ran for the viewer"
    );
    let refusals = memory
        .audited
        .iter()
        .filter(|(actor, event, _)| actor.username == "vera" && event == "forbidden")
        .count();
    assert_eq!(refusals, writes().len(), "each refusal is audited");
}

#[tokio::test]
async fn tokens_act_with_their_users_role() {
    let app = private();
    for (token, expected) in [
        (VIEWER_TOKEN, StatusCode::FORBIDDEN),
        (TOKEN, StatusCode::OK),
    ] {
        let request = json_request(
            "PATCH",
            "/api/v1/dags/hello",
            Some(token),
            r#"{"is_paused": true}"#,
        );
        let (status, body) = json(app.send(request).await).await;
        assert_eq!(status, expected, "{token}: {body}");
        let read = json_request("GET", "/api/v1/dags/hello", Some(token), "");
        assert_eq!(
            app.send(read).await.status(),
            StatusCode::OK,
            "{token} reads"
        );
    }
}

#[tokio::test]
async fn the_audit_log_is_for_admins() {
    let app = private();
    for (username, expected) in [
        ("vera", StatusCode::FORBIDDEN),
        ("olga", StatusCode::FORBIDDEN),
        ("admin", StatusCode::OK),
    ] {
        let session = app.sign_in_as(username).await;
        let (page, html) = app.get_in(&session, "/audit").await;
        assert_eq!(page, expected, "{username}: {html}");
        let (api, body) = app.get_in(&session, "/api/v1/eventLogs").await;
        assert_eq!(api, expected, "{username}: {body}");
        let (_, dags) = app.get_in(&session, "/dags").await;
        assert_eq!(
            dags.contains("href=\"/audit\""),
            expected == StatusCode::OK,
            "{username}: the nav links the audit log for admins only"
        );
    }
    let admin = app.sign_in_as("admin").await;
    let (_, body) = app.get_in(&admin, "/api/v1/eventLogs?event=sign_in").await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let owners: Vec<&str> = body["event_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["vera", "olga", "admin", "admin"], "{body}");
    assert_eq!(body["total_entries"], 4);
    let (status, _) = app.get_in(&admin, "/api/v1/eventLogs?order_by=who").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, html) = app.get_in(&admin, "/audit").await;
    assert!(
        html.contains("data-event=\"forbidden\""),
        "the refusals above: {html}"
    );
}

#[tokio::test]
async fn pages_show_a_viewer_no_buttons_and_an_op_all() {
    let app = private();
    let run = format!("/dags/hello/runs/{RUN_ID}");
    for (username, shows) in [("vera", false), ("olga", true)] {
        let session = app.sign_in_as(username).await;
        let (_, list) = app.get_in(&session, "/dags").await;
        let (_, dag) = app.get_in(&session, "/dags/hello").await;
        let (_, run_page) = app.get_in(&session, &run).await;
        assert_eq!(
            list.contains("id=\"trigger-hello\""),
            shows,
            "{username} list"
        );
        assert_eq!(
            list.contains("id=\"pause-hello\""),
            shows,
            "{username} list"
        );
        assert_eq!(dag.contains("id=\"trigger\""), shows, "{username} DAG page");
        assert_eq!(run_page.contains("/clear\""), shows, "{username} run page");
        assert_eq!(list.contains("read only"), !shows, "{username}");
        assert!(
            list.contains(&format!(">{username} <span class=\"tag\"")),
            "{username}'s name and role"
        );
        let (form, _) = app.get_in(&session, "/dags/hello/trigger").await;
        let expected = if shows {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(form, expected, "{username}: the trigger form");
    }
}
