//! A run's page and its live part.

use askama::Template;

use super::{Access, Chrome, SourceText, fits_inline, query_of, size_of, url_encode};
use crate::{
    auth::Principal,
    views::{
        Paging, RowsWanted, RunDagVersion, RunRows, RunView, TaskInstanceView,
        format::{Stamp, duration_text},
    },
};

/// A task instance row of the run page, with its place on the timeline.
pub struct TaskRow {
    pub ti: TaskInstanceView,
    /// Percent of the run's span before the try started, and its length.
    pub offset_pct: f64,
    pub width_pct: f64,
}

/// The most task instance rows the run page shows at once: a run of 20,000 was a 19 MB
/// page that took 13 s to show in Chromium.
pub const ROWS_PER_PAGE: usize = 200;

/// Which of a run's task instances its page shows: `?state=failed&page=2`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunPageQuery {
    /// Only the task instances in this state.
    pub state: Option<String>,
    /// The page of rows, from 1.
    pub page: Option<usize>,
}

/// The live part of a run's page.
pub struct RunLiveView {
    pub run: RunView,
    /// The rows of this page (every row when they fit one page).
    pub rows: Vec<TaskRow>,
    /// How many task instances are in each state, in order of first appearance.
    pub state_counts: Vec<(String, usize)>,
    /// The rows the filter selects, and which page of them is shown.
    pub selected: usize,
    pub query: RunPageQuery,
    pub paging: Paging,
    /// Whether any task of the run (on any page) is a stream.
    has_streams: bool,
    pub is_active: bool,
    pub access: Access,
    /// Whether the DAG file is the same now as when the run was created.
    pub dag_version_is_current: bool,
}

impl RunLiveView {
    /// What the run page asks of the backend for `query`.
    pub fn wanted(query: &RunPageQuery) -> RowsWanted {
        RowsWanted {
            state: query.state.clone(),
            page: query.page.unwrap_or(1),
            per_page: ROWS_PER_PAGE,
        }
    }

    pub fn new(rows: RunRows, principal: &Principal, query: RunPageQuery) -> Self {
        let timeline = Timeline::of(&rows);
        Self {
            rows: rows
                .task_instances
                .into_iter()
                .map(|ti| timeline.row(ti))
                .collect(),
            run: rows.run,
            state_counts: rows.state_counts,
            selected: rows.selected,
            query,
            paging: rows.paging,
            has_streams: rows.has_streams,
            is_active: rows.is_active,
            access: Access::of(principal),
            dag_version_is_current: rows.dag_version_is_current,
        }
    }

    pub fn base(&self) -> String {
        format!("/dags/{}/runs/{}", self.run.dag_id, self.run.run_id)
    }

    /// Whether the page shows part of the run's task instances: a pager and the counts.
    pub fn is_paged(&self) -> bool {
        self.paging.pages > 1 || self.query.state.is_some()
    }

    /// How many task instances the run has.
    pub fn total(&self) -> usize {
        self.state_counts.iter().map(|(_, n)| n).sum()
    }

    /// The page's address with `state` and `page`.
    pub fn href(&self, state: Option<&str>, page: usize) -> String {
        format!("{}{}", self.base(), query_string(state, page))
    }

    /// This page's address with another page number.
    pub fn page_href(&self, page: usize) -> String {
        self.href(self.query.state.as_deref(), page)
    }

    /// Where the live part of this page is fetched again, with the same rows.
    pub fn live_src(&self) -> String {
        let query = query_string(self.query.state.as_deref(), self.paging.page);
        format!("{}/live{query}", self.base())
    }

    /// The first and last row numbers shown (from 1).
    pub fn shown(&self) -> (usize, usize) {
        self.paging.shown(self.rows.len())
    }

    pub fn conf_json(&self) -> String {
        serde_json::to_string_pretty(&self.run.conf).unwrap_or_default()
    }

    pub fn results_json(&self) -> String {
        let results: serde_json::Map<String, serde_json::Value> = self
            .rows
            .iter()
            .filter_map(|r| r.ti.result.clone().map(|v| (r.ti.task_id.clone(), v)))
            .collect();
        serde_json::to_string_pretty(&results).unwrap_or_default()
    }

    pub fn has_results(&self) -> bool {
        self.rows.iter().any(|r| r.ti.result.is_some())
    }

    pub fn can_stop(&self) -> bool {
        self.access.can_operate && !self.run.is_finished()
    }

    /// The SSE stream of this run's stream tasks' figures, while it has any running.
    pub fn streams_events(&self) -> Option<String> {
        let streaming = !self.run.is_finished() && self.has_streams;
        streaming.then(|| {
            format!(
                "/streams/events?dag_id={}&run_id={}",
                url_encode(&self.run.dag_id),
                url_encode(&self.run.run_id)
            )
        })
    }
}

/// The span of a run's tries, from the first start to the last end (now, for a try still
/// running), that the rows' bars are placed on.
struct Timeline {
    now: chrono::DateTime<chrono::Utc>,
    begin: Option<chrono::DateTime<chrono::Utc>>,
    span_ms: f64,
}

impl Timeline {
    fn of(rows: &RunRows) -> Self {
        let now = chrono::Utc::now();
        let begin = rows
            .first_start
            .into_iter()
            .chain(rows.run.start_date)
            .min();
        let finish = rows.last_end.into_iter().chain(rows.run.end_date).max();
        let span_ms = match (begin, finish) {
            (Some(b), Some(f)) => (f - b).num_milliseconds().max(1) as f64,
            _ => 1.0,
        };
        Self {
            now,
            begin,
            span_ms,
        }
    }

    /// `ti` with its place on the timeline.
    fn row(&self, ti: TaskInstanceView) -> TaskRow {
        let (offset_pct, width_pct) = match (self.begin, ti.start_date) {
            (Some(b), Some(start)) => {
                let end = ti.end_date.unwrap_or(self.now);
                (
                    100.0 * (start - b).num_milliseconds() as f64 / self.span_ms,
                    100.0 * (end - start).num_milliseconds().max(0) as f64 / self.span_ms,
                )
            }
            _ => (0.0, 0.0),
        };
        TaskRow {
            ti,
            offset_pct,
            width_pct,
        }
    }
}

/// `?state=S&page=N`, each part left out when it is none or the first page.
fn query_string(state: Option<&str>, page: usize) -> String {
    let mut params = Vec::new();
    if let Some(state) = state {
        params.push(format!("state={}", url_encode(state)));
    }
    if page > 1 {
        params.push(format!("page={page}"));
    }
    query_of(&params)
}

#[derive(Template)]
#[template(path = "runs/show.html")]
pub struct RunPage {
    pub chrome: Chrome,
    pub live: RunLiveView,
    /// The DAG file as the run was created (none for runs made before versions were kept).
    pub version: Option<VersionPanel>,
}

/// The run page's panel of the DAG file's version it was created with.
pub struct VersionPanel {
    pub number: i64,
    pub source: SourceText,
    /// How the file now differs from it (a unified diff), when it does.
    pub diff: Option<String>,
    /// Where the file as it is now is served as plain text.
    pub now_href: String,
}

impl VersionPanel {
    /// The panel of `version` of the run at `run_base` (`/dags/<dag>/runs/<run>`).
    pub fn new(version: RunDagVersion, dag_id: &str, run_base: &str) -> Self {
        Self {
            number: version.number,
            source: SourceText {
                text: version.source,
                href: format!("{run_base}/source"),
            },
            diff: version.diff,
            now_href: format!("/dags/{dag_id}/source"),
        }
    }

    pub fn diff_is_inline(&self) -> bool {
        self.diff.as_deref().is_some_and(fits_inline)
    }

    pub fn diff_size(&self) -> String {
        size_of(self.diff.as_deref().unwrap_or_default())
    }

    /// The diff's lines, for the panel.
    pub fn diff_lines(&self) -> Vec<(&'static str, &str)> {
        self.diff.as_deref().map(diff_lines).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "partials/run_live.html")]
pub struct RunLive {
    pub live: RunLiveView,
}

/// The page helpers the templates call on view types.
impl RunView {
    pub fn start_stamp(&self) -> Stamp {
        Stamp(self.start_date)
    }

    pub fn end_stamp(&self) -> Stamp {
        Stamp(self.end_date)
    }

    pub fn logical_stamp(&self) -> Stamp {
        Stamp(Some(self.logical_date))
    }

    pub fn duration_text(&self) -> String {
        duration_text(self.duration_ms())
    }
}

impl TaskInstanceView {
    pub fn start_stamp(&self) -> Stamp {
        Stamp(self.start_date)
    }

    pub fn end_stamp(&self) -> Stamp {
        Stamp(self.end_date)
    }

    pub fn duration_text(&self) -> String {
        let live = match (self.start_date, self.end_date, self.state.as_str()) {
            (Some(start), None, "running") => Some((chrono::Utc::now() - start).num_milliseconds()),
            _ => self.duration_ms,
        };
        duration_text(live)
    }
}

impl crate::views::RunBrief {
    pub fn logical_stamp(&self) -> Stamp {
        Stamp(Some(self.logical_date))
    }
}

/// One line of a unified diff and how it reads: `add`, `del`, `hunk` or `same`.
pub fn diff_lines(diff: &str) -> Vec<(&'static str, &str)> {
    diff.lines()
        .map(|line| {
            let kind = match line.as_bytes().first() {
                Some(b'+') => "add",
                Some(b'-') => "del",
                Some(b'@') => "hunk",
                _ => "same",
            };
            (kind, line)
        })
        .collect()
}
