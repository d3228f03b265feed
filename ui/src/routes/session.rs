//! Sign-in and sign-out.

use axum::{
    Extension, Form, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::back_to;
use crate::{
    AppState,
    auth::{Principal, SESSION_COOKIE, session_cookie, too_many_failures},
    error::PageError,
    html::Page,
    views::{
        Actor,
        pages::{Chrome, LoginPage},
    },
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(sign_in))
        .route("/logout", post(sign_out))
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<NextQuery>,
) -> Page<LoginPage> {
    Page(LoginPage {
        chrome: Chrome::new(&state, &principal, "Sign in"),
        next: query.next.unwrap_or_else(|| "/dags".into()),
        username: String::new(),
        error: None,
    })
}

#[derive(Deserialize)]
struct SignInForm {
    username: String,
    password: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    let refuse = |status: StatusCode, error: &str| {
        let page = LoginPage {
            chrome: Chrome::new(&state, &principal, "Sign in"),
            next: form.next.clone().unwrap_or_else(|| "/dags".into()),
            username: form.username.clone(),
            error: Some(error.to_owned()),
        };
        (status, Page(page)).into_response()
    };
    let attempt = Actor::new(form.username.clone(), principal.source.clone());
    if let Some(message) = too_many_failures(&state, principal.source.as_deref(), &form.username) {
        tracing::warn!(username = %form.username, source = ?principal.source, "Sign-in refused: too many failures");
        let detail = serde_json::json!({"reason": message});
        state
            .backend
            .audit(&attempt, "sign_in_failed", detail)
            .await;
        return Ok(refuse(StatusCode::TOO_MANY_REQUESTS, message));
    }
    let Some(user) = state
        .backend
        .authenticate(&form.username, &form.password)
        .await?
    else {
        tracing::warn!(username = %form.username, "Sign-in failed");
        let detail = serde_json::json!({"reason": "wrong user name or password"});
        state
            .backend
            .audit(&attempt, "sign_in_failed", detail)
            .await;
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password",
        ));
    };
    state.limiter.succeeded(&form.username);
    tracing::info!(username = %user.username, "Signed in");
    let detail = serde_json::json!({"role": user.role.as_str()});
    state.backend.audit(&attempt, "sign_in", detail).await;
    let id = state.sessions.start(user);
    let jar = jar.add(session_cookie(id, state.config.secure_cookies));
    Ok((jar, back_to(form.next.as_deref(), "/dags")).into_response())
}

async fn sign_out(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    jar: CookieJar,
) -> Response {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state.sessions.end(cookie.value());
        let detail = serde_json::json!({});
        state
            .backend
            .audit(&principal.actor(), "sign_out", detail)
            .await;
    }
    let jar = jar.remove(axum_extra::extract::cookie::Cookie::build(SESSION_COOKIE).path("/"));
    (jar, back_to(None, "/dags")).into_response()
}
