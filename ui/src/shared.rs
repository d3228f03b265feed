//! Renders shared by every viewer of the same live partial at the same moment: the first
//! viewer of a (partial, version) renders it, the others wait for and reuse its result, so
//! the work per tick or flush does not grow with the number of viewers.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{Arc, Mutex},
};

use tokio::sync::OnceCell;

type Rendered = Option<Arc<str>>;
/// Renders of one partial by version, newest last (a version's render is made once).
type Versions = VecDeque<(u64, Arc<OnceCell<Rendered>>)>;

/// The latest renders of each partial, by key (a page and its query), newest last.
#[derive(Default)]
pub(crate) struct SharedRenders {
    latest: Mutex<HashMap<String, Versions>>,
}

/// Keys kept at once (distinct pages and queries being watched); beyond, the map starts over.
const KEYS: usize = 1024;
/// Versions kept per key, for viewers a tick or two behind the others.
const VERSIONS: usize = 4;

impl SharedRenders {
    /// The render of `key` at `version`: made by `render` once, whoever asks first.
    pub(crate) async fn get<F, Fut>(&self, key: &str, version: u64, render: F) -> Rendered
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Rendered>,
    {
        let cell = {
            let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            if !latest.contains_key(key) && latest.len() >= KEYS {
                latest.clear();
            }
            let versions = latest.entry(key.to_owned()).or_default();
            match versions.iter().find(|(at, _)| *at == version) {
                Some((_, cell)) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    versions.push_back((version, cell.clone()));
                    if versions.len() > VERSIONS {
                        versions.pop_front();
                    }
                    cell
                }
            }
        };
        cell.get_or_init(render).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_hundred_viewers_of_one_version_cost_one_render() {
        let shared = Arc::new(SharedRenders::default());
        let renders = Arc::new(AtomicUsize::new(0));
        let viewers: Vec<_> = (0..100)
            .map(|_| {
                let (shared, renders) = (shared.clone(), renders.clone());
                tokio::spawn(async move {
                    shared
                        .get("streams?", 7, || async {
                            renders.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Some(Arc::from("<p>7</p>"))
                        })
                        .await
                })
            })
            .collect();
        for viewer in viewers {
            assert_eq!(viewer.await.unwrap().as_deref(), Some("<p>7</p>"));
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        let next = shared
            .get("streams?", 8, || async { Some(Arc::from("<p>8</p>")) })
            .await;
        assert_eq!(
            next.as_deref(),
            Some("<p>8</p>"),
            "a new version renders anew"
        );
        let other = shared
            .get("streams?dag_id=x", 8, || async { Some(Arc::from("x")) })
            .await;
        assert_eq!(other.as_deref(), Some("x"), "keys are apart");
    }
}
