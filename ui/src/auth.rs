//! Who is asking: server-side sessions behind an opaque cookie (UI), bearer tokens (API),
//! CSRF tokens on cookie-authenticated writes, and a limit on failed sign-ins.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    body::{Body, to_bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::{
    AppState,
    basic_auth::Credentials,
    error::{AppError, PageError},
    views::{Actor, Role, User, pages::url_encode},
};

pub(crate) const SESSION_COOKIE: &str = "updraft_session";
/// Form field and header carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The most bytes of a form read to find its CSRF token.
const MAX_FORM_BYTES: usize = 1 << 20;

/// How a request is authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: Option<User>,
    /// The session's CSRF token (cookie sign-ins only), for the forms of the page.
    pub csrf: Option<String>,
    /// The client's address, when the server knows it.
    pub source: Option<String>,
}

impl Principal {
    /// Who a command acts for, as the audit log keeps it.
    pub fn actor(&self) -> Actor {
        let username = self
            .user
            .as_ref()
            .map_or("anonymous", |u| u.username.as_str());
        Actor::new(username, self.source.clone())
    }

    /// Whether the user's role allows what `role` may do.
    pub fn can(&self, role: Role) -> bool {
        self.user.as_ref().is_some_and(|user| user.role >= role)
    }
}

/// A random token: 32 bytes as hex.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Debug, Clone)]
struct Session {
    user: User,
    csrf: String,
    started: Instant,
    /// The wall-clock time of the sign-in (a later password change ends the session).
    signed_in_at: chrono::DateTime<chrono::Utc>,
    last_seen: Instant,
}

/// Sessions held by this process (they end when `serve` restarts, after `idle_timeout`
/// without a request, and `max_lifetime` after sign-in whatever the activity).
pub(crate) struct Sessions {
    idle_timeout: Duration,
    max_lifetime: Duration,
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(crate) fn new(idle_timeout: Duration, max_lifetime: Duration) -> Self {
        Self {
            idle_timeout,
            max_lifetime,
            by_id: Mutex::default(),
        }
    }

    fn is_live(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) < self.idle_timeout
            && now.duration_since(session.started) < self.max_lifetime
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; its id (the cookie's value).
    pub(crate) fn start(&self, user: User) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| self.is_live(s, now));
        sessions.insert(
            id.clone(),
            Session {
                user,
                csrf: random_token(),
                started: now,
                signed_in_at: chrono::Utc::now(),
                last_seen: now,
            },
        );
        id
    }

    /// The user, CSRF token and sign-in time of a live session, which counts as activity.
    fn touch(&self, id: &str) -> Option<(User, String, chrono::DateTime<chrono::Utc>)> {
        let mut sessions = self.lock();
        let now = Instant::now();
        let session = sessions.get_mut(id)?;
        if !self.is_live(session, now) {
            sessions.remove(id);
            return None;
        }
        session.last_seen = now;
        Some((
            session.user.clone(),
            session.csrf.clone(),
            session.signed_in_at,
        ))
    }

    pub(crate) fn end(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Refuses sign-ins for a user name after too many attempts in a window that did not end
/// in success. An attempt is counted before its password is hashed, so a parallel burst gets
/// no more guesses than a sequence. Bounded: names are keyed by their first
/// [`SignInLimiter::NAME_CHARS`] characters, and at most [`SignInLimiter::NAMES`] names are
/// kept (the one whose last attempt is oldest goes first).
pub(crate) struct SignInLimiter {
    max_failures: usize,
    window: Duration,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SignInLimiter {
    const NAME_CHARS: usize = 64;
    const NAMES: usize = 4096;

    pub(crate) fn new(max_failures: usize, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            attempts: Mutex::default(),
        }
    }

    fn key(username: &str) -> String {
        username.chars().take(Self::NAME_CHARS).collect()
    }

    /// Counts an attempt for `username`; false (nothing counted) when it already has too many
    /// in the window.
    pub(crate) fn attempt(&self, username: &str) -> bool {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let key = Self::key(username);
        if !attempts.contains_key(&key) && attempts.len() >= Self::NAMES {
            attempts.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
            if attempts.len() >= Self::NAMES {
                let oldest = attempts
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(name, _)| name.clone());
                if let Some(oldest) = oldest {
                    attempts.remove(&oldest);
                }
            }
        }
        let times = attempts.entry(key).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.max_failures {
            return false;
        }
        times.push_back(now);
        true
    }

    /// A successful sign-in: the name's attempts are forgotten.
    pub(crate) fn succeeded(&self, username: &str) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        attempts.remove(&Self::key(username));
    }

    #[cfg(test)]
    fn names(&self) -> usize {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// The session cookie for `id`.
pub(crate) fn session_cookie(id: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/")
        .build()
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Paths anyone may read, even when reading needs a sign-in.
fn is_open(path: &str) -> bool {
    path == "/login" || path == "/health" || path.starts_with("/static/")
}

/// The role a request needs: `op` for every write (and the trigger form), `admin` for the
/// audit log, `viewer` for the rest. Signing in and out needs none.
fn required_role(writes: bool, path: &str) -> Role {
    let admin_only = ["/audit", "/api/v1/eventLogs"];
    let trigger_form =
        path.starts_with("/dags/") && (path.ends_with("/trigger") || path.ends_with("/backfill"));
    if admin_only.contains(&path) {
        Role::Admin
    } else if writes || trigger_form {
        Role::Op
    } else {
        Role::Viewer
    }
}

/// Resolves the [`Principal`] of every request and enforces: reading needs a user unless
/// reading is public; every write needs a user whose role allows it (see [`required_role`]),
/// and a cookie-authenticated write needs the session's CSRF token (header or form field).
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    jar: CookieJar,
    request: Request,
    next: Next,
) -> Response {
    match authorize(&state, &jar, request).await {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    }
}

async fn authorize(
    state: &AppState,
    jar: &CookieJar,
    mut request: Request,
) -> Result<Request, Response> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let source = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    let claims = Claims {
        token: bearer_token(request.headers()).map(str::to_owned),
        basic: Credentials::of(request.headers()),
        source,
    };
    let (principal, by_cookie) = principal(state, jar, &path, claims).await?;
    let writes = !matches!(method, Method::GET | Method::HEAD);
    let signs_in_or_out = path == "/login" || path == "/logout";
    let needed = required_role(writes, &path);
    if writes && path != "/login" {
        if principal.user.is_none() {
            return Err(unauthorized(&path, "sign in to change anything"));
        }
        if !signs_in_or_out && !principal.can(needed) {
            return Err(forbidden(state, &principal, &method, &path, needed).await);
        }
        if by_cookie {
            request = check_csrf(request, principal.csrf.as_deref().unwrap_or("")).await?;
        }
    } else if principal.user.is_none() {
        let open = is_open(&path) || (state.config.public_read && needed == Role::Viewer);
        if !open {
            return Err(unauthorized(&path, "sign in to see this page"));
        }
    } else if !principal.can(needed) {
        return Err(forbidden(state, &principal, &method, &path, needed).await);
    }
    request.extensions_mut().insert(principal);
    Ok(request)
}

/// What a request says about who sends it.
struct Claims {
    token: Option<String>,
    basic: Option<Credentials>,
    /// The client's address.
    source: Option<String>,
}

/// Who asks: a bearer token's user, else HTTP Basic credentials' user, else the session
/// cookie's; whether by cookie.
async fn principal(
    state: &AppState,
    jar: &CookieJar,
    path: &str,
    claims: Claims,
) -> Result<(Principal, bool), Response> {
    let Claims {
        token,
        basic,
        source,
    } = claims;
    if let Some(credentials) = basic {
        let user = basic_user(state, &credentials, source.as_deref()).await?;
        let principal = Principal {
            user: Some(user),
            csrf: None,
            source,
        };
        return Ok((principal, false));
    }
    if let Some(token) = token {
        let user = state
            .backend
            .user_for_token(&token)
            .await
            .map_err(|e| AppError::from(e).into_response())?;
        if user.is_none() {
            return Err(unauthorized(path, "the bearer token is unknown or revoked"));
        }
        let principal = Principal {
            user,
            csrf: None,
            source,
        };
        return Ok((principal, false));
    }
    let id = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    let session = id.as_deref().and_then(|id| state.sessions.touch(id));
    let (user, csrf) = match (session, id) {
        // A deleted user's sessions end at their next request, as do the sessions signed in
        // before a password change.
        (Some((user, csrf, signed_in_at)), Some(id)) => {
            let user = still_a_user(state, user, &id, signed_in_at).await?;
            (user, Some(csrf))
        }
        _ => (None, None),
    };
    Ok((Principal { user, csrf, source }, true))
}

/// Counts a sign-in attempt, before any hash, by client address and then by user name (an
/// address refused counts no name); why it is refused, if it is.
pub(crate) fn too_many_failures(
    state: &AppState,
    source: Option<&str>,
    username: &str,
) -> Option<&'static str> {
    if !source.is_none_or(|address| state.client_limiter.attempt(address)) {
        Some("Too many failed sign-ins from your address: wait a few minutes")
    } else if !state.limiter.attempt(username) {
        Some("Too many failed sign-ins for this user: wait a few minutes")
    } else {
        None
    }
}

/// The user of HTTP Basic credentials: remembered ones if their user is still there with the
/// same password, else checked (counted by the sign-in limits first, as a sign-in is).
async fn basic_user(
    state: &AppState,
    credentials: &Credentials,
    source: Option<&str>,
) -> Result<User, Response> {
    let backend_error = |e| AppError::from(e).into_response();
    if let Some(at) = state.verified.verified_at(credentials) {
        let verified_at = chrono::Utc::now() - at.elapsed();
        let user = state
            .backend
            .user(&credentials.username)
            .await
            .map_err(backend_error)?
            .filter(|u| u.password_changed_at.is_none_or(|c| c <= verified_at));
        if let Some(user) = user {
            return Ok(user);
        }
    }
    if let Some(message) = too_many_failures(state, source, &credentials.username) {
        return Err(AppError::new(StatusCode::TOO_MANY_REQUESTS, message).into_response());
    }
    let user = state
        .backend
        .authenticate(&credentials.username, &credentials.password)
        .await
        .map_err(backend_error)?;
    let actor = Actor::new(credentials.username.clone(), source.map(str::to_owned));
    let Some(user) = user else {
        let detail = serde_json::json!({"reason": "wrong user name or password (HTTP Basic)"});
        state.backend.audit(&actor, "sign_in_failed", detail).await;
        let mut refused =
            AppError::new(StatusCode::UNAUTHORIZED, "wrong user name or password").into_response();
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"Updraft\""),
        );
        return Err(refused);
    };
    state.limiter.succeeded(&credentials.username);
    state.verified.remember(credentials);
    Ok(user)
}

/// The session's user as the store has them now (with their current role); if they are
/// gone or changed their password after `signed_in_at`, the session ends.
async fn still_a_user(
    state: &AppState,
    user: User,
    session: &str,
    signed_in_at: chrono::DateTime<chrono::Utc>,
) -> Result<Option<User>, Response> {
    let now = state
        .backend
        .user(&user.username)
        .await
        .map_err(|e| AppError::from(e).into_response())?
        .filter(|now| now.password_changed_at.is_none_or(|at| at <= signed_in_at));
    if now.is_none() {
        state.sessions.end(session);
    }
    Ok(now)
}

/// 403 naming the role needed (JSON for the API, a page otherwise); the refusal is audited.
async fn forbidden(
    state: &AppState,
    principal: &Principal,
    method: &Method,
    path: &str,
    needed: Role,
) -> Response {
    let role = principal.user.as_ref().map_or(Role::Viewer, |u| u.role);
    let detail = serde_json::json!({
        "method": method.as_str(),
        "path": path,
        "role": role.as_str(),
        "needs": needed.as_str(),
    });
    state
        .backend
        .audit(&principal.actor(), "forbidden", detail)
        .await;
    let error = AppError::new(
        StatusCode::FORBIDDEN,
        format!("this needs the role {needed}; you are {role}"),
    );
    if is_api(path) {
        error.into_response()
    } else {
        PageError(error).into_response()
    }
}

/// API: 401 JSON. Pages: off to the sign-in page, coming back here after.
fn unauthorized(path: &str, detail: &str) -> Response {
    if is_api(path) {
        AppError::new(StatusCode::UNAUTHORIZED, detail).into_response()
    } else {
        let next: String = url_encode(path);
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

/// The request, if it carries the expected CSRF token in the header or its form body.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, Response> {
    let refused = || {
        AppError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page and try again",
        )
        .into_response()
    };
    if let Some(token) = request.headers().get(CSRF_HEADER) {
        return match token.to_str() {
            Ok(token) if same_token(token, expected) => Ok(request),
            _ => Err(refused()),
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response()
    })?;
    let token = form_urlencoded_value(&bytes, CSRF_FIELD);
    if !token.is_some_and(|t| same_token(&t, expected)) {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_are_limited_per_user_name() {
        let limiter = SignInLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.attempt("admin"));
        }
        assert!(
            !limiter.attempt("admin"),
            "counted before any hash: a 4th is refused"
        );
        assert!(limiter.attempt("other"));
        limiter.succeeded("admin");
        assert!(limiter.attempt("admin"));
    }

    #[test]
    fn the_limiter_is_bounded() {
        let limiter = SignInLimiter::new(3, Duration::from_secs(60));
        let long = "x".repeat(100_000);
        for _ in 0..3 {
            assert!(limiter.attempt(&long));
        }
        let same_prefix = format!("{}y", "x".repeat(SignInLimiter::NAME_CHARS));
        assert!(
            !limiter.attempt(&same_prefix),
            "keyed by the first characters"
        );
        for i in 0..SignInLimiter::NAMES + 10 {
            limiter.attempt(&format!("name{i}"));
        }
        assert_eq!(limiter.names(), SignInLimiter::NAMES);
    }

    #[test]
    fn idle_sessions_expire() {
        let sessions = Sessions::new(Duration::from_millis(300), Duration::from_secs(60));
        let id = sessions.start(User {
            username: "a".into(),
            role: Role::Viewer,
            password_changed_at: None,
        });
        assert!(sessions.touch(&id).is_some());
        std::thread::sleep(Duration::from_millis(400));
        assert!(sessions.touch(&id).is_none());
        assert!(sessions.touch("unknown").is_none());
    }

    #[test]
    fn busy_sessions_end_at_their_lifetime() {
        // Margins wide enough for a loaded machine (40 ms of 60 once failed there).
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_millis(600));
        let id = sessions.start(User {
            username: "a".into(),
            role: Role::Viewer,
            password_changed_at: None,
        });
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(50));
            assert!(sessions.touch(&id).is_some(), "active, within its lifetime");
        }
        std::thread::sleep(Duration::from_millis(600));
        assert!(sessions.touch(&id).is_none(), "ended, however active");
    }

    #[test]
    fn writes_need_op_and_the_audit_log_admin() {
        assert_eq!(required_role(false, "/dags/hello"), Role::Viewer);
        assert_eq!(required_role(true, "/dags/hello/pause"), Role::Op);
        assert_eq!(required_role(false, "/dags/hello/trigger"), Role::Op);
        assert_eq!(required_role(false, "/dags/hello/backfill"), Role::Op);
        assert_eq!(required_role(false, "/audit"), Role::Admin);
        assert_eq!(required_role(false, "/api/v1/eventLogs"), Role::Admin);
    }

    #[test]
    fn csrf_tokens_are_found_in_forms() {
        assert_eq!(
            form_urlencoded_value(b"a=1&csrf=abc%20d&b=2", "csrf").as_deref(),
            Some("abc d")
        );
        assert_eq!(form_urlencoded_value(b"a=1", "csrf"), None);
    }
}
