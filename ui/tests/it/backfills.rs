//! Backfills through the router: the form (preview, start, errors beside their fields), the
//! DAG page's progress panel, and `/api/v1/dags/{dag_id}/backfills`.

use axum::http::{StatusCode, header};

use crate::support::{App, TOKEN, form_request, json, json_request, text};

#[tokio::test]
async fn the_form_previews_the_dates_then_starts_the_backfill() {
    let app = App::public();
    let session = app.sign_in().await;
    let (status, html) = app.get_in(&session, "/dags/hello/backfill").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for field in [
        "from_date",
        "to_date",
        "reprocess_behavior",
        "max_active_runs",
        "run_backwards",
        "conf",
    ] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "{field}: {html}"
        );
    }
    let post = |body: &str| {
        form_request(
            "/dags/hello/backfill",
            Some(&session.cookie),
            &format!("{body}&csrf={}", session.csrf),
        )
    };
    let (status, html) = text(
        app.send(post("from_date=2026-01-01&to_date=2026-01-02&preview=1"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"backfill-plan\""), "{html}");
    assert!(html.contains("2 of 3 dates would run"), "{html}");
    assert!(html.contains("skip: has a run (success)"), "{html}");
    assert!(
        app.backend.memory().backfills.is_empty(),
        "a preview creates nothing"
    );

    let (status, html) = text(
        app.send(post("from_date=yesterday&to_date=2026-01-02"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        html.contains("id=\"from_date-error\" role=\"alert\" data-server=\"1\">bad date"),
        "the error stands beside its field: {html}"
    );
    let (status, html) = text(
        app.send(post("from_date=2026-01-01&to_date=2026-01-02&conf=%5B1%5D"))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("must be a JSON object"), "{html}");

    let response = app
        .send(post(
            "from_date=2026-01-01&to_date=2026-01-02&reprocess_behavior=failed&max_active_runs=3&run_backwards=on",
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/dags/hello#backfills"
    );
    let created = app.backend.memory().backfills.clone();
    assert_eq!(created.len(), 1);
    assert_eq!(
        (
            created[0].reprocess_behavior.as_str(),
            created[0].max_active_runs,
            created[0].run_backwards
        ),
        ("failed", 3, true)
    );

    let (_, page) = app.get_in(&session, "/dags/hello").await;
    assert!(
        page.contains("id=\"backfill\""),
        "the Backfill button: {page}"
    );
    assert!(page.contains("id=\"backfill-1\""), "{page}");
    assert!(page.contains("3 at once · latest first"), "{page}");
    assert!(
        page.contains("1 done") && page.contains("1 queued"),
        "{page}"
    );
    assert!(page.contains("/dags/hello/backfills/1/pause"), "{page}");
    let pause = form_request(
        "/dags/hello/backfills/1/pause",
        Some(&session.cookie),
        &format!("csrf={}", session.csrf),
    );
    assert_eq!(app.send(pause).await.status(), StatusCode::SEE_OTHER);
    let (_, page) = app.get_in(&session, "/dags/hello").await;
    assert!(page.contains("/dags/hello/backfills/1/unpause"), "{page}");
    assert!(page.contains(">Resume<"), "{page}");
}

#[tokio::test]
async fn the_api_plans_creates_lists_and_changes_backfills() {
    let app = App::public();
    let send = |method: &str, uri: &str, body: &str| {
        app.send(json_request(method, uri, Some(TOKEN), body))
    };
    let (status, body) = json(
        send(
            "POST",
            "/api/v1/dags/hello/backfills",
            r#"{"from_date": "2026-01-01", "to_date": "2026-01-02", "dry_run": true}"#,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_entries"], 3);
    assert_eq!(body["dates"][1]["action"], "skip");
    assert!(body["backfill"].is_null(), "{body}");

    let (status, body) = json(
        send(
            "POST",
            "/api/v1/dags/hello/backfills",
            r#"{"from_date": "2026-01-01", "to_date": "2026-01-02", "reprocess_behavior": "completed", "max_active_runs": 2, "dag_run_conf": {"results": 1}, "run_backwards": true}"#,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let backfill = &body["backfill"];
    assert_eq!(backfill["id"], 1);
    assert_eq!(backfill["dag_id"], "hello");
    assert_eq!(backfill["max_active_runs"], 2);
    assert_eq!(backfill["run_backwards"], true);
    assert_eq!(backfill["dag_run_conf"]["results"], 1);
    assert_eq!(backfill["progress"]["total"], 2);

    let (status, body) = json(send("GET", "/api/v1/dags/hello/backfills", "").await).await;
    assert_eq!(
        (status, body["total_entries"].clone()),
        (StatusCode::OK, 1.into())
    );
    let (status, body) = json(send("GET", "/api/v1/dags/hello/backfills/1", "").await).await;
    assert_eq!((status, body["id"].clone()), (StatusCode::OK, 1.into()));
    let (status, _) = json(send("GET", "/api/v1/dags/hello/backfills/9", "").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = json(send("PUT", "/api/v1/dags/hello/backfills/1/pause", "").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_paused"], true);
    let (status, body) = json(send("PUT", "/api/v1/dags/hello/backfills/1/cancel", "").await).await;
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, "cancelled".into())
    );
    let (status, body) =
        json(send("PUT", "/api/v1/dags/hello/backfills/1/explode", "").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("pause, unpause or cancel")
    );

    for (request, names) in [
        (
            r#"{"from_date": "soon", "to_date": "2026-01-02"}"#,
            "from_date",
        ),
        (
            r#"{"from_date": "2026-01-01", "to_date": "2026-01-02", "colour": 1}"#,
            "colour",
        ),
        (r#"{"to_date": "2026-01-02"}"#, "from_date"),
    ] {
        let (status, body) =
            json(send("POST", "/api/v1/dags/hello/backfills", request).await).await;
        assert!(status.is_client_error(), "{request}: {status} {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(names),
            "{request}: {body}"
        );
    }
    let (status, _) = json(
        send(
            "POST",
            "/api/v1/dags/nope/backfills",
            r#"{"from_date": "2026-01-01", "to_date": "2026-01-02"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pools_are_listed_set_changed_and_deleted_through_the_api_and_shown_on_their_page() {
    let app = App::public();
    let send = |method: &str, uri: &str, body: &str| {
        app.send(json_request(method, uri, Some(TOKEN), body))
    };
    let (status, body) = json(
        send(
            "POST",
            "/api/v1/pools",
            r#"{"name": "etl", "slots": 4, "description": "the warehouse"}"#,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["slots"].clone(), body["open_slots"].clone()),
        (4.into(), 4.into())
    );
    let (status, body) = json(send("PATCH", "/api/v1/pools/etl", r#"{"slots": 2}"#).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["slots"], 2);
    assert_eq!(
        body["description"], "the warehouse",
        "a PATCH keeps what it does not name"
    );
    let (status, body) = json(send("GET", "/api/v1/pools", "").await).await;
    assert_eq!(
        (status, body["total_entries"].clone()),
        (StatusCode::OK, 1.into())
    );
    let (status, body) =
        json(send("PATCH", "/api/v1/pools/etl", r#"{"name": "other"}"#).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be renamed"),
        "{body}"
    );
    let (status, _) = json(send("PATCH", "/api/v1/pools/nope", r#"{"slots": 1}"#).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = json(send("POST", "/api/v1/pools", r#"{"slots": 1}"#).await).await;
    assert!(
        status.is_client_error() && body["detail"].as_str().unwrap().contains("name"),
        "{body}"
    );

    let (status, html) = app.get("/pools").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("data-pool=\"etl\"") && html.contains("the warehouse"),
        "{html}"
    );
    assert!(html.contains("href=\"/pools\""), "the nav links the pools");

    let response = send("DELETE", "/api/v1/pools/etl", "").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = json(send("GET", "/api/v1/pools/etl", "").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
