//! Group commit of task state changes: every transition waits until it is durable, but the
//! transitions that arrive together share one transaction (one fsync instead of many).

use tokio::sync::{mpsc, oneshot};

use crate::store::{Fence, HeldConnection, Store, StoreError, TaskInstanceRow, TiChange, TiState};

/// The most rows one transaction takes.
const MAX_BATCH: usize = 512;

type Ack = oneshot::Sender<Result<(), StoreError>>;

/// A row to write, the state it must still be in and the one it passes through, if any.
struct Request {
    row: TaskInstanceRow,
    from: TiState,
    via: Option<TiState>,
    ack: Ack,
}

/// Sends rows to the writer task; cheap to clone.
#[derive(Clone)]
pub struct StateWriter {
    requests: mpsc::UnboundedSender<Request>,
}

impl StateWriter {
    /// Starts the writer task for the executor `owner` (it ends when the last `StateWriter`
    /// is dropped).
    pub fn start(store: Store, owner: String) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, owner, receiver));
        Self { requests }
    }

    /// Saves `row` if it is still `from` in a run this executor holds (through `via` on the
    /// way, if given); returns once durable.
    pub async fn save(
        &self,
        row: TaskInstanceRow,
        from: TiState,
        via: Option<TiState>,
    ) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        let request = Request {
            row,
            from,
            via,
            ack,
        };
        if self.requests.send(request).is_err() {
            return Err(StoreError::Closed);
        }
        done.await.unwrap_or(Err(StoreError::Closed))
    }
}

async fn write_batches(
    store: Store,
    owner: String,
    mut receiver: mpsc::UnboundedReceiver<Request>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Every batch on the same connection: see [`HeldConnection`].
    let mut held = HeldConnection::default();
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let changes: Vec<TiChange<'_>> = batch
            .iter()
            .map(|r: &Request| TiChange {
                row: &r.row,
                from: r.from,
                via: r.via,
                fence: fence(r.from, &owner),
            })
            .collect();
        let outcome = store
            .transition_task_instances_held(&mut held, &changes)
            .await;
        drop(changes);
        match outcome {
            Ok(()) => {
                for request in batch.drain(..) {
                    let _ = request.ack.send(Ok(()));
                }
            }
            // One bad row must not fail the others: retry each alone for its own answer.
            Err(_) => {
                for request in batch.drain(..) {
                    let change = TiChange {
                        row: &request.row,
                        from: request.from,
                        via: request.via,
                        fence: fence(request.from, &owner),
                    };
                    let outcome = store
                        .transition_task_instances_held(&mut held, std::slice::from_ref(&change))
                        .await;
                    let _ = request.ack.send(outcome);
                }
            }
        }
    }
}

/// A try's own moves (from running) are fenced by its claim; the others by the hold on the run.
fn fence(from: TiState, owner: &str) -> Fence<'_> {
    if from == TiState::Running {
        Fence::Claim(owner)
    } else {
        Fence::RunOwner(owner)
    }
}
