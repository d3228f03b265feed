//! Changes made by other processes reach this one on PostgreSQL: every state move is also
//! sent with `NOTIFY` inside its transaction (so it is delivered at commit, never before), and
//! a listener republishes the moves of other processes into this process's change feed. Its
//! subscribers (run drivers, workers, live pages) cannot tell local moves from remote ones.
//!
//! A notification can be lost while the listener reconnects: whoever waits on one also polls
//! slowly, so a lost notification delays, never stalls.

use std::time::Duration;

use sqlx::{AnyConnection, postgres::PgListener};

use super::{Result, RunState, Store, StoreEvent, TiState, events::EventFeed};

/// The channel every process of one metadata database listens on.
const CHANNEL: &str = "updraft_events";

/// The wire form of an event: tab-separated fields after the sender's origin (ids cannot
/// hold tabs: they are checked at load time or generated).
fn encode(origin: &str, event: &StoreEvent) -> Option<String> {
    match event {
        StoreEvent::Task {
            dag_id,
            run_id,
            task_id,
            state,
            try_number,
        } => Some(format!(
            "{origin}\tT\t{dag_id}\t{run_id}\t{task_id}\t{state}\t{try_number}"
        )),
        StoreEvent::Run {
            dag_id,
            run_id,
            state,
        } => Some(format!("{origin}\tR\t{dag_id}\t{run_id}\t{state}")),
        StoreEvent::Log {
            dag_id,
            run_id,
            task_id,
            try_number,
        } => Some(format!(
            "{origin}\tL\t{dag_id}\t{run_id}\t{task_id}\t{try_number}"
        )),
        StoreEvent::StopRequested { dag_id, run_id } => {
            Some(format!("{origin}\tS\t{dag_id}\t{run_id}"))
        }
        StoreEvent::Backfill {
            dag_id,
            backfill_id,
        } => Some(format!("{origin}\tB\t{dag_id}\t{backfill_id}")),
        StoreEvent::Dag { .. } => None,
    }
}

/// The event of a payload sent by another process; None for this process's own or garbage.
fn decode(own_origin: &str, payload: &str) -> Option<StoreEvent> {
    let fields: Vec<&str> = payload.split('\t').collect();
    match fields.as_slice() {
        [origin, ..] if *origin == own_origin => None,
        [_, "T", dag_id, run_id, task_id, state, try_number] => Some(StoreEvent::Task {
            dag_id: (*dag_id).to_owned(),
            run_id: (*run_id).to_owned(),
            task_id: (*task_id).to_owned(),
            state: state.parse::<TiState>().ok()?,
            try_number: try_number.parse().ok()?,
        }),
        [_, "L", dag_id, run_id, task_id, try_number] => Some(StoreEvent::Log {
            dag_id: (*dag_id).to_owned(),
            run_id: (*run_id).to_owned(),
            task_id: (*task_id).to_owned(),
            try_number: try_number.parse().ok()?,
        }),
        [_, "S", dag_id, run_id] => Some(StoreEvent::StopRequested {
            dag_id: (*dag_id).to_owned(),
            run_id: (*run_id).to_owned(),
        }),
        [_, "B", dag_id, backfill_id] => Some(StoreEvent::Backfill {
            dag_id: (*dag_id).to_owned(),
            backfill_id: backfill_id.parse().ok()?,
        }),
        [_, "R", dag_id, run_id, state] => Some(StoreEvent::Run {
            dag_id: (*dag_id).to_owned(),
            run_id: (*run_id).to_owned(),
            state: state.parse::<RunState>().ok()?,
        }),
        _ => None,
    }
}

impl Store {
    /// Sends the `events` to the other processes when `conn`'s transaction commits
    /// (PostgreSQL; on SQLite one process does everything and `events` is not even called).
    pub(super) async fn notify_in(
        &self,
        conn: &mut AnyConnection,
        events: impl FnOnce() -> Vec<StoreEvent>,
    ) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        // One NOTIFY carries many events (a line each), within PostgreSQL's 8000-byte
        // payload: a group commit of hundreds of moves costs a few statements, not hundreds.
        let mut payload = String::new();
        for event in events() {
            let Some(line) = encode(&remote.origin, &event) else {
                continue;
            };
            if !payload.is_empty() && payload.len() + 1 + line.len() > MAX_PAYLOAD {
                send(conn, &payload).await?;
                payload.clear();
            }
            if !payload.is_empty() {
                payload.push('\n');
            }
            payload.push_str(&line);
        }
        if !payload.is_empty() {
            send(conn, &payload).await?;
        }
        Ok(())
    }

    /// On PostgreSQL, starts republishing the moves of other processes into this handle's
    /// change feed (until the process ends); does nothing on SQLite or when already listening.
    pub async fn listen_to_other_processes(&self) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        if remote
            .listening
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        let mut listener = PgListener::connect(&remote.url).await?;
        listener.listen(CHANNEL).await?;
        tokio::spawn(republish(
            listener,
            remote.origin.clone(),
            self.events.clone(),
        ));
        Ok(())
    }
}

/// The most bytes one notification carries (PostgreSQL refuses 8000 and more).
const MAX_PAYLOAD: usize = 7900;

async fn send(conn: &mut AnyConnection, payload: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn republish(mut listener: PgListener, origin: String, feed: EventFeed) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                for line in notification.payload().lines() {
                    if let Some(event) = decode(&origin, line) {
                        feed.publish(event);
                    }
                }
            }
            // The connection dropped: the next call reconnects (what was sent meanwhile is
            // lost; waiters poll as well).
            Ok(None) => tracing::warn!("Lost the metadata database's notifications; reconnecting"),
            Err(error) => {
                tracing::warn!(%error, "Cannot receive the metadata database's notifications");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_cross_as_text_and_a_process_ignores_its_own() {
        let task = StoreEvent::Task {
            dag_id: "d".into(),
            run_id: "manual__2026-12-02T07:10:11.123456Z".into(),
            task_id: "t".into(),
            state: TiState::UpForRetry,
            try_number: 3,
        };
        let run = StoreEvent::Run {
            dag_id: "d".into(),
            run_id: "r".into(),
            state: RunState::Stopped,
        };
        let log = StoreEvent::Log {
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: "t".into(),
            try_number: 2,
        };
        let stop = StoreEvent::StopRequested {
            dag_id: "d".into(),
            run_id: "r".into(),
        };
        let backfill = StoreEvent::Backfill {
            dag_id: "d".into(),
            backfill_id: 12,
        };
        for event in [task, run, log, stop, backfill] {
            let payload = encode("a", &event).unwrap();
            assert_eq!(decode("b", &payload), Some(event));
            assert_eq!(decode("a", &payload), None);
        }
        assert_eq!(decode("b", "a\tT\tonly\tthree"), None);
        assert_eq!(decode("b", "a\tR\td\tr\tnot-a-state"), None);
    }
}
