//! Group commit of task state changes: every transition waits until it is durable, but the
//! transitions that arrive together share one transaction (one fsync instead of many).

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError, TaskInstanceRow};

/// The most rows one transaction takes.
const MAX_BATCH: usize = 512;

type Ack = oneshot::Sender<Result<(), StoreError>>;

/// Sends rows to the writer task; cheap to clone.
#[derive(Clone)]
pub struct StateWriter {
    requests: mpsc::UnboundedSender<(TaskInstanceRow, Ack)>,
}

impl StateWriter {
    /// Starts the writer task (it ends when the last `StateWriter` is dropped).
    pub fn start(store: Store) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, receiver));
        Self { requests }
    }

    /// Saves `ti`; returns once it is durable.
    pub async fn save(&self, ti: TaskInstanceRow) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        if self.requests.send((ti, ack)).is_err() {
            return Err(StoreError::Closed);
        }
        done.await.unwrap_or(Err(StoreError::Closed))
    }
}

async fn write_batches(
    store: Store,
    mut receiver: mpsc::UnboundedReceiver<(TaskInstanceRow, Ack)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<&TaskInstanceRow> = batch.iter().map(|(ti, _)| ti).collect();
        match store.save_task_instances(&rows).await {
            Ok(()) => {
                for (_, ack) in batch.drain(..) {
                    let _ = ack.send(Ok(()));
                }
            }
            // One bad row must not fail the others: retry each alone for its own answer.
            Err(_) => {
                for (ti, ack) in batch.drain(..) {
                    let _ = ack.send(store.save_task_instance(&ti).await);
                }
            }
        }
    }
}
