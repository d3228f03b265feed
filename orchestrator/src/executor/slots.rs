//! Slots for the tries this process runs. A try waits (still `queued`) until three limits all
//! have room at once: the process's (`--parallelism`), its DAG's (`max_active_tasks`) and its
//! pool's (`pool_slots` of the pool's size), and then takes the three together: a try waiting
//! for its pool holds no slot of the process, so it cannot starve the tries of other pools.
//!
//! The waiting tries form one line over every DAG and pool, served highest `priority_weight`
//! first, then oldest logical date, then first come. A try that does not fit holds back the
//! tries behind it that need what it waits for (the same DAG, the same pool, or any process
//! slot), not the others.
//!
//! A pool's size is read from the store (at most a second old), so `orchestrator pools set`
//! reaches a running `serve` within a second. Tries on workers take their pool slots in the
//! claim's transaction instead (see `Store::claim_task_instances`).

use std::{
    cmp::Reverse,
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use tokio::sync::oneshot;

use crate::{dag::TaskSpec, store::Store};

/// How old a pool's size may be, and how often a waiting try looks again.
const REFRESH: Duration = Duration::from_secs(1);

/// The slots of this process's tries; cheap to clone.
#[derive(Clone)]
pub(super) struct SlotLine {
    store: Store,
    state: Arc<Mutex<LineState>>,
}

/// What one try needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Need {
    pub dag_id: String,
    /// The DAG's `max_active_tasks`, as its file says now.
    pub max_active_tasks: u32,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
    /// RFC 3339: older runs first among equal priorities.
    pub logical_date: String,
}

impl Need {
    /// What a try of `spec` needs in a run (dated `logical_date`) of the DAG `dag_id` whose
    /// `max_active_tasks` is given.
    pub fn of(spec: &TaskSpec, dag_id: &str, max_active_tasks: u32, logical_date: &str) -> Self {
        Self {
            dag_id: dag_id.to_owned(),
            max_active_tasks,
            pool: spec.pool.clone(),
            pool_slots: spec.pool_slots,
            priority_weight: spec.priority_weight,
            logical_date: logical_date.to_owned(),
        }
    }
}

/// Who is served first: higher priority, then the older logical date, then who came first.
type WaiterKey = (Reverse<i32>, String, u64);

struct Waiter {
    need: Need,
    /// Set once its slots are taken for it; it takes them up when it wakes.
    granted: bool,
    wake: Option<oneshot::Sender<()>>,
}

struct LineState {
    parallelism: usize,
    running: usize,
    /// Tries running per DAG (no entry at 0).
    dags: HashMap<String, u32>,
    pools: HashMap<String, PoolState>,
    waiters: BTreeMap<WaiterKey, Waiter>,
    /// The waiters not granted yet, counted by DAG and by pool.
    ungranted: Ungranted,
    arrivals: u64,
}

/// How many waiters wait for slots, per DAG and per pool (no entry at 0): once every DAG or
/// every pool in the line is held back, nobody further back can fit, and the line is not
/// walked on (a line of hundreds of waiters behind one full pool is not looked at on every
/// release).
#[derive(Default)]
struct Ungranted {
    per_dag: HashMap<String, u32>,
    per_pool: HashMap<String, u32>,
}

impl Ungranted {
    fn add(&mut self, need: &Need) {
        count_up(&mut self.per_dag, &need.dag_id);
        count_up(&mut self.per_pool, &need.pool);
    }

    fn remove(&mut self, need: &Need) {
        count_down(&mut self.per_dag, &need.dag_id);
        count_down(&mut self.per_pool, &need.pool);
    }

    fn is_empty(&self) -> bool {
        self.per_dag.is_empty()
    }

    /// Whether every waiter is held back by one of these DAGs or pools.
    fn all_held_back(&self, dags: &HashSet<String>, pools: &HashSet<String>) -> bool {
        dags.len() == self.per_dag.len() || pools.len() == self.per_pool.len()
    }
}

/// Counts `key` up by one (its name copied only for a new entry).
fn count_up(counts: &mut HashMap<String, u32>, key: &str) {
    match counts.get_mut(key) {
        Some(count) => *count += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// Counts `key` down by one, dropping its entry at 0.
fn count_down(counts: &mut HashMap<String, u32>, key: &str) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

#[derive(Default)]
struct PoolState {
    used: i64,
    /// The pool's slots; None while unknown or when it does not exist (its tries wait).
    size: Option<i64>,
    read_at: Option<Instant>,
}

impl PoolState {
    fn stale(&self) -> bool {
        self.read_at.is_none_or(|at| at.elapsed() >= REFRESH)
    }
}

/// The slots one try holds: a process slot, a DAG slot and its pool slots, given back when
/// dropped. [`SlotPermit::keep_pool_only`] gives the first two back early.
pub(super) struct SlotPermit {
    state: Arc<Mutex<LineState>>,
    need: Need,
    /// Whether it still holds its process and DAG slots.
    run_slots: bool,
}

impl SlotPermit {
    /// Gives the process and DAG slots back now, keeping the pool's (the try's end is not
    /// written yet: the store must not show more of a pool running than it has).
    pub fn keep_pool_only(&mut self) {
        if std::mem::take(&mut self.run_slots) {
            lock(&self.state).release(&self.need, true, false);
        }
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        lock(&self.state).release(&self.need, self.run_slots, true);
    }
}

/// Takes a try's place in the line away when it stops waiting (cancelled); slots taken for
/// it in the meantime go back.
struct Waiting<'a> {
    line: &'a SlotLine,
    key: WaiterKey,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.line.state);
        if let Some(waiter) = state.waiters.remove(&self.key) {
            if !waiter.granted {
                state.ungranted.remove(&waiter.need);
            }
            // What was taken for it goes back; those it held back may fit now.
            state.release(&waiter.need, waiter.granted, waiter.granted);
        }
    }
}

fn lock(state: &Mutex<LineState>) -> MutexGuard<'_, LineState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl LineState {
    /// Puts a try at its place in the line; its key there.
    fn enter(&mut self, need: Need, wake: oneshot::Sender<()>) -> WaiterKey {
        self.arrivals += 1;
        let key: WaiterKey = (
            Reverse(need.priority_weight),
            need.logical_date.clone(),
            self.arrivals,
        );
        self.ungranted.add(&need);
        let waiter = Waiter {
            need,
            granted: false,
            wake: Some(wake),
        };
        self.waiters.insert(key.clone(), waiter);
        key
    }

    /// Gives back a try's process and DAG slots (`run_slots`) and its pool's (`pool`), then
    /// admits whoever fits.
    fn release(&mut self, need: &Need, run_slots: bool, pool: bool) {
        if run_slots {
            self.running -= 1;
            count_down(&mut self.dags, &need.dag_id);
        }
        if let Some(state) = self.pools.get_mut(&need.pool).filter(|_| pool) {
            state.used -= i64::from(need.pool_slots);
        }
        self.admit();
    }

    /// Takes the slots of every waiter that fits, in the line's order, and wakes it. A waiter
    /// that does not fit holds back the later ones needing what it lacks.
    fn admit(&mut self) {
        let mut blocked_dags: HashSet<String> = HashSet::default();
        let mut blocked_pools: HashSet<String> = HashSet::default();
        let Self {
            parallelism,
            running,
            dags,
            pools,
            waiters,
            ungranted,
            ..
        } = self;
        for waiter in waiters.values_mut().filter(|w| !w.granted) {
            if *running >= *parallelism || ungranted.all_held_back(&blocked_dags, &blocked_pools) {
                return;
            }
            let need = &waiter.need;
            if blocked_dags.contains(&need.dag_id) || blocked_pools.contains(&need.pool) {
                continue;
            }
            if !pools.contains_key(&need.pool) {
                pools.insert(need.pool.clone(), PoolState::default());
            }
            let Some(pool) = pools.get_mut(&need.pool) else {
                continue;
            };
            let (dag_fits, pool_fits) = fits(dags, pool, need);
            if !dag_fits {
                blocked_dags.insert(need.dag_id.clone());
            }
            if !pool_fits {
                blocked_pools.insert(need.pool.clone());
            }
            if !(dag_fits && pool_fits) {
                continue;
            }
            take(running, dags, pool, need);
            ungranted.remove(need);
            waiter.granted = true;
            if let Some(wake) = waiter.wake.take() {
                let _ = wake.send(());
            }
        }
    }
}

/// Whether `need` fits its DAG's limit and its pool (a pool of unknown size fits nothing).
fn fits(dags: &HashMap<String, u32>, pool: &PoolState, need: &Need) -> (bool, bool) {
    let dag_used = dags.get(&need.dag_id).copied().unwrap_or(0);
    let dag_fits = dag_used < need.max_active_tasks.max(1);
    let pool_fits = pool
        .size
        .is_some_and(|size| pool.used + i64::from(need.pool_slots) <= size);
    (dag_fits, pool_fits)
}

/// Takes a process slot, a DAG slot and the pool's slots for `need`.
fn take(running: &mut usize, dags: &mut HashMap<String, u32>, pool: &mut PoolState, need: &Need) {
    pool.used += i64::from(need.pool_slots);
    *running += 1;
    count_up(dags, &need.dag_id);
}

impl SlotLine {
    /// A line for a process running at most `parallelism` tries at once.
    pub fn new(store: Store, parallelism: usize) -> Self {
        Self {
            store,
            state: Arc::new(Mutex::new(LineState {
                parallelism: parallelism.max(1),
                running: 0,
                dags: HashMap::default(),
                pools: HashMap::default(),
                waiters: BTreeMap::new(),
                ungranted: Ungranted::default(),
                arrivals: 0,
            })),
        }
    }

    /// Waits until the process, the try's DAG and its pool all have room for it, and takes
    /// the slots. Dropping the future leaves the line.
    pub async fn acquire(&self, need: Need) -> SlotPermit {
        self.refresh(&need.pool).await;
        let (key, mut woken) = {
            let mut state = lock(&self.state);
            let (wake, woken) = oneshot::channel();
            let key = state.enter(need.clone(), wake);
            state.admit();
            if let Some(permit) = self.take_grant(&mut state, &key) {
                return permit;
            }
            (key, woken)
        };
        // Leaves the line if this future is dropped while it waits.
        let waiting = Waiting { line: self, key };
        loop {
            let _ = tokio::time::timeout(REFRESH, &mut woken).await;
            let granted = {
                let mut state = lock(&self.state);
                let permit = self.take_grant(&mut state, &waiting.key);
                if permit.is_none() {
                    let (wake, next) = oneshot::channel();
                    if let Some(waiter) = state.waiters.get_mut(&waiting.key) {
                        waiter.wake = Some(wake);
                    }
                    woken = next;
                }
                permit
            };
            if let Some(permit) = granted {
                return permit;
            }
            // A pool made larger (or created) admits its waiters within a second.
            self.refresh(&need.pool).await;
        }
    }

    /// Takes a try's slots now if the process, its DAG and its pool have room and nobody
    /// waits in the line (it never goes ahead of a waiting try); None otherwise, or while
    /// the pool's size was never read: then the try waits in [`SlotLine::acquire`].
    pub fn try_acquire(&self, need: &Need) -> Option<SlotPermit> {
        let stale = {
            let mut state = lock(&self.state);
            let LineState {
                parallelism,
                running,
                dags,
                pools,
                ungranted,
                ..
            } = &mut *state;
            let pool = pools.get_mut(&need.pool).filter(|p| p.read_at.is_some())?;
            let free = *running < *parallelism && ungranted.is_empty();
            if !free || fits(dags, pool, need) != (true, true) {
                return None;
            }
            take(running, dags, pool, need);
            pool.stale()
        };
        if stale {
            // Read again in the background, as a waiting try would.
            let (line, pool) = (self.clone(), need.pool.clone());
            tokio::spawn(async move { line.refresh(&pool).await });
        }
        Some(SlotPermit {
            state: self.state.clone(),
            need: need.clone(),
            run_slots: true,
        })
    }

    /// The permit of a waiter whose slots were taken, leaving the line.
    fn take_grant(&self, state: &mut LineState, key: &WaiterKey) -> Option<SlotPermit> {
        if !state.waiters.get(key).is_some_and(|w| w.granted) {
            return None;
        }
        let waiter = state.waiters.remove(key)?;
        Some(SlotPermit {
            state: self.state.clone(),
            need: waiter.need,
            run_slots: true,
        })
    }

    /// Reads the pool's size when it is over a second old: the first time before going on,
    /// later in the background (a try's start does not wait for the store once a second).
    async fn refresh(&self, pool: &str) {
        let known = {
            let mut state = lock(&self.state);
            let entry = state.pools.entry(pool.to_owned()).or_default();
            if !entry.stale() {
                return;
            }
            let known = entry.read_at.is_some();
            // Marked now: one read at a time.
            entry.read_at = Some(Instant::now());
            known
        };
        let read = {
            let (store, pool, line) = (self.store.clone(), pool.to_owned(), self.state.clone());
            async move {
                let size = store.pool_slots(&pool).await;
                let mut state = lock(&line);
                let entry = state.pools.entry(pool.clone()).or_default();
                match size {
                    Ok(size) => entry.size = size,
                    Err(error) => tracing::warn!(pool, %error, "Cannot read the pool's size"),
                }
                entry.read_at = Some(Instant::now());
                // A larger pool may admit its first in line.
                state.admit();
            }
        };
        if known {
            tokio::spawn(read);
        } else {
            read.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn line_with(parallelism: usize, pools: &[(&str, i64)]) -> (SlotLine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::connect(&url).await.unwrap();
        for (pool, slots) in pools {
            store.set_pool(pool, *slots, None).await.unwrap();
        }
        (SlotLine::new(store, parallelism), dir)
    }

    fn need(dag: &str, pool: &str, priority: i32) -> Need {
        Need {
            dag_id: dag.into(),
            max_active_tasks: 16,
            pool: pool.into(),
            pool_slots: 1,
            priority_weight: priority,
            logical_date: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// Spawns a try per need, one after the other, each recording its priority when it
    /// gets its slots and holding them 20 ms.
    async fn queue_up(
        line: &SlotLine,
        needs: Vec<Need>,
    ) -> (Arc<Mutex<Vec<i32>>>, Vec<tokio::task::JoinHandle<()>>) {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for need in needs {
            let (line, order) = (line.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let priority = need.priority_weight;
                let permit = line.acquire(need).await;
                order.lock().unwrap().push(priority);
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (order, waiting)
    }

    #[test]
    fn a_line_held_back_by_a_full_pool_still_admits_the_tries_of_other_pools_behind_it() {
        let pool = |used, size| PoolState {
            used,
            size: Some(size),
            read_at: Some(Instant::now()),
        };
        let mut state = LineState {
            parallelism: 8,
            running: 1,
            dags: HashMap::default(),
            pools: [("full".into(), pool(1, 1)), ("free".into(), pool(0, 2))]
                .into_iter()
                .collect(),
            waiters: BTreeMap::new(),
            ungranted: Ungranted::default(),
            arrivals: 0,
        };
        let order = ["full", "full", "free", "full", "full", "free", "free"];
        let woken: Vec<_> = order
            .iter()
            .map(|pool| {
                let (wake, woken) = oneshot::channel();
                state.enter(need("a", pool, 1), wake);
                woken
            })
            .collect();
        state.admit();
        let granted: Vec<bool> = woken
            .into_iter()
            .map(|mut w| w.try_recv().is_ok())
            .collect();
        // The free pool's first two (its size) go; its third and the full pool's wait.
        assert_eq!(granted, [false, false, true, false, false, true, false]);
        assert_eq!(state.ungranted.per_pool.get("full"), Some(&4));
        assert_eq!(state.ungranted.per_pool.get("free"), Some(&1));
        assert_eq!(state.ungranted.per_dag.get("a"), Some(&5));
        // Every pool is held back: nobody more is admitted.
        state.admit();
        assert_eq!(state.ungranted.per_dag.get("a"), Some(&5));
    }

    #[tokio::test]
    async fn a_pool_admits_its_slots_and_the_highest_priority_first() {
        let (line, _dir) = line_with(32, &[("etl", 2)]).await;
        let first = line.acquire(need("a", "etl", 1)).await;
        let second = line.acquire(need("b", "etl", 1)).await;
        let needs = vec![
            need("a", "etl", 1),
            need("b", "etl", 5),
            need("c", "etl", 3),
        ];
        let (order, waiting) = queue_up(&line, needs).await;
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
    async fn the_process_slots_go_to_the_highest_priority_across_dags() {
        let (line, _dir) = line_with(1, &[]).await;
        let held = line.acquire(need("a", "default_pool", 1)).await;
        let needs = vec![
            need("a", "default_pool", 1),
            need("b", "default_pool", 7),
            need("c", "default_pool", 4),
        ];
        let (order, waiting) = queue_up(&line, needs).await;
        drop(held);
        for task in waiting {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [7, 4, 1]);
    }

    #[tokio::test]
    async fn a_try_waiting_for_its_pool_holds_no_process_slot() {
        let (line, _dir) = line_with(2, &[("one", 1)]).await;
        let _pool_held = line.acquire(need("a", "one", 1)).await;
        // First in line (highest priority), but its pool is full.
        let line2 = line.clone();
        let blocked = tokio::spawn(async move { line2.acquire(need("a", "one", 9)).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let other = tokio::time::timeout(
            Duration::from_secs(1),
            line.acquire(need("b", "default_pool", 1)),
        )
        .await;
        assert!(
            other.is_ok(),
            "another pool's try takes the free process slot"
        );
        assert!(!blocked.is_finished(), "the pool is still full");
        blocked.abort();
    }

    #[tokio::test]
    async fn a_dag_at_its_max_active_tasks_holds_back_its_own_tries_only() {
        let (line, _dir) = line_with(8, &[]).await;
        let mut one = need("a", "default_pool", 1);
        one.max_active_tasks = 1;
        let _held = line.acquire(one.clone()).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), line.acquire(one)).await;
        assert!(waiting.is_err(), "the DAG's one slot is taken");
        let other = tokio::time::timeout(
            Duration::from_secs(1),
            line.acquire(need("b", "default_pool", 1)),
        )
        .await;
        assert!(other.is_ok(), "another DAG runs");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_line_and_keep_pool_only_frees_the_process_slot() {
        let (line, _dir) = line_with(1, &[("one", 1)]).await;
        let mut held = line.acquire(need("a", "one", 1)).await;
        let gone =
            tokio::time::timeout(Duration::from_millis(50), line.acquire(need("a", "one", 9)))
                .await;
        assert!(gone.is_err(), "waited while the pool was full");
        held.keep_pool_only();
        let other = tokio::time::timeout(
            Duration::from_secs(1),
            line.acquire(need("b", "default_pool", 1)),
        )
        .await
        .expect("the process slot came back");
        drop(other);
        drop(held);
        let next =
            tokio::time::timeout(Duration::from_secs(2), line.acquire(need("a", "one", 1))).await;
        assert!(
            next.is_ok(),
            "the cancelled waiter no longer blocks the line"
        );
    }

    #[tokio::test]
    async fn try_acquire_takes_free_slots_but_never_goes_ahead_of_the_line() {
        let (line, _dir) = line_with(2, &[("etl", 1)]).await;
        // The default pool's size is read.
        drop(line.acquire(need("z", "default_pool", 1)).await);
        assert!(
            line.try_acquire(&need("a", "etl", 1)).is_none(),
            "the pool's size was never read"
        );
        let first = line.acquire(need("a", "etl", 1)).await;
        assert!(
            line.try_acquire(&need("a", "etl", 1)).is_none(),
            "the pool is full"
        );
        drop(first);
        let first = line
            .try_acquire(&need("a", "etl", 1))
            .expect("the pool has room");
        // A try of the full pool waits in line: a try of another pool may not take the
        // process's last slot ahead of it, even though it would fit.
        let waiter = tokio::spawn({
            let line = line.clone();
            async move { line.acquire(need("b", "etl", 5)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(line.try_acquire(&need("c", "default_pool", 1)).is_none());
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the waiter got the pool")
            .unwrap();
        let other = line.try_acquire(&need("c", "default_pool", 1));
        assert!(
            other.is_some(),
            "nobody waits: the free process slot is taken"
        );
        assert!(
            line.try_acquire(&need("d", "default_pool", 1)).is_none(),
            "the process is full (2 of 2)"
        );
        drop(second);
    }
}
