//! The store's change feed: every state change it commits, published after the commit, for
//! the live pages of this process.

use tokio::sync::broadcast;

use super::{RunState, TiState};

/// A committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    Run {
        dag_id: String,
        run_id: String,
        state: RunState,
    },
    Task {
        dag_id: String,
        run_id: String,
        task_id: String,
        state: TiState,
        try_number: u32,
    },
    /// Paused or unpaused.
    Dag { dag_id: String, is_paused: bool },
    /// A backfill was created, paused, resumed, cancelled or completed (its runs' own moves
    /// are `Run` events).
    Backfill { dag_id: String, backfill_id: i64 },
    /// Someone asked a running run to stop: whoever runs its tries cancels them.
    StopRequested { dag_id: String, run_id: String },
    /// Lines of a try's log reached the store (shipped by the process running the try).
    Log {
        dag_id: String,
        run_id: String,
        task_id: String,
        try_number: u32,
    },
}

/// How many events a slow subscriber may fall behind before it is told it lagged.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub(super) struct EventFeed {
    sender: broadcast::Sender<StoreEvent>,
}

impl EventFeed {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    pub fn publish(&self, event: StoreEvent) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.sender.subscribe()
    }
}
