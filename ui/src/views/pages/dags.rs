//! The DAG list, a DAG's page with its live grid and graph, and the trigger form.

use askama::Template;

use super::{Access, Chrome, SourceText, query_of, url_encode};
use crate::{
    auth::Principal,
    views::{
        DagDetail, DagList, DagQuery, GridView, RunList, RunQuery,
        format::Stamp,
        graph::{GraphSvg, layout},
    },
};

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

/// The most tasks the DAG page draws a graph of: the graph of 20,002 tasks was 7.5 MB of SVG
/// that no one could read.
pub const GRAPH_MAX_TASKS: usize = 500;

/// The most task rows the grid shows at once: 20,002 were 8.4 MB of the DAG page.
pub const GRID_TASKS_PER_PAGE: usize = 200;

/// The live part of a DAG's page: the grid, the graph and the run history.
pub struct DagLiveView {
    pub dag_id: String,
    pub is_paused: bool,
    pub grid: GridView,
    /// None past [`GRAPH_MAX_TASKS`] tasks.
    pub graph: Option<GraphSvg>,
    /// How many tasks the DAG has.
    pub task_count: usize,
    pub history: RunList,
    pub run_query: RunQuery,
    pub selected_run: Option<String>,
    /// The page's query without `run`, for links that select a run.
    pub before: Option<String>,
    pub access: Access,
    /// The DAG's backfills, newest first.
    pub backfills: Vec<crate::views::BackfillView>,
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
        let graph = (detail.tasks.len() <= GRAPH_MAX_TASKS)
            .then(|| layout(&detail.tasks, state_of, href_of));
        Self {
            dag_id: dag_id.clone(),
            is_paused: detail.summary.is_paused,
            graph,
            task_count: detail.tasks.len(),
            grid,
            history,
            run_query,
            selected_run,
            before,
            access: Access::of(principal),
            backfills: Vec::new(),
        }
    }

    /// The first and last task row numbers shown (from 1).
    pub fn tasks_shown(&self) -> (usize, usize) {
        self.grid.task_paging.shown(self.grid.rows.len())
    }

    /// This view with the grid's task rows of `page`.
    pub fn task_page_href(&self, page: usize) -> String {
        let query = self.query_with(self.selected_run.as_deref(), self.before.as_deref(), page);
        format!("/dags/{}{query}", self.dag_id)
    }

    /// The DAG version that starts at the grid's run `index`, when it differs from the run
    /// before it.
    pub fn version_change(&self, index: &usize) -> Option<i64> {
        let runs = &self.grid.runs;
        let this = runs.get(*index)?.dag_version_number?;
        let before = runs.get(index.checked_sub(1)?)?.dag_version_number?;
        (this != before).then_some(this)
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
        self.query_with(run, before, self.grid.task_paging.page)
    }

    fn query_with(&self, run: Option<&str>, before: Option<&str>, task_page: usize) -> String {
        let mut parts = Vec::new();
        if let Some(run) = run {
            parts.push(format!("run={}", url_encode(run)));
        }
        if let Some(before) = before {
            parts.push(format!("before={}", url_encode(before)));
        }
        for state in &self.run_query.state {
            parts.push(format!("state={}", url_encode(state)));
        }
        if let Some(run_type) = &self.run_query.run_type {
            parts.push(format!("run_type={}", url_encode(run_type)));
        }
        if task_page > 1 {
            parts.push(format!("task_page={task_page}"));
        }
        query_of(&parts)
    }

    pub fn is_selected(&self, run_id: &str) -> bool {
        self.selected_run.as_deref() == Some(run_id)
    }

    pub fn filter_is(&self, field: &str, value: &str) -> bool {
        let current = match field {
            "state" => self.run_query.state.first().map(String::as_str),
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
    /// The DAG file's text (`dag.source` moved here).
    pub source: SourceText,
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

pub(super) fn parse_conf_object(
    text: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
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

impl crate::views::DagSummary {
    pub fn next_stamp(&self) -> Stamp {
        Stamp(self.next_run)
    }

    /// A cron schedule (`0 * * * *`, `@daily`): one a backfill can run over.
    pub fn is_cron(&self) -> bool {
        !matches!(self.schedule.as_str(), "" | "@once" | "@continuous")
    }

    pub fn schedule_text(&self) -> &str {
        if self.schedule.is_empty() {
            "manual"
        } else {
            &self.schedule
        }
    }
}

impl crate::views::GridCell {
    pub fn class(&self) -> String {
        self.state
            .as_deref()
            .map(|s| format!("s-{s}"))
            .unwrap_or_default()
    }
}

impl crate::views::ProblemView {
    pub fn place(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("line {line}, column {column}"),
            _ => "whole file".into(),
        }
    }
}
