//! The streams page, a stream task's page and a stream's results page (askama templates). The
//! live part of each is a partial the server pushes over SSE, rendered from one field.

use askama::Template;

use super::{
    ResultsView, StreamDetail, StreamView,
    charts::{BarChart, Sparkline, bar_chart, sparkline},
    format::Stamp,
    pages::{Chrome, url_encode},
};

/// An RFC 3339 text as a stamp the templates show in UTC or local time.
fn stamp(text: Option<&str>) -> Stamp {
    Stamp(
        text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
    )
}

const SPARK_WIDTH: f64 = 160.0;
const SPARK_HEIGHT: f64 = 28.0;

/// One stream's figures with its sparklines.
pub struct StreamPanel {
    pub stream: StreamView,
    pub rate: Sparkline,
    pub lag: Sparkline,
}

impl StreamPanel {
    pub fn new(stream: StreamView) -> Self {
        let rates: Vec<f64> = stream.history.iter().map(|s| s.in_per_s).collect();
        let lags: Vec<f64> = stream.history.iter().map(|s| s.lag as f64).collect();
        Self {
            rate: sparkline(&rates, SPARK_WIDTH, SPARK_HEIGHT),
            lag: sparkline(&lags, SPARK_WIDTH, SPARK_HEIGHT),
            stream,
        }
    }

    pub fn task_base(&self) -> String {
        format!(
            "/dags/{}/runs/{}/tasks/{}",
            self.stream.dag_id, self.stream.run_id, self.stream.task_id
        )
    }

    pub fn rate_text(&self) -> String {
        format!(
            "{:.0}/s in · {:.0}/s out",
            self.stream.records_in_per_s, self.stream.records_out_per_s
        )
    }

    /// The partitions furthest behind (5 at most), largest lag first.
    pub fn behind(&self) -> Vec<(&String, &i64)> {
        let mut behind: Vec<(&String, &i64)> = self
            .stream
            .lag
            .iter()
            .filter(|(_, lag)| **lag > 0)
            .collect();
        behind.sort_by(|a, b| b.1.cmp(a.1));
        behind.truncate(5);
        behind
    }

    pub fn last_flush(&self) -> Stamp {
        stamp(self.stream.last_flush_at.as_deref())
    }

    pub fn history_minutes(&self) -> String {
        let seconds = self.stream.history.len();
        if seconds < 60 {
            format!("{seconds} s")
        } else {
            format!("{} min", seconds / 60)
        }
    }
}

/// The streams page's live part.
pub struct StreamsLive {
    pub panels: Vec<StreamPanel>,
    /// The page shows one stream (a task's stream page) rather than all.
    pub single: bool,
}

impl StreamsLive {
    pub fn new(streams: Vec<StreamView>, single: bool) -> Self {
        Self {
            panels: streams.into_iter().map(StreamPanel::new).collect(),
            single,
        }
    }
}

#[derive(Template)]
#[template(path = "streams/list.html")]
pub struct StreamsPage {
    pub chrome: Chrome,
    pub live: StreamsLive,
}

#[derive(Template)]
#[template(path = "partials/streams_live.html")]
pub struct StreamsPartial {
    pub live: StreamsLive,
}

#[derive(Template)]
#[template(path = "streams/show.html")]
pub struct StreamPage {
    pub chrome: Chrome,
    pub detail: StreamDetail,
    pub live: StreamsLive,
    /// The query the page's SSE stream filters on.
    pub events: String,
}

impl StreamPage {
    pub fn new(chrome: Chrome, detail: StreamDetail) -> Self {
        let stream = &detail.stream;
        let events = format!(
            "/streams/events?dag_id={}&run_id={}&task_id={}",
            url_encode(&stream.dag_id),
            url_encode(&stream.run_id),
            url_encode(&stream.task_id)
        );
        Self {
            chrome,
            live: StreamsLive::new(vec![detail.stream.clone()], true),
            detail,
            events,
        }
    }
}

/// The results page's live part: the chart, the table and the window selector.
pub struct ResultsLive {
    pub results: ResultsView,
    pub chart: BarChart,
}

impl ResultsLive {
    pub fn new(results: ResultsView) -> Self {
        Self {
            chart: bar_chart(&results.rows, results.measure),
            results,
        }
    }

    pub fn task_base(&self) -> String {
        format!(
            "/dags/{}/runs/{}/tasks/{}",
            self.results.dag_id, self.results.run_id, self.results.task_id
        )
    }

    pub fn measure_name(&self) -> &str {
        self.results
            .aggregates
            .get(self.results.measure)
            .map_or("", String::as_str)
    }

    /// A row's value of the aggregate charted.
    pub fn measure_value<'r>(&self, row: &'r super::ResultRow) -> &'r str {
        row.values
            .get(self.results.measure)
            .map_or("", String::as_str)
    }

    pub fn window_stamp(&self, window: &str) -> Stamp {
        stamp(Some(window))
    }

    pub fn end_stamp(&self) -> Stamp {
        stamp(self.results.window_end.as_deref())
    }

    pub fn is_selected(&self, window: &str) -> bool {
        self.results.selected.as_deref() == Some(window)
    }

    /// The query that keeps this page's window and measure.
    pub fn query(&self) -> String {
        format!(
            "?window={}&measure={}",
            url_encode(self.results.selected.as_deref().unwrap_or("")),
            self.results.measure
        )
    }
}

#[derive(Template)]
#[template(path = "streams/results.html")]
pub struct ResultsPage {
    pub chrome: Chrome,
    pub live: ResultsLive,
    /// Follows the newest window (no window was asked for).
    pub latest: bool,
}

#[derive(Template)]
#[template(path = "partials/results_live.html")]
pub struct ResultsPartial {
    pub live: ResultsLive,
}
