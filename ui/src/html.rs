//! The one askama wrapper, a rendered template as an HTML response; and a text the pages
//! link as plain text.

use axum::{
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// A template answered as `text/html`; a rendering failure is logged and answered 500.
pub(crate) struct Page<T>(pub T);

impl<T: askama::Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.0.render() {
            Ok(html) => Html(html).into_response(),
            Err(error) => {
                tracing::error!(%error, "Cannot render a page");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

/// A text answered as `text/plain` in UTF-8, shown by the browser rather than downloaded.
pub(crate) struct PlainText(pub String);

impl IntoResponse for PlainText {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.0,
        )
            .into_response()
    }
}
