use futures::stream::BoxStream;
use serde::Serialize;

/// A state change pushed to the pages (one SSE stream for all of them).
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    /// Increasing; the SSE id a reconnecting page resumes after.
    pub seq: u64,
    pub dag_id: String,
    pub run_id: Option<String>,
    pub task_id: Option<String>,
    /// run, task or dag.
    pub kind: String,
    pub state: Option<String>,
    pub try_number: Option<u32>,
}

/// Live events from a point on.
pub struct LiveSubscription {
    /// Events after the id the client gave, still held by the server.
    pub replay: Vec<LiveEvent>,
    /// The server no longer holds every event after that id: the client should reload.
    pub gap: bool,
    pub stream: BoxStream<'static, LiveEvent>,
}
