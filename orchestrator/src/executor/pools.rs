//! Pool slots for the tries this process runs: a try waits (still `queued`) until its pool has
//! `pool_slots` free, the waiting tries of a pool taking them highest `priority_weight` first,
//! then oldest logical date. A pool's size is read from the store (at most a second old), so
//! `orchestrator pools set` reaches a running `serve` within a second. Tries on workers take
//! their slots in the claim's transaction instead (see `Store::claim_task_instances`).

use std::{
    cmp::Reverse,
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::store::Store;

/// How old a pool's size may be, and how often a waiting try looks again.
const REFRESH: Duration = Duration::from_secs(1);

/// The pools of this process's tries.
#[derive(Clone)]
pub struct PoolGates {
    store: Store,
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
}

/// Who waits first: higher priority, then the older logical date, then who came first.
type WaiterKey = (Reverse<i32>, String, u64);

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    used: i64,
    /// The pool's slots; None when it does not exist (its tries wait for it).
    slots: Option<i64>,
    read_at: Option<Instant>,
    /// The line; a woken try keeps its place (its waker taken) until it is served or leaves.
    waiters: BTreeMap<WaiterKey, Option<oneshot::Sender<()>>>,
    arrivals: u64,
}

/// Slots taken from a pool; given back when dropped.
pub struct PoolPermit {
    gate: Arc<Gate>,
    slots: i64,
}

impl Drop for PoolPermit {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        state.used -= self.slots;
        state.wake_first();
    }
}

/// Takes a try's place in the line away when it stops waiting (cancelled, or served).
struct Waiting<'a> {
    gate: &'a Gate,
    key: WaiterKey,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        state.waiters.remove(&self.key);
        // The next in line may fit now that this one left.
        state.wake_first();
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl GateState {
    fn wake_first(&mut self) {
        if let Some(waker) = self.waiters.values_mut().next().and_then(Option::take) {
            let _ = waker.send(());
        }
    }

    fn stale(&self) -> bool {
        self.read_at.is_none_or(|at| at.elapsed() >= REFRESH)
    }
}

impl PoolGates {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            gates: Arc::default(),
        }
    }

    fn gate(&self, pool: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.entry(pool.to_owned()).or_default().clone()
    }

    /// Reads the pool's size when it is over a second old: the first time before going on,
    /// later in the background (a try's start does not wait for the store once a second).
    async fn refresh(&self, pool: &str, gate: &Arc<Gate>) {
        let known = {
            let mut state = gate.lock();
            if !state.stale() {
                return;
            }
            let known = state.read_at.is_some();
            // Marked now: one read at a time.
            state.read_at = Some(Instant::now());
            known
        };
        let read = {
            let (store, pool, gate) = (self.store.clone(), pool.to_owned(), gate.clone());
            async move {
                let size = store.pool_slots(&pool).await;
                let mut state = gate.lock();
                match size {
                    Ok(size) => state.slots = size,
                    Err(error) => tracing::warn!(pool, %error, "Cannot read the pool's size"),
                }
                state.read_at = Some(Instant::now());
                // A larger pool may admit the first in line.
                state.wake_first();
            }
        };
        if known {
            tokio::spawn(read);
        } else {
            read.await;
        }
    }

    /// Waits until `slots` of `pool` are free for a try of this priority and logical date
    /// (RFC 3339), and takes them.
    pub async fn acquire(
        &self,
        pool: &str,
        slots: u32,
        priority: i32,
        logical_date: &str,
    ) -> PoolPermit {
        let gate = self.gate(pool);
        let slots = i64::from(slots);
        let arrival = {
            let mut state = gate.lock();
            state.arrivals += 1;
            state.arrivals
        };
        let key: WaiterKey = (Reverse(priority), logical_date.to_owned(), arrival);
        // In line from the first wait on (leaving it when served or cancelled).
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            self.refresh(pool, &gate).await;
            let woken = {
                let mut state = gate.lock();
                let first = state
                    .waiters
                    .keys()
                    .next()
                    .is_none_or(|first| *first >= key);
                let fits = state.slots.is_some_and(|size| state.used + slots <= size);
                if first && fits {
                    state.used += slots;
                    state.waiters.remove(&key);
                    // Slots left: the next in line may fit too.
                    if state.slots.is_some_and(|size| state.used < size) {
                        state.wake_first();
                    }
                    return PoolPermit {
                        gate: gate.clone(),
                        slots,
                    };
                }
                let (waker, woken) = oneshot::channel();
                state.waiters.insert(key.clone(), Some(waker));
                woken
            };
            if waiting.is_none() {
                waiting = Some(Waiting {
                    gate: &gate,
                    key: key.clone(),
                });
            }
            let _ = tokio::time::timeout(REFRESH, woken).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn gates_with(pool: &str, slots: i64) -> (PoolGates, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.set_pool(pool, slots, None).await.unwrap();
        (PoolGates::new(store), dir)
    }

    #[tokio::test]
    async fn a_pool_admits_its_slots_and_the_highest_priority_first() {
        let (gates, _dir) = gates_with("etl", 2).await;
        let first = gates.acquire("etl", 1, 1, "2026-01-01T00:00:00Z").await;
        let second = gates.acquire("etl", 1, 1, "2026-01-01T00:00:00Z").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for priority in [1, 5, 3] {
            let (gates, order) = (gates.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let permit = gates
                    .acquire("etl", 1, priority, "2026-01-01T00:00:00Z")
                    .await;
                order.lock().unwrap().push(priority);
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(order.lock().unwrap().is_empty(), "the pool is full");
        drop(first);
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(second);
        for task in waiting {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [5, 3, 1]);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_line() {
        let (gates, _dir) = gates_with("one", 1).await;
        let held = gates.acquire("one", 1, 1, "a").await;
        let gone =
            tokio::time::timeout(Duration::from_millis(50), gates.acquire("one", 1, 9, "a")).await;
        assert!(gone.is_err(), "waited while the pool was full");
        drop(held);
        let next =
            tokio::time::timeout(Duration::from_secs(2), gates.acquire("one", 1, 1, "a")).await;
        assert!(
            next.is_ok(),
            "the cancelled waiter no longer blocks the line"
        );
    }
}
