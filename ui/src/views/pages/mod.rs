//! The HTML pages: one askama template struct per page or live partial, one module per
//! area. A live partial's data sits in one field (`rows`, `live`) so the page includes the
//! same template file.

mod audit;
mod backfills;
mod dags;
mod logs;
mod runs;
mod source;

use askama::Template;

pub use self::{audit::*, backfills::*, dags::*, logs::*, runs::*, source::*};
use super::ImportErrorView;
use crate::{AppState, assets, auth::Principal, views::Role};

/// What every page's frame shows: title, the user, the CSRF token of its forms.
pub struct Chrome {
    pub title: String,
    pub user: Option<String>,
    pub role: Option<Role>,
    /// Whether the nav links the audit log.
    pub is_admin: bool,
    pub csrf: String,
    pub asset_version: &'static str,
    /// The latest live event when the page was rendered (its live parts follow from there).
    pub live_seq: u64,
}

impl Chrome {
    /// A page's frame. Made before the page's data is read: its live parts follow the
    /// events from the one seen here, and an event numbered between reading the data and
    /// this would never reach the page (a run page showing `scheduled` for good).
    pub(crate) fn new(state: &AppState, principal: &Principal, title: &str) -> Self {
        Self {
            live_seq: state.backend.live_seq(),
            title: title.to_owned(),
            user: principal.user.as_ref().map(|u| u.username.clone()),
            role: principal.user.as_ref().map(|u| u.role),
            is_admin: principal.can(Role::Admin),
            csrf: principal.csrf.clone().unwrap_or_default(),
            asset_version: assets::version(),
        }
    }
}

/// What the user of a page may do there, for its forms and buttons.
pub struct Access {
    /// The session's CSRF token, for the forms.
    pub csrf: String,
    /// Whether the role allows triggering, pausing, clearing, marking and stopping.
    pub can_operate: bool,
    pub signed_in: bool,
}

impl Access {
    pub(crate) fn of(principal: &Principal) -> Self {
        Self {
            csrf: principal.csrf.clone().unwrap_or_default(),
            can_operate: principal.can(Role::Op),
            signed_in: principal.user.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: &'static str,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub next: String,
    pub username: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "workers/list.html")]
pub struct WorkersPage {
    pub chrome: Chrome,
    pub view: crate::views::WorkersView,
}

#[derive(Template)]
#[template(path = "import_errors.html")]
pub struct ImportErrorsPage {
    pub chrome: Chrome,
    pub errors: Vec<ImportErrorView>,
}

/// `?a=1&b=2` of `parts` (each `name=value`, already encoded); empty when there are none.
pub(super) fn query_of(parts: &[String]) -> String {
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encodes a query value (`/` stays: legal in a query, and readable in `?next=/dags`).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
