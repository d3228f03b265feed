//! Security headers on every response: no framing by other sites, no MIME sniffing, the
//! referrer kept to this site. The Content-Security-Policy holds what every page already
//! meets (`frame-ancestors`, `base-uri`, `form-action`, `object-src`); a `script-src` without
//! inline scripts waits for the pages' inline handlers to move into the scripts.

use axum::{
    http::{HeaderName, HeaderValue, header},
    response::Response,
};

const HEADERS: [(HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// Adds the security headers a response does not set itself.
pub async fn add(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
