//! The HTML pages: one askama template struct per page or live partial. A live partial's data
//! sits in one field (`rows`, `live`) so the page includes the same template file.

use askama::Template;

use super::{
    DagDetail, DagList, DagQuery, GridView, ImportErrorView, LogChunk, LogMatch, RunDetail,
    RunList, RunQuery, RunView, TaskInstanceView,
    format::{Stamp, duration_text},
    graph::{GraphSvg, layout},
    logs::highlight,
};
use crate::{AppState, assets, auth::Principal, ids::TryKey, views::Role};

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

/// The DAG list's rows, pager and import-error banner.
pub struct DagRowsView {
    pub list: DagList,
    pub search: String,
    pub offset: usize,
    pub limit: usize,
    pub access: Access,
}

impl DagRowsView {
    pub fn new(list: DagList, query: &DagQuery, principal: &Principal) -> Self {
        Self {
            list,
            search: query.search.clone().unwrap_or_default(),
            offset: query.offset.unwrap_or(0) as usize,
            limit: query.limit.unwrap_or(100) as usize,
            access: Access::of(principal),
        }
    }

    /// `?search=...&offset=` for a page of the list.
    pub fn page_query(&self, offset: usize) -> String {
        format!("?search={}&offset={offset}", url_encode(&self.search))
    }

    /// The previous page of the list, if any.
    pub fn prev_href(&self) -> Option<String> {
        (self.offset > 0).then(|| {
            format!(
                "/dags{}",
                self.page_query(self.offset.saturating_sub(self.limit))
            )
        })
    }

    /// The next page of the list, if any.
    pub fn next_href(&self) -> Option<String> {
        (self.offset + self.limit < self.list.total_entries)
            .then(|| format!("/dags{}", self.page_query(self.offset + self.limit)))
    }

    pub fn rows_src(&self) -> String {
        format!("/dags/rows{}", self.page_query(self.offset))
    }
}

#[derive(Template)]
#[template(path = "dags/list.html")]
pub struct DagsPage {
    pub chrome: Chrome,
    pub rows: DagRowsView,
}

#[derive(Template)]
#[template(path = "partials/dag_rows.html")]
pub struct DagRows {
    pub rows: DagRowsView,
}

#[derive(Template)]
#[template(path = "workers/list.html")]
pub struct WorkersPage {
    pub chrome: Chrome,
    pub view: super::WorkersView,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub list: super::EventLogList,
    pub query: super::EventLogQuery,
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

#[derive(Template)]
#[template(path = "import_errors.html")]
pub struct ImportErrorsPage {
    pub chrome: Chrome,
    pub errors: Vec<ImportErrorView>,
}

/// The live part of a DAG's page: the grid, the graph and the run history.
pub struct DagLiveView {
    pub dag_id: String,
    pub is_paused: bool,
    pub grid: GridView,
    pub graph: GraphSvg,
    pub history: RunList,
    pub run_query: RunQuery,
    pub selected_run: Option<String>,
    /// The page's query without `run`, for links that select a run.
    pub before: Option<String>,
    pub access: Access,
}

impl DagLiveView {
    pub fn new(
        detail: &DagDetail,
        grid: GridView,
        history: RunList,
        run_query: RunQuery,
        selected_run: Option<String>,
        before: Option<String>,
        principal: &Principal,
    ) -> Self {
        let dag_id = detail.summary.dag_id.clone();
        let column = selected_run
            .as_ref()
            .and_then(|id| grid.runs.iter().position(|r| &r.run_id == id));
        let state_of = |task_id: &str| {
            let row = grid.rows.iter().find(|r| r.task_id == task_id)?;
            row.cells.get(column?)?.state.clone()
        };
        let href_of = |task_id: &str| {
            let run = selected_run.as_ref()?;
            column?;
            Some(format!("/dags/{dag_id}/runs/{run}/tasks/{task_id}"))
        };
        let graph = layout(&detail.tasks, state_of, href_of);
        Self {
            dag_id: dag_id.clone(),
            is_paused: detail.summary.is_paused,
            graph,
            grid,
            history,
            run_query,
            selected_run,
            before,
            access: Access::of(principal),
        }
    }

    /// The URL of this view with `run` selected (keeps the grid page and history filters).
    pub fn select_href(&self, run_id: &str) -> String {
        format!(
            "/dags/{}{}",
            self.dag_id,
            self.query(Some(run_id), self.before.as_deref())
        )
    }

    /// The page of older runs in the grid, if any.
    pub fn older_href(&self) -> Option<String> {
        let before = self.grid.older.as_deref()?;
        Some(format!(
            "/dags/{}{}",
            self.dag_id,
            self.query(None, Some(before))
        ))
    }

    pub fn live_src(&self) -> String {
        format!(
            "/dags/{}/live{}",
            self.dag_id,
            self.query(self.selected_run.as_deref(), self.before.as_deref())
        )
    }

    fn query(&self, run: Option<&str>, before: Option<&str>) -> String {
        let mut parts = Vec::new();
        if let Some(run) = run {
            parts.push(format!("run={}", url_encode(run)));
        }
        if let Some(before) = before {
            parts.push(format!("before={}", url_encode(before)));
        }
        if let Some(state) = &self.run_query.state {
            parts.push(format!("state={}", url_encode(state)));
        }
        if let Some(run_type) = &self.run_query.run_type {
            parts.push(format!("run_type={}", url_encode(run_type)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    pub fn is_selected(&self, run_id: &str) -> bool {
        self.selected_run.as_deref() == Some(run_id)
    }

    pub fn filter_is(&self, field: &str, value: &str) -> bool {
        let current = match field {
            "state" => self.run_query.state.as_deref(),
            _ => self.run_query.run_type.as_deref(),
        };
        current.unwrap_or("") == value
    }
}

#[derive(Template)]
#[template(path = "dags/show.html")]
pub struct DagPage {
    pub chrome: Chrome,
    pub dag: DagDetail,
    pub source_lines: Vec<String>,
    pub live: DagLiveView,
}

#[derive(Template)]
#[template(path = "partials/dag_live.html")]
pub struct DagLive {
    pub live: DagLiveView,
}

/// One param's input on the trigger form.
#[derive(Debug, Clone)]
pub struct ParamField {
    pub name: String,
    pub kind: String,
    pub value: String,
    pub default: serde_json::Value,
    pub error: Option<String>,
}

impl ParamField {
    pub fn id(&self) -> String {
        format!("param-{}", self.name)
    }

    pub fn input_type(&self) -> &'static str {
        match self.kind.as_str() {
            "integer" | "number" => "number",
            "boolean" => "select",
            "string" => "text",
            _ => "json",
        }
    }

    pub fn step(&self) -> &'static str {
        if self.kind == "integer" { "1" } else { "any" }
    }

    pub fn default_text(&self) -> String {
        self.default.to_string()
    }

    /// The submitted text as a JSON value of the param's type, or what is wrong with it.
    fn parse(&self) -> Result<serde_json::Value, String> {
        let text = self.value.trim();
        match self.kind.as_str() {
            "string" => Ok(serde_json::Value::String(self.value.clone())),
            "integer" => text
                .parse::<i64>()
                .map(Into::into)
                .map_err(|_| format!("expected a whole number, got {text:?}")),
            "number" => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
                .ok_or_else(|| format!("expected a number, got {text:?}")),
            "boolean" => text
                .parse::<bool>()
                .map(Into::into)
                .map_err(|_| format!("expected true or false, got {text:?}")),
            _ if text.is_empty() => Ok(serde_json::Value::Null),
            _ => serde_json::from_str(text).map_err(|e| {
                format!(
                    "invalid JSON: {e} (line {}, column {})",
                    e.line(),
                    e.column()
                )
            }),
        }
    }
}

/// The trigger form's fields, as shown or as submitted.
#[derive(Debug, Clone)]
pub struct TriggerForm {
    pub params: Vec<ParamField>,
    /// The JSON conf editor (keys that are not params).
    pub conf_text: String,
    pub conf_error: Option<String>,
}

impl TriggerForm {
    pub fn defaults(dag: &DagDetail) -> Self {
        Self {
            params: dag
                .params
                .iter()
                .map(|p| ParamField {
                    name: p.name.clone(),
                    kind: p.kind.clone(),
                    value: p.input_value(),
                    default: p.default.clone(),
                    error: None,
                })
                .collect(),
            conf_text: "{}".into(),
            conf_error: None,
        }
    }

    /// The form as submitted: `param.<name>` fields and `conf`.
    pub fn submitted(dag: &DagDetail, fields: &[(String, String)]) -> Self {
        let mut form = Self::defaults(dag);
        for (name, value) in fields {
            if let Some(param) = name.strip_prefix("param.") {
                if let Some(field) = form.params.iter_mut().find(|f| f.name == param) {
                    field.value = value.clone();
                }
            } else if name == "conf" {
                form.conf_text = value.clone();
            }
        }
        form
    }

    /// The conf to trigger with (params that differ from their defaults, then the editor's
    /// keys), or None after recording what is wrong beside each field.
    pub fn conf(&mut self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let mut conf = serde_json::Map::new();
        for field in &mut self.params {
            match field.parse() {
                Ok(value) if value == field.default => {}
                Ok(value) => {
                    conf.insert(field.name.clone(), value);
                }
                Err(error) => field.error = Some(error),
            }
        }
        match parse_conf_object(&self.conf_text) {
            Ok(extra) => {
                for (key, value) in extra {
                    if self.params.iter().any(|p| p.name == key) {
                        self.conf_error =
                            Some(format!("{key:?} is a param: set it in its field above"));
                    } else {
                        conf.insert(key, value);
                    }
                }
            }
            Err(error) => self.conf_error = Some(error),
        }
        let valid = self.conf_error.is_none() && self.params.iter().all(|p| p.error.is_none());
        valid.then_some(conf)
    }

    /// Puts an error from the server (`conf.<key>` or `conf`) beside its field.
    pub fn add_error(&mut self, field: &str, message: String) {
        let key = field.strip_prefix("conf.").unwrap_or("");
        match self.params.iter_mut().find(|p| p.name == key) {
            Some(param) => param.error = Some(message),
            None if key.is_empty() => self.conf_error = Some(message),
            None => self.conf_error = Some(format!("{key}: {message}")),
        }
    }
}

fn parse_conf_object(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("must be a JSON object such as {\"key\": 1}".into()),
        Err(e) => Err(format!(
            "invalid JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

#[derive(Template)]
#[template(path = "dags/trigger.html")]
pub struct TriggerPage {
    pub chrome: Chrome,
    pub dag: DagDetail,
    pub form: TriggerForm,
}

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
}

impl RunLiveView {
    pub fn new(detail: RunDetail, principal: &Principal) -> Self {
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
        let rows = detail
            .task_instances
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

/// A log line as shown: its offset (anchor), its time stamp and the rest.
pub struct LogLineView {
    pub offset: u64,
    pub time: String,
    pub text: String,
}

/// A search hit cut into highlighted parts.
pub struct MatchView {
    pub offset: u64,
    pub time: String,
    pub parts: Vec<(String, bool)>,
}

#[derive(Template)]
#[template(path = "tasks/log.html")]
pub struct LogPage {
    pub chrome: Chrome,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub tries: Vec<u32>,
    pub state: String,
    pub lines: Vec<LogLineView>,
    pub start: u64,
    pub end: u64,
    pub size: u64,
    pub finished: bool,
    pub first_line_cut: bool,
    pub search: String,
    pub matches: Option<Vec<MatchView>>,
    pub at: Option<u64>,
}

/// `2026-11-25T10:00:00.123Z text` -> (`10:00:00.123`, `text`).
fn split_stamp(line: &str) -> (String, String) {
    let bytes = line.as_bytes();
    let stamped = bytes.len() >= 25
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[23] == b'Z'
        && bytes[24] == b' '
        && line.is_char_boundary(25);
    if stamped {
        (line[11..23].to_owned(), line[25..].to_owned())
    } else {
        (String::new(), line.to_owned())
    }
}

impl LogPage {
    pub fn new(
        chrome: Chrome,
        key: TryKey,
        detail: RunDetail,
        chunk: LogChunk,
        search: Option<String>,
        matches: Option<Vec<LogMatch>>,
        at: Option<u64>,
    ) -> Self {
        let ti = detail
            .task_instances
            .iter()
            .find(|t| t.task_id == key.task.task_id);
        let latest = ti.map_or(key.try_number, |t| t.try_number.max(key.try_number));
        let search = search.unwrap_or_default();
        let lines = chunk
            .lines()
            .into_iter()
            .map(|(offset, line)| {
                let (time, text) = split_stamp(line);
                LogLineView { offset, time, text }
            })
            .collect();
        let matches = matches.map(|found| {
            found
                .into_iter()
                .map(|m| {
                    let (time, text) = split_stamp(&m.line);
                    MatchView {
                        offset: m.offset,
                        time,
                        parts: highlight(&text, &search),
                    }
                })
                .collect()
        });
        Self {
            chrome,
            dag_id: key.task.run.dag_id.to_string(),
            run_id: key.task.run.run_id.clone(),
            task_id: key.task.task_id.clone(),
            try_number: key.try_number,
            tries: (1..=latest).collect(),
            state: ti.map(|t| t.state.clone()).unwrap_or_default(),
            lines,
            start: chunk.start,
            end: chunk.end,
            size: chunk.size,
            finished: chunk.finished,
            first_line_cut: chunk.first_line_cut,
            search,
            matches,
            at,
        }
    }

    pub fn base(&self) -> String {
        format!(
            "/dags/{}/runs/{}/tasks/{}/logs/{}",
            self.dag_id, self.run_id, self.task_id, self.try_number
        )
    }

    pub fn try_href(&self, try_number: &u32) -> String {
        format!(
            "/dags/{}/runs/{}/tasks/{}/logs/{try_number}",
            self.dag_id, self.run_id, self.task_id
        )
    }

    pub fn at_text(&self) -> String {
        self.at.map(|a| a.to_string()).unwrap_or_default()
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

impl super::RunBrief {
    pub fn logical_stamp(&self) -> Stamp {
        Stamp(Some(self.logical_date))
    }
}

impl super::DagSummary {
    pub fn next_stamp(&self) -> Stamp {
        Stamp(self.next_run)
    }

    pub fn schedule_text(&self) -> &str {
        if self.schedule.is_empty() {
            "manual"
        } else {
            &self.schedule
        }
    }
}

impl super::GridCell {
    pub fn class(&self) -> String {
        self.state
            .as_deref()
            .map(|s| format!("s-{s}"))
            .unwrap_or_default()
    }
}

impl super::ProblemView {
    pub fn place(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("line {line}, column {column}"),
            _ => "whole file".into(),
        }
    }
}
