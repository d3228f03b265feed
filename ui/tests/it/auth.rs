//! Sign-in, sessions, CSRF and bearer tokens.

use crate::support;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use support::{
    App, MemoryBackend, PASSWORD, RUN_ID, TOKEN, form_request, json, json_request, text,
};
use ui::UiConfig;

#[tokio::test]
async fn signing_in_sets_an_http_only_same_site_cookie_and_goes_back() {
    let app = App::public();
    let body = format!(
        "username=admin&password={}&next=%2Fdags%2Fhello",
        PASSWORD.replace(' ', "+")
    );
    let response = app.send(form_request("/login", None, &body)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/dags/hello");
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("updraft_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP by default");
}

#[tokio::test]
async fn a_secure_deployment_marks_the_cookie_secure() {
    let app = App::new(
        MemoryBackend::default(),
        UiConfig {
            secure_cookies: true,
            ..UiConfig::default()
        },
    );
    let body = format!("username=admin&password={}", PASSWORD.replace(' ', "+"));
    let response = app.send(form_request("/login", None, &body)).await;
    assert!(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
}

#[tokio::test]
async fn a_redirect_after_sign_in_stays_on_this_site() {
    let app = App::public();
    // (the form's `next`, URL-encoded; where the sign-in sends the browser)
    let cases = [
        ("%2Fdags%2Fhello", "/dags/hello"),
        ("%2Fdags%3Ftag%3Detl", "/dags?tag=etl"),
        ("%2F%2Fevil.example", "/dags"),
        ("%2F%5Cevil.example", "/dags"),
        ("%5C%5Cevil.example", "/dags"),
        ("%2F%09%2Fevil.example", "/dags"),
        ("%2F%0A%2Fevil.example", "/dags"),
        ("%2Fdags%0D%0ASet-Cookie%3A+x%3D1", "/dags"),
        ("%2Fok%5C..%5Cevil", "/dags"),
        ("https%3A%2F%2Fevil.example", "/dags"),
        ("javascript%3Aalert(1)", "/dags"),
        ("evil.example", "/dags"),
        ("", "/dags"),
    ];
    for (next, expected) in cases {
        let body = format!(
            "username=admin&password={}&next={next}",
            PASSWORD.replace(' ', "+")
        );
        let response = app.send(form_request("/login", None, &body)).await;
        assert_eq!(
            response.headers()[header::LOCATION],
            expected,
            "next={next}"
        );
    }
}

#[tokio::test]
async fn failed_sign_ins_are_refused_then_rate_limited() {
    let app = App::public();
    for _ in 0..5 {
        let (status, html) = text(
            app.send(form_request(
                "/login",
                None,
                "username=admin&password=wrong",
            ))
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(html.contains("Wrong user name or password"));
    }
    let body = format!("username=admin&password={}", PASSWORD.replace(' ', "+"));
    let (status, html) = text(app.send(form_request("/login", None, &body)).await).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(html.contains("Too many failed sign-ins"));
}

#[tokio::test]
async fn one_address_gets_a_bounded_number_of_guesses_whatever_the_names() {
    let app = App::new(
        MemoryBackend::default(),
        UiConfig {
            max_failed_sign_ins_per_client: 3,
            ..UiConfig::default()
        },
    );
    let from = |ip: [u8; 4], body: &str| {
        let mut request = form_request("/login", None, body);
        let address = std::net::SocketAddr::from((ip, 40000));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(address));
        request
    };
    for name in ["ann", "bob", "cid"] {
        let body = format!("username={name}&password=wrong");
        let response = app.send(from([192, 0, 2, 1], &body)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    let right = format!("username=admin&password={}", PASSWORD.replace(' ', "+"));
    let (status, html) = text(app.send(from([192, 0, 2, 1], &right)).await).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a 4th name from the address"
    );
    assert!(html.contains("from your address"), "{html}");
    let other = app.send(from([192, 0, 2, 2], &right)).await;
    assert_eq!(
        other.status(),
        StatusCode::SEE_OTHER,
        "another address signs in"
    );
    let audited = app.backend.memory().audited.clone();
    let failed: Vec<_> = audited
        .iter()
        .filter(|(_, event, _)| event == "sign_in_failed")
        .map(|(actor, _, _)| actor.source.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        failed, ["192.0.2.1"; 4],
        "each failure audited with its address"
    );
}

#[tokio::test]
async fn writes_need_a_user() {
    let app = App::public();
    let (status, body) = json(
        app.send(json_request(
            "POST",
            "/api/v1/dags/hello/dagRuns",
            None,
            "{}",
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], 401);
    assert_eq!(body["title"], "Unauthorized");
    let response = app
        .send(form_request("/dags/hello/pause", None, "paused=true"))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );
    assert!(app.backend.memory().triggered.is_empty() && !app.backend.memory().paused);
}

#[tokio::test]
async fn an_unknown_bearer_token_is_refused() {
    let app = App::public();
    let (status, body) = json(
        app.send(json_request("GET", "/api/v1/dags", Some("nope"), ""))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown or revoked")
    );
}

#[tokio::test]
async fn a_bearer_token_writes_without_csrf() {
    let app = App::public();
    let (status, body) = json(
        app.send(json_request(
            "PATCH",
            "/api/v1/dags/hello",
            Some(TOKEN),
            r#"{"is_paused": true}"#,
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_paused"], true);
    let actors = app.backend.memory().actors.clone();
    assert_eq!(actors, [ui::views::Actor::new("robot", None)]);
}

#[tokio::test]
async fn cookie_writes_without_the_csrf_token_are_refused() {
    let app = App::public();
    let session = app.sign_in().await;
    let response = app
        .send(form_request(
            "/dags/hello/pause",
            Some(&session.cookie),
            "paused=true",
        ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app
        .send(form_request(
            "/dags/hello/pause",
            Some(&session.cookie),
            "paused=true&csrf=wrong",
        ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let mut request = json_request("POST", "/api/v1/dags/hello/dagRuns", None, "{}");
    request
        .headers_mut()
        .insert(header::COOKIE, session.cookie.parse().unwrap());
    assert_eq!(app.send(request).await.status(), StatusCode::FORBIDDEN);
    assert!(!app.backend.memory().paused && app.backend.memory().triggered.is_empty());
}

#[tokio::test]
async fn cookie_writes_with_the_csrf_token_act_as_the_user() {
    let app = App::public();
    let session = app.sign_in().await;
    let body = format!("paused=true&next=%2Fdags&csrf={}", session.csrf);
    let response = app
        .send(form_request(
            "/dags/hello/pause",
            Some(&session.cookie),
            &body,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/dags");
    assert!(app.backend.memory().paused);
    let mut request = json_request(
        "POST",
        "/api/v1/dags/hello/dagRuns",
        None,
        r#"{"conf": {"name": "you"}}"#,
    );
    request
        .headers_mut()
        .insert(header::COOKIE, session.cookie.parse().unwrap());
    request
        .headers_mut()
        .insert("x-csrf-token", session.csrf.parse().unwrap());
    assert_eq!(app.send(request).await.status(), StatusCode::OK);
    let actors = app.backend.memory().actors.clone();
    assert!(
        actors.len() == 2 && actors.iter().all(|a| a.username == "admin"),
        "{actors:?}"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = App::public();
    let session = app.sign_in().await;
    let body = format!("csrf={}", session.csrf);
    let response = app
        .send(form_request("/logout", Some(&session.cookie), &body))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let body = format!("paused=true&csrf={}", session.csrf);
    let response = app
        .send(form_request(
            "/dags/hello/pause",
            Some(&session.cookie),
            &body,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login"),
        "the old cookie no longer signs in"
    );
    assert!(!app.backend.memory().paused);
}

#[tokio::test]
async fn private_reading_needs_a_sign_in() {
    let app = App::new(
        MemoryBackend::default(),
        UiConfig {
            public_read: false,
            ..UiConfig::default()
        },
    );
    let response = app
        .send(Request::get("/dags/hello").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/login?next=/dags/hello"
    );
    let (status, _) = app.get("/api/v1/dags").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .get(&format!("/dags/hello/runs/{RUN_ID}/tasks/greet/logs/1/raw"))
        .await;
    assert_ne!(status, StatusCode::OK);
    for open in ["/login", "/health", "/static/app.css"] {
        assert_eq!(app.get(open).await.0, StatusCode::OK, "{open}");
    }
    let (status, body) = json(
        app.send(json_request("GET", "/api/v1/dags", Some(TOKEN), ""))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_entries"], 1);
    let session = app.sign_in().await;
    let page = app
        .send(
            Request::get("/dags/hello")
                .header(header::COOKIE, &session.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions() {
    let app = App::public();
    let session = app.sign_in().await;
    let body = format!("paused=true&next=%2Fdags&csrf={}", session.csrf);
    // Refused while the user is missing, and still once they are back: the session ended.
    for deleted in [true, false] {
        app.backend.memory().admin_deleted = deleted;
        let response = app
            .send(form_request(
                "/dags/hello/pause",
                Some(&session.cookie),
                &body,
            ))
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with("/login"), "{location}");
    }
    assert!(!app.backend.memory().paused);
}

#[tokio::test]
async fn a_password_change_ends_the_sessions_signed_in_before_it() {
    let app = App::public();
    let before = app.sign_in().await;
    app.backend.memory().admin_password_changed_at = Some(chrono::Utc::now());
    let (status, _) = app.get_in(&before, "/dags/hello/trigger").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the old session has ended");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let after = app.sign_in().await;
    let (status, _) = app.get_in(&after, "/dags/hello/trigger").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a sign-in with the new password works"
    );
    let (status, _) = app.get_in(&before, "/dags/hello/trigger").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "and the old one stays ended");
}

#[tokio::test]
async fn http_basic_credentials_work_as_airflows_clients_send_them() {
    use base64::Engine as _;
    let app = App::new(MemoryBackend::default(), UiConfig::default());
    let basic = |user: &str, password: &str| {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    };
    let request = |method: &str, uri: &str, authorization: &str, body: &str| {
        let mut request = json_request(method, uri, None, body);
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, authorization.parse().unwrap());
        request
    };
    let admin = basic("admin", PASSWORD);
    for _ in 0..3 {
        let response = app.send(request("GET", "/api/v1/dags", &admin, "")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let pause = request(
        "PATCH",
        "/api/v1/dags/hello",
        &admin,
        r#"{"is_paused": true}"#,
    );
    assert_eq!(
        app.send(pause).await.status(),
        StatusCode::OK,
        "no CSRF token needed"
    );
    assert_eq!(
        app.backend.memory().password_checks,
        1,
        "checked once, then remembered"
    );
    let viewer = request(
        "PATCH",
        "/api/v1/dags/hello",
        &basic("vera", PASSWORD),
        "{}",
    );
    assert_eq!(app.send(viewer).await.status(), StatusCode::FORBIDDEN);
    let wrong = app
        .send(request("GET", "/api/v1/dags", &basic("admin", "wrong"), ""))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"Updraft\""
    );
    // The password changed: remembered credentials are checked again (and now fail).
    app.backend.memory().admin_password_changed_at = Some(chrono::Utc::now());
    let before = app.backend.memory().password_checks;
    let response = app.send(request("GET", "/api/v1/dags", &admin, "")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the memory backend keeps PASSWORD"
    );
    assert_eq!(app.backend.memory().password_checks, before + 1);
}
