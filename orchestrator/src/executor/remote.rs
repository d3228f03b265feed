//! The task instances of a driven run that were left to the queue: which are still out, and
//! when to look at them again (a retry falls due, or the slow poll that covers a lost
//! notification).

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// How long a driver trusts notifications alone before it re-reads the rows.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct RemoteTries {
    out: HashSet<String>,
    /// When the retry of a task instance waiting in `up_for_retry` falls due.
    retry_at: HashMap<String, DateTime<Utc>>,
}

impl RemoteTries {
    pub fn insert(&mut self, task_id: String) {
        self.out.insert(task_id);
    }

    pub fn remove(&mut self, task_id: &str) {
        self.out.remove(task_id);
        self.retry_at.remove(task_id);
    }

    pub fn contains(&self, task_id: &str) -> bool {
        self.out.contains(task_id)
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    pub fn retry_at(&mut self, task_id: &str, at: DateTime<Utc>) {
        self.retry_at.insert(task_id.to_owned(), at);
    }

    /// The next moment to re-read the rows: the earliest due retry, at most [`POLL`] away.
    pub fn next_check(&self) -> Instant {
        let now = Utc::now();
        let until_retry = self
            .retry_at
            .values()
            .map(|at| (*at - now).to_std().unwrap_or_default())
            .min()
            .unwrap_or(POLL);
        Instant::now() + until_retry.min(POLL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_due_retry_brings_the_next_check_forward() {
        let mut remote = RemoteTries::default();
        remote.insert("a".into());
        let poll = remote.next_check() - Instant::now();
        assert!(
            poll > Duration::from_millis(900) && poll <= POLL,
            "{poll:?}"
        );
        remote.retry_at("a", Utc::now() + chrono::Duration::milliseconds(100));
        assert!(remote.next_check() - Instant::now() <= Duration::from_millis(100));
        remote.remove("a");
        assert!(remote.is_empty() && !remote.contains("a"));
        assert!(remote.next_check() - Instant::now() > Duration::from_millis(900));
    }
}
