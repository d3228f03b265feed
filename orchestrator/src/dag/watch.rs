//! Reloads the DAGs folder when its files change.

use std::{path::PathBuf, sync::Arc, time::Duration};

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::DagBag;

/// How long to wait for a burst of file events to settle before reloading.
const SETTLE: Duration = Duration::from_millis(150);

/// Watches `folder`: the returned receiver holds the newest [`DagBag`], reloaded after every
/// change. The watcher lives as long as the returned guard.
pub fn watch_folder(
    folder: PathBuf,
    initial: Arc<DagBag>,
) -> notify::Result<(watch::Receiver<Arc<DagBag>>, impl Drop)> {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = events_tx.send(());
        }
    })?;
    watcher.watch(&folder, RecursiveMode::Recursive)?;
    let (bag_tx, bag_rx) = watch::channel(initial);
    tokio::spawn(async move {
        while events.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while events.try_recv().is_ok() {}
            match DagBag::load(&folder) {
                Ok(bag) => {
                    tracing::info!(
                        dags = bag.dags.len(),
                        import_errors = bag.errors.len(),
                        "Reloaded the DAGs folder"
                    );
                    if bag_tx.send(Arc::new(bag)).is_err() {
                        break;
                    }
                }
                Err(error) => tracing::warn!(%error, "Cannot reload the DAGs folder"),
            }
        }
    });
    Ok((bag_rx, WatchGuard { _watcher: watcher }))
}

struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        tracing::debug!("Stopped watching the DAGs folder");
    }
}
