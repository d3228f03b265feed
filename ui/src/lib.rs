//! Updraft's web UI and REST API: server-rendered askama pages with a small embedded script
//! for the live parts, and a JSON API shaped after Airflow's under `/api/v1`. The orchestrator
//! implements [`Backend`]; this crate knows nothing of the scheduler or the store.

// What another crate does not use is not `pub`.
#![warn(unreachable_pub)]

mod assets;
mod auth;
mod backend;
mod basic_auth;
mod error;
mod headers;
mod html;
mod ids;
mod routes;
mod shared;
mod sse;
pub mod views;

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, middleware};

pub use backend::{Backend, BackendError, BackendResult};
pub use ids::{DagId, RunKey, TaskKey, TryKey};

/// How the UI behaves.
#[derive(Debug, Clone)]
pub struct UiConfig {
    /// Whether pages and the read API need no sign-in (writes always do). Off by default:
    /// every page and API route needs a user or a token, but `/health`, `/login` and the
    /// static assets.
    pub public_read: bool,
    /// Mark the session cookie `Secure` (when served over HTTPS, e.g. behind a proxy).
    pub secure_cookies: bool,
    /// A session ends after this long without a request.
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, however active.
    pub session_max_lifetime: Duration,
    /// Failed sign-ins allowed per user name within `sign_in_window`.
    pub max_failed_sign_ins: usize,
    /// Failed sign-ins allowed per client address within `sign_in_window`, whatever the
    /// names tried (higher than per name: one address may be many people behind a NAT).
    pub max_failed_sign_ins_per_client: usize,
    pub sign_in_window: Duration,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// Live connections (server-sent events) open at once, in all and per client address;
    /// beyond them a client gets 503 with `Retry-After`.
    pub max_live_connections: usize,
    pub max_live_connections_per_client: usize,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            public_read: false,
            secure_cookies: false,
            session_idle_timeout: Duration::from_secs(8 * 3600),
            session_max_lifetime: Duration::from_secs(24 * 3600),
            max_failed_sign_ins: 5,
            max_failed_sign_ins_per_client: 20,
            sign_in_window: Duration::from_secs(15 * 60),
            max_body_bytes: 256 * 1024,
            max_live_connections: 1024,
            max_live_connections_per_client: 64,
        }
    }
}

/// What every handler reaches.
#[derive(Clone)]
pub(crate) struct AppState {
    pub backend: Arc<dyn Backend>,
    pub config: Arc<UiConfig>,
    pub sessions: Arc<auth::Sessions>,
    /// Failed sign-ins by user name, and by client address.
    pub limiter: Arc<auth::SignInLimiter>,
    pub client_limiter: Arc<auth::SignInLimiter>,
    /// HTTP Basic credentials verified lately (a minute: no argon2 hash per request).
    pub verified: Arc<basic_auth::VerifiedCredentials>,
    pub sse_slots: Arc<sse::SseSlots>,
    pub shared_renders: Arc<shared::SharedRenders>,
}

/// The whole UI: pages, the live streams, the REST API and the static assets.
pub fn router(backend: Arc<dyn Backend>, config: UiConfig) -> Router {
    let state = AppState {
        backend,
        sessions: Arc::new(auth::Sessions::new(
            config.session_idle_timeout,
            config.session_max_lifetime,
        )),
        limiter: Arc::new(auth::SignInLimiter::new(
            config.max_failed_sign_ins,
            config.sign_in_window,
        )),
        client_limiter: Arc::new(auth::SignInLimiter::new(
            config.max_failed_sign_ins_per_client,
            config.sign_in_window,
        )),
        verified: Arc::new(basic_auth::VerifiedCredentials::new(Duration::from_secs(
            60,
        ))),
        sse_slots: Arc::new(sse::SseSlots::new(
            config.max_live_connections,
            config.max_live_connections_per_client,
        )),
        shared_renders: Arc::default(),
        config: Arc::new(config),
    };
    routes::router()
        .layer(middleware::from_fn_with_state(state.clone(), sse::limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::map_response(headers::add))
        .with_state(state)
}
