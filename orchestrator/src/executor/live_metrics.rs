//! The live metrics of running tries (records per second, lag, flushes of streams): a registry
//! per process that its executors share, published to the store by workers about once a
//! second and mirrored from it by every `serve`, so a stream's page shows it wherever it runs.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;

use crate::store::{Store, TaskKey};

/// How often `serve` mirrors.
const EVERY: Duration = Duration::from_millis(500);
/// Published metrics older than this are of tries that ended (or of workers gone).
const STALE: chrono::Duration = chrono::Duration::seconds(5);

/// The live metrics of running tries, by task instance; shared by the executors of one
/// process (a `serve` and its local worker), so its pages show the tries its worker runs,
/// and mirrored from the store for tries on other workers.
#[derive(Debug, Clone, Default)]
pub struct LiveMetrics(Arc<Mutex<HashMap<TaskKey, tasks::Metrics>>>);

impl LiveMetrics {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskKey, tasks::Metrics>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every stream try's figures now.
    pub fn streams(&self) -> Vec<(TaskKey, tasks::StreamMetrics)> {
        self.lock()
            .iter()
            .filter_map(|(key, metrics)| Some((key.clone(), metrics.stream()?)))
            .collect()
    }

    /// Shows `published` (a try on another worker) unless a try of this process holds the key.
    /// Returns whether it did.
    fn mirror(
        &self,
        key: &TaskKey,
        published: &tasks::StreamMetrics,
        mirrored: &HashSet<TaskKey>,
    ) -> bool {
        let mut all = self.lock();
        if all.contains_key(key) && !mirrored.contains(key) {
            return false;
        }
        let metrics = all.entry(key.clone()).or_default();
        metrics.update_stream(|m| m.clone_from(published));
        true
    }

    fn forget(&self, key: &TaskKey) {
        self.lock().remove(key);
    }

    /// Mirrors the metrics workers publish into this registry every half second until the
    /// process ends (the tries of this process's own worker are here already).
    pub fn spawn_mirror(&self, store: Store) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            let mut mirrored: HashSet<TaskKey> = HashSet::new();
            loop {
                tick.tick().await;
                let recent = match store.recent_task_metrics(Utc::now() - STALE).await {
                    Ok(recent) => recent,
                    Err(error) => {
                        tracing::warn!(%error, "Cannot read the live metrics of workers");
                        continue;
                    }
                };
                let mut seen = HashSet::new();
                for published in recent {
                    if registry.mirror(&published.task, &published.metrics, &mirrored) {
                        seen.insert(published.task);
                    }
                }
                for gone in mirrored.difference(&seen) {
                    registry.forget(gone);
                }
                mirrored = seen;
            }
        });
    }
}
