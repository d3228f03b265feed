//! Security headers on every response: no framing by other sites, no MIME sniffing, the
//! referrer kept to this site. The Content-Security-Policy allows scripts, styles and fetches
//! from this site only: no inline script or event handler runs (the pages have none; selects
//! act through `data-*-on-change` attributes read by `app.js`). Inline `style` attributes stay
//! allowed (bar heights and widths are data), `<style>` elements are not.

use axum::{
    http::{HeaderName, HeaderValue, header},
    response::Response,
};

const HEADERS: [(HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; \
         img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; \
         object-src 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// Adds the security headers a response does not set itself.
pub(crate) async fn add(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
