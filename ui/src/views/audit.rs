//! The audit log: every write, who made it, when, from where and what (Airflow's `EventLog`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One entry, in the shape of Airflow's `EventLog`.
#[derive(Debug, Clone, Serialize)]
pub struct EventLogView {
    pub event_log_id: i64,
    pub when: DateTime<Utc>,
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    /// Always null: Updraft has no mapped tasks.
    pub map_index: Option<i64>,
    pub try_number: Option<i64>,
    pub event: String,
    /// Always null: runs are named by `run_id`.
    pub execution_date: Option<DateTime<Utc>>,
    /// Who: the user name (`anonymous` for a refused sign-in, the OS user for the CLI).
    pub owner: Option<String>,
    /// What and from where, as a JSON object text: `source` (the client's address or `cli`)
    /// and the event's details (a trigger's conf, the tasks a clear reset, ...).
    pub extra: Option<String>,
}

impl EventLogView {
    pub fn when_stamp(&self) -> super::format::Stamp {
        super::format::Stamp(Some(self.when))
    }

    /// The `source` field of `extra`.
    pub fn source(&self) -> String {
        self.extra_field("source")
    }

    /// `extra` without `source`, as `key=value` pairs.
    pub fn details(&self) -> String {
        let Some(serde_json::Value::Object(fields)) = self.extra_json() else {
            return String::new();
        };
        fields
            .iter()
            .filter(|(key, _)| *key != "source")
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}={text}"),
                other => format!("{key}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn extra_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.extra.as_deref()?).ok()
    }

    fn extra_field(&self, key: &str) -> String {
        self.extra_json()
            .and_then(|extra| extra.get(key)?.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// `GET /api/v1/eventLogs`.
#[derive(Debug, Clone, Serialize)]
pub struct EventLogList {
    pub event_logs: Vec<EventLogView>,
    pub total_entries: u64,
}

/// The filters and page of `GET /api/v1/eventLogs` (Airflow's names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLogQuery {
    pub dag_id: Option<String>,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    pub event: Option<String>,
    pub owner: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// `event_log_id` or `when`, `-` first for newest first.
    pub order_by: Option<String>,
}

impl EventLogQuery {
    /// Whether the order is newest first; an unknown `order_by` is an error naming it.
    pub fn newest_first(&self) -> Result<bool, String> {
        match self.order_by.as_deref() {
            None | Some("event_log_id" | "when") => Ok(false),
            Some("-event_log_id" | "-when") => Ok(true),
            Some(other) => Err(format!(
                "order_by {other:?}: use event_log_id, -event_log_id, when or -when"
            )),
        }
    }
}
