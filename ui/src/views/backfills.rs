//! Backfills: what is asked (the form and the API body, in the shape of Airflow 3's
//! `/backfills`), and how one stands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::format::Stamp;

/// A backfill to plan or create (`POST /api/v1/dags/{dag_id}/backfills`, the backfill form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// RFC 3339, or a date or local time in the DAG's timezone.
    pub from_date: String,
    pub to_date: String,
    /// `none` (default), `failed` or `all` (Airflow 3's `completed` means `all`).
    #[serde(default)]
    pub reprocess_behavior: Option<String>,
    #[serde(default)]
    pub max_active_runs: Option<u32>,
    #[serde(default)]
    pub dag_run_conf: serde_json::Map<String, serde_json::Value>,
    /// Only say which dates would run.
    #[serde(default)]
    pub dry_run: bool,
    /// Start the latest dates first (the dry run lists them in that order).
    #[serde(default)]
    pub run_backwards: bool,
}

/// What a backfill request did: the dates, and the backfill created (none when dry).
#[derive(Debug, Clone, Serialize)]
pub struct BackfillPlanView {
    pub dry_run: bool,
    pub dates: Vec<BackfillDateView>,
    pub total_entries: usize,
    /// Dates to run.
    pub runs: usize,
    pub backfill: Option<BackfillView>,
}

/// One date of a backfill and what happens to it.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillDateView {
    pub logical_date: DateTime<Utc>,
    /// `run` or `skip`.
    pub action: String,
    /// Why it is skipped.
    pub reason: Option<String>,
}

/// A backfill and how far its runs are (Airflow 3's `BackfillResponse` fields, then
/// Updraft's `state` and `progress`).
#[derive(Debug, Clone, Serialize)]
pub struct BackfillView {
    pub id: i64,
    pub dag_id: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: serde_json::Map<String, serde_json::Value>,
    pub is_paused: bool,
    pub reprocess_behavior: String,
    pub max_active_runs: u32,
    /// Its latest dates start first.
    pub run_backwards: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_by: String,
    /// `running`, `paused`, `completed` or `cancelled`.
    pub state: String,
    pub progress: BackfillProgressView,
}

/// How many of a backfill's runs are in each state.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BackfillProgressView {
    pub total: u64,
    pub queued: u64,
    pub running: u64,
    pub success: u64,
    pub failed: u64,
    pub stopped: u64,
}

/// `GET /api/v1/dags/{dag_id}/backfills`.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillList {
    pub backfills: Vec<BackfillView>,
    pub total_entries: usize,
}

/// What can be done to a backfill as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackfillAction {
    Pause,
    Unpause,
    Cancel,
}

impl BackfillView {
    pub fn is_active(&self) -> bool {
        self.completed_at.is_none()
    }

    /// Percent of its runs ended.
    pub fn percent_done(&self) -> u64 {
        let p = &self.progress;
        self.percent(p.success + p.failed + p.stopped)
    }

    /// Widths of the progress bar's parts, in percent of its runs: success, failed, running.
    pub fn bar(&self) -> [u64; 3] {
        let p = &self.progress;
        [p.success, p.failed, p.running].map(|count| self.percent(count))
    }

    fn percent(&self, count: u64) -> u64 {
        count
            .saturating_mul(100)
            .checked_div(self.progress.total)
            .unwrap_or(0)
    }

    pub fn from_stamp(&self) -> Stamp {
        Stamp(Some(self.from_date))
    }

    pub fn to_stamp(&self) -> Stamp {
        Stamp(Some(self.to_date))
    }
}

impl BackfillDateView {
    pub fn stamp(&self) -> Stamp {
        Stamp(Some(self.logical_date))
    }
}
