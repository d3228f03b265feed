//! Errors as clients see them: JSON `{type, title, status, detail}` for the API (RFC 7807, as
//! Airflow's `Error`), an error page for the HTML pages. Internal errors are logged and answered with a generic message.

use axum::{
    Json,
    extract::rejection::{FormRejection, JsonRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{backend::BackendError, html::Page, views::pages::ErrorPage};

/// An error answered as JSON (API routes).
#[derive(Debug)]
pub(crate) struct AppError {
    pub status: StatusCode,
    pub detail: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    /// RFC 7807's "no more than the status says".
    r#type: &'static str,
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl AppError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    pub(crate) fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl From<BackendError> for AppError {
    fn from(error: BackendError) -> Self {
        match error {
            BackendError::NotFound(message) => Self::new(StatusCode::NOT_FOUND, message),
            BackendError::Conflict(message) => Self::new(StatusCode::CONFLICT, message),
            invalid @ BackendError::Invalid { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, invalid.to_string())
            }
            BackendError::Internal(message) => {
                tracing::error!(error = %message, "Request failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<axum_extra::extract::QueryRejection> for AppError {
    fn from(rejection: axum_extra::extract::QueryRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<FormRejection> for AppError {
    fn from(rejection: FormRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            r#type: "about:blank",
            status: self.status.as_u16(),
            title: self.title(),
            detail: &self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}

/// An error answered as an HTML page (page routes).
#[derive(Debug)]
pub(crate) struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status;
        let page = ErrorPage {
            status: status.as_u16(),
            title: self.0.title(),
            detail: self.0.detail,
        };
        (status, Page(page)).into_response()
    }
}
