//! The workers of a shared metadata database and who schedules (the Workers page and
//! `GET /api/v1/workers`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::format::Stamp;

/// One worker process, as its heartbeat last told.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerView {
    pub name: String,
    /// active, stopping, stopped or lost.
    pub state: String,
    pub queues: Vec<String>,
    pub slots: u32,
    /// Tries running at its last heartbeat.
    pub running: u32,
    pub started: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub hostname: String,
    pub worker_id: String,
    /// The tries it runs now (claimed and `running`).
    pub tries: Vec<WorkerTry>,
}

impl WorkerView {
    pub fn heartbeat_stamp(&self) -> Stamp {
        Stamp(Some(self.last_heartbeat))
    }

    pub fn started_stamp(&self) -> Stamp {
        Stamp(Some(self.started))
    }

    pub fn is_live(&self) -> bool {
        matches!(self.state.as_str(), "active" | "stopping")
    }
}

/// A try a worker runs.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerTry {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
}

/// Every worker, and which `serve` schedules.
#[derive(Debug, Clone, Serialize)]
pub struct WorkersView {
    pub workers: Vec<WorkerView>,
    /// The holder of the scheduler lease (`host:pid`), on a shared database.
    pub scheduler: Option<String>,
    /// This `serve`'s own name in the lease.
    pub this_serve: Option<String>,
    /// Whether the metadata database is shared (PostgreSQL): without it there are no workers.
    pub shared: bool,
}

impl WorkersView {
    pub fn schedules_here(&self) -> bool {
        self.scheduler.is_some() && self.scheduler == self.this_serve
    }

    pub fn live_count(&self) -> usize {
        self.workers.iter().filter(|w| w.is_live()).count()
    }
}
