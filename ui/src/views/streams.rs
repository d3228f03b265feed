//! Running stream tasks and what they produce: live figures, the last minutes of rate and lag,
//! dead letters, and a window sink's aggregates by group.

use std::collections::BTreeMap;

use serde::Serialize;

/// One running stream task, as the streams page shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StreamView {
    pub dag_id: String,
    pub run_id: String,
    /// The task instance: the task's id, or `<task>~<share>` of a split stream.
    pub task_id: String,
    /// The worker (or host) running this try.
    pub worker: Option<String>,
    pub try_number: u32,
    /// Tries before this one: each was a restart.
    pub restarts: u32,
    /// Why the previous try ended, from its log.
    pub last_error: Option<String>,
    pub records_in: u64,
    pub records_out: u64,
    pub records_in_per_s: f64,
    pub records_out_per_s: f64,
    pub lag_total: i64,
    /// By `topic/partition`.
    pub lag: BTreeMap<String, i64>,
    pub last_flush_at: Option<String>,
    pub last_flush_docs: u64,
    pub last_flush_ms: u64,
    pub late: u64,
    pub dead_lettered: u64,
    pub flushes: u64,
    /// One sample a second, oldest first, the last 10 minutes at most.
    pub history: Vec<StreamSample>,
    /// Lag has grown over the last minute.
    pub lag_growing: bool,
    /// Restarted within the last 2 minutes.
    pub restarting: bool,
    pub dead_letter_topic: Option<String>,
    /// Where results go: `mongodb db.collection` or `kafka topic`.
    pub sink: String,
}

#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct StreamSample {
    pub at_ms: i64,
    pub in_per_s: f64,
    pub out_per_s: f64,
    pub lag: i64,
}

/// One stream task with its latest dead letters.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StreamDetail {
    pub stream: StreamView,
    pub dead_letters: Vec<DeadLetterView>,
    /// Why the dead letters could not be read, if they could not.
    pub dead_letters_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct DeadLetterView {
    pub at: Option<String>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    /// The `error` header: why the record was dead-lettered.
    pub error: String,
    /// `topic/partition@offset` of the record in its source topic.
    pub source: String,
    pub payload: String,
}

/// What a stream task's sink holds: a window's aggregates by group, or the latest records.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ResultsView {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    /// `windows` or `records`.
    pub kind: String,
    pub sink: String,
    /// `window_start` of the windows written, newest first.
    pub windows: Vec<String>,
    pub selected: Option<String>,
    pub window_end: Option<String>,
    pub group_by: Vec<String>,
    pub aggregates: Vec<String>,
    /// The aggregate charted and sorted by (an index into `aggregates`).
    pub measure: usize,
    pub rows: Vec<ResultRow>,
    pub columns: Vec<String>,
    pub records: Vec<Vec<String>>,
    /// The stream task's flushes so far in its current try (0 when it is not running).
    pub flushes: u64,
    /// The task's instances (`parallelism`): more than 1, and each wrote its own documents,
    /// merged here per window and group.
    pub shares: u32,
    /// Why the results could not be read, if they could not.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ResultRow {
    /// The group-by values joined with ` · `.
    pub label: String,
    pub group: Vec<String>,
    pub values: Vec<String>,
    pub closed: bool,
}

impl ResultRow {
    /// The value of aggregate `index` as a number (0 when it is not one).
    pub fn number(&self, index: usize) -> f64 {
        self.values
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    }
}

/// Something moved: a stream flushed, or a second went by and the figures were sampled.
/// Carries the flush count of every running stream task, by `dag/run/task`.
#[derive(Debug, Clone, Default)]
pub struct StreamTick {
    /// Counts the ticks: the version of what the live pages render from it.
    pub seq: u64,
    pub flushes: BTreeMap<String, u64>,
    /// The once-a-second sample (the streams page re-renders on these only).
    pub sampled: bool,
}
