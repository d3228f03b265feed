//! A run's page and its live part.

use askama::Template;

use super::{Access, Chrome, url_encode};
use crate::{
    auth::Principal,
    views::{
        RunDetail, RunView, TaskInstanceView,
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

/// The live part of a run's page.
pub struct RunLiveView {
    pub run: RunView,
    pub rows: Vec<TaskRow>,
    pub is_active: bool,
    pub access: Access,
    /// The DAG file as the run was created, and whether the file is the same now.
    pub dag_version_source: Option<String>,
    pub dag_version_is_current: bool,
    pub dag_version_diff: Option<String>,
}

impl RunLiveView {
    pub fn new(mut detail: RunDetail, principal: &Principal) -> Self {
        let now = chrono::Utc::now();
        let begin = detail
            .task_instances
            .iter()
            .filter_map(|t| t.start_date)
            .chain(detail.run.start_date)
            .min();
        let finish = detail
            .task_instances
            .iter()
            .map(|t| t.end_date.or(t.start_date.map(|_| now)))
            .chain([detail.run.end_date])
            .flatten()
            .max();
        let span_ms = match (begin, finish) {
            (Some(b), Some(f)) => (f - b).num_milliseconds().max(1) as f64,
            _ => 1.0,
        };
        let rows = std::mem::take(&mut detail.task_instances)
            .into_iter()
            .map(|ti| {
                let (offset_pct, width_pct) = match (begin, ti.start_date) {
                    (Some(b), Some(start)) => {
                        let end = ti.end_date.unwrap_or(now);
                        (
                            100.0 * (start - b).num_milliseconds() as f64 / span_ms,
                            100.0 * (end - start).num_milliseconds().max(0) as f64 / span_ms,
                        )
                    }
                    _ => (0.0, 0.0),
                };
                TaskRow {
                    ti,
                    offset_pct,
                    width_pct,
                }
            })
            .collect();
        Self {
            run: detail.run,
            rows,
            is_active: detail.is_active,
            access: Access::of(principal),
            dag_version_source: detail.dag_version_source,
            dag_version_is_current: detail.dag_version_is_current,
            dag_version_diff: detail.dag_version_diff,
        }
    }

    pub fn base(&self) -> String {
        format!("/dags/{}/runs/{}", self.run.dag_id, self.run.run_id)
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
        let streaming =
            !self.run.is_finished() && self.rows.iter().any(|r| r.ti.operator == "stream");
        streaming.then(|| {
            format!(
                "/streams/events?dag_id={}&run_id={}",
                url_encode(&self.run.dag_id),
                url_encode(&self.run.run_id)
            )
        })
    }
}

#[derive(Template)]
#[template(path = "runs/show.html")]
pub struct RunPage {
    pub chrome: Chrome,
    pub live: RunLiveView,
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

impl RunLiveView {
    /// The diff's lines, for the run page.
    pub fn diff_lines(&self) -> Vec<(&'static str, &str)> {
        self.dag_version_diff
            .as_deref()
            .map(diff_lines)
            .unwrap_or_default()
    }
}
