//! A try's log for the UI: parts of the file, search, and the live tail. The tail reads the
//! file, never the feed: the feed of lines only wakes it, so a follower that falls behind
//! re-reads from its offset instead of losing lines, and a reconnect resumes at any byte.

use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::broadcast::{self, error::RecvError};
use ui::views::{LogEvent, LogRange};

use crate::{
    logs::{LogHub, LogLine, LogPart, LogSlice, LogSource, TryLogKey},
    store::{Store, StoreEvent, TiState},
};

/// How often a follower looks at the file when nothing wakes it (a try run by another process
/// writes lines this process does not hear of).
const QUIET_RECHECK: Duration = Duration::from_secs(2);

/// Whether try `try_number` of a task instance has ended: the instance moved past it, or is
/// no longer running it.
pub async fn try_has_ended(
    store: &Store,
    key: &TryLogKey,
) -> Result<bool, crate::store::StoreError> {
    let ti = store
        .task_instance(&key.dag_id, &key.run_id, &key.task_id)
        .await?;
    Ok(ti.is_none_or(|ti| {
        ti.try_number > key.try_number
            || (ti.try_number == key.try_number && ti.state != TiState::Running)
    }))
}

/// Reads `range` of a try's log.
/// `range` of the log; `ended`: the try has ended (its log will not grow).
pub async fn read_range(
    source: &LogSource,
    range: LogRange,
    ended: bool,
) -> std::io::Result<LogSlice> {
    let part = match range {
        LogRange::Tail { lines } => LogPart::Tail { lines },
        LogRange::Before { offset, lines } => LogPart::Before { offset, lines },
        LogRange::From { offset, lines } => LogPart::From { offset, lines },
        LogRange::After { offset } => return source.read_new(offset, ended).await,
    };
    source.read(part).await
}

struct Follower {
    store: Store,
    key: TryLogKey,
    source: LogSource,
    offset: u64,
    ended: bool,
    done: bool,
    lines: broadcast::Receiver<LogLine>,
    closed: broadcast::Receiver<TryLogKey>,
    states: broadcast::Receiver<StoreEvent>,
}

/// The log from byte `from` on, as whole lines, live until the try ends, then `End`.
pub async fn follow(
    store: Store,
    hub: &LogHub,
    source: LogSource,
    key: TryLogKey,
    from: u64,
) -> Result<BoxStream<'static, LogEvent>, crate::store::StoreError> {
    // Subscribe first, then look: nothing written or ended in between is missed.
    let lines = hub.subscribe();
    let closed = hub.subscribe_closed();
    let states = store.subscribe();
    let ended = try_has_ended(&store, &key).await?;
    let follower = Follower {
        source,
        store,
        key,
        offset: from,
        ended,
        done: false,
        lines,
        closed,
        states,
    };
    Ok(futures::stream::unfold(follower, |mut f| async move {
        let event = f.next_event().await?;
        Some((event, f))
    })
    .boxed())
}

impl Follower {
    async fn next_event(&mut self) -> Option<LogEvent> {
        if self.done {
            return None;
        }
        loop {
            let slice = match self.source.read_new(self.offset, self.ended).await {
                Ok(slice) => slice,
                Err(error) => {
                    tracing::warn!(%error, task_id = %self.key.task_id, "Cannot read a task log");
                    self.done = true;
                    return Some(LogEvent::End);
                }
            };
            if !slice.text.is_empty() {
                self.offset = slice.end;
                return Some(LogEvent::Lines {
                    text: slice.text.trim_end_matches('\n').to_owned(),
                    end: slice.end,
                });
            }
            if self.ended {
                self.done = true;
                return Some(LogEvent::End);
            }
            self.wait().await;
        }
    }

    /// Sleeps until something may have changed: a line of this try, its log closed, its
    /// task instance changed, or a quiet spell.
    async fn wait(&mut self) {
        let key = self.key.clone();
        loop {
            let wake = tokio::select! {
            line = self.lines.recv() => match line {
                Ok(line) => line.is_of(&key).then_some(false),
                Err(RecvError::Lagged(_)) => Some(false),
                Err(RecvError::Closed) => Some(true),
            },
            closed = self.closed.recv() => match closed {
                Ok(closed) => (closed == key).then_some(true),
                Err(_) => Some(true),
            },
            state = self.states.recv() => match state {
                Ok(StoreEvent::Task { dag_id, run_id, task_id, .. })
                    if *dag_id == *key.dag_id && *run_id == *key.run_id && *task_id == *key.task_id => Some(true),
                // Lines shipped by the worker running the try.
                Ok(StoreEvent::Log { dag_id, run_id, task_id, try_number })
                    if try_number == key.try_number && *dag_id == *key.dag_id && *run_id == *key.run_id && *task_id == *key.task_id => Some(false),
                Ok(_) => None,
                Err(_) => Some(true),
            },
            _ = tokio::time::sleep(QUIET_RECHECK) => Some(true),
            };
            match wake {
                None => continue,
                Some(false) => return,
                Some(true) => {
                    self.ended = try_has_ended(&self.store, &self.key).await.unwrap_or(true);
                    return;
                }
            }
        }
    }
}
