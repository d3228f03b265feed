//! The audit log page.

use askama::Template;

use super::{Chrome, url_encode};

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub list: crate::views::EventLogList,
    pub query: crate::views::EventLogQuery,
}

impl AuditPage {
    /// `/audit` with the page's filters and `offset`.
    fn href(&self, offset: u32) -> String {
        let filters = [
            ("event", &self.query.event),
            ("owner", &self.query.owner),
            ("dag_id", &self.query.dag_id),
        ];
        let mut href = format!("/audit?offset={offset}");
        for (name, value) in filters {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                href.push_str(&format!("&{name}={}", url_encode(value)));
            }
        }
        href
    }

    fn offset(&self) -> u32 {
        self.query.offset.unwrap_or(0)
    }

    fn limit(&self) -> u32 {
        self.query.limit.unwrap_or(50).max(1)
    }

    pub fn prev_href(&self) -> Option<String> {
        (self.offset() > 0).then(|| self.href(self.offset().saturating_sub(self.limit())))
    }

    pub fn next_href(&self) -> Option<String> {
        let next = self.offset().saturating_add(self.limit());
        (u64::from(next) < self.list.total_entries).then(|| self.href(next))
    }

    pub fn filter(&self, value: &Option<String>) -> String {
        value.clone().unwrap_or_default()
    }
}
