use std::{path::PathBuf, time::Duration};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use tasks::OperatorKind;

use super::Schedule;
use crate::store::NewTaskInstance;

/// The queue of tasks and DAGs that name none.
pub const DEFAULT_QUEUE: &str = "default";

/// One DAG, parsed and validated.
#[derive(Debug, Clone)]
pub struct Dag {
    pub id: String,
    pub file: PathBuf,
    pub description: Option<String>,
    pub schedule: Schedule,
    pub timezone: Tz,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    /// Defaults for `params`, overridden key by key by the conf given at trigger time.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Whether a trigger's conf may hold keys that are not params (off: they are refused).
    pub allow_extra_conf: bool,
    pub tags: Vec<String>,
    /// The queue of its tasks that name none (`[dag] queue`, else `default`).
    pub queue: String,
    /// The orchestrator's environment variables every shell task of the DAG also gets.
    pub env_passthrough: Vec<String>,
    /// The DAG file's text as parsed, and its SHA-256 (hex): a new hash is a new version.
    pub source: std::sync::Arc<str>,
    pub source_hash: String,
    /// Tasks in a topological order (every task after its upstreams).
    pub tasks: Vec<TaskSpec>,
    /// Task id -> position in `tasks` (set with them: [`Dag::set_tasks`]).
    pub(super) positions: rustc_hash::FxHashMap<String, usize>,
}

impl Dag {
    /// The task `task_id`, or the task an instance id (`stats~1`, see
    /// [`TaskSpec::instance_ids`]) belongs to.
    pub fn task(&self, task_id: &str) -> Option<&TaskSpec> {
        self.tasks.get(self.position(task_id)?)
    }

    /// The position in `tasks` of the task `task_id` (or of the task an instance id belongs to).
    pub fn position(&self, task_id: &str) -> Option<usize> {
        self.positions.get(base_task_id(task_id)).copied()
    }

    /// Sets the tasks (in topological order) and indexes them by id: looking a task up is a
    /// hash lookup, not a scan (every try looks its task up).
    pub fn set_tasks(&mut self, tasks: Vec<TaskSpec>) {
        self.positions = tasks
            .iter()
            .enumerate()
            .map(|(position, task)| (task.id.clone(), position))
            .collect();
        self.tasks = tasks;
    }

    /// The ids of the tasks downstream of `task_id` (transitively), in task order.
    pub fn downstream_of(&self, task_id: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for task in &self.tasks {
            let below = task
                .upstream
                .iter()
                .any(|u| u == task_id || found.contains(u));
            if below {
                found.push(task.id.clone());
            }
        }
        found
    }

    /// What a new run's task instances start from: id, tries and queue of every task.
    pub fn new_task_instances(&self) -> Vec<NewTaskInstance> {
        self.tasks
            .iter()
            .flat_map(|task| {
                task.instance_ids()
                    .into_iter()
                    .map(|task_id| NewTaskInstance {
                        task_id,
                        max_tries: task.retry.retries.saturating_add(1),
                        queue: task.queue.clone(),
                        pool: task.pool.clone(),
                        pool_slots: task.pool_slots,
                        priority_weight: task.priority_weight,
                    })
            })
            .collect()
    }
}

/// One task of a DAG: the common fields and the operator's raw (untemplated) config.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub id: String,
    pub operator: OperatorKind,
    pub upstream: Vec<String>,
    pub trigger_rule: TriggerRule,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    /// The queue whose workers run it (its own `queue`, else the DAG's).
    pub queue: String,
    /// Instances of a stream task, each owning a share of the partitions (1: one instance,
    /// named as the task).
    pub parallelism: u32,
    /// The pool whose slots its tries take (`default_pool` unless named), how many, and its
    /// rank among the tries waiting for that pool (higher first).
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
    /// The operator config as written, `operator` key included; string values are templates
    /// rendered at the start of each try.
    pub config: serde_json::Value,
}

/// Separates a task's id from an instance number (`stats~0`): never in an id written in a
/// DAG file, so an instance id cannot be another task's.
pub const INSTANCE_MARK: char = '~';

/// The id of the task an instance id (`stats~1`) belongs to; a task's own id as it is.
pub fn base_task_id(instance_id: &str) -> &str {
    instance_id
        .split_once(INSTANCE_MARK)
        .map_or(instance_id, |(base, _)| base)
}

impl TaskSpec {
    /// The ids of its task instances in a run: the task's own id, or one per share
    /// (`stats~0`, `stats~1`, ...) with `parallelism` > 1.
    pub fn instance_ids(&self) -> Vec<String> {
        if self.parallelism <= 1 {
            return vec![self.id.clone()];
        }
        (0..self.parallelism)
            .map(|i| format!("{}{INSTANCE_MARK}{i}", self.id))
            .collect()
    }

    /// The share of the input the instance `instance_id` owns.
    pub fn share_of(&self, instance_id: &str) -> tasks::Share {
        let index = instance_id
            .split_once(INSTANCE_MARK)
            .and_then(|(_, i)| i.parse().ok())
            .unwrap_or(0);
        tasks::Share {
            index,
            count: self.parallelism.max(1),
        }
    }

    /// Long-running stream tasks are supervised: restarted until their run stops.
    pub fn is_stream(&self) -> bool {
        self.operator == OperatorKind::Stream
    }
}

/// When a task may run, given the states of its upstreams (Airflow's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded (or was skipped).
    #[default]
    AllSuccess,
    /// Every upstream is done, whatever its state.
    AllDone,
    /// At least one upstream succeeded.
    OneSuccess,
    /// At least one upstream failed.
    OneFailed,
    /// No upstream failed or was upstream_failed (success or skipped).
    NoneFailed,
}

/// Retries of a task: `retries` more tries after the first, waiting `retry_delay` (doubled each
/// time with exponential backoff, never more than `max_retry_delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub delay: Duration,
    pub exponential_backoff: bool,
    pub max_delay: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            delay: Duration::from_secs(300),
            exponential_backoff: false,
            max_delay: None,
        }
    }
}

/// The conf of a run merged over the DAG's params.
pub fn merge_params(
    defaults: &serde_json::Map<String, serde_json::Value>,
    conf: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut params = defaults.clone();
    params.extend(conf.iter().map(|(k, v)| (k.clone(), v.clone())));
    params
}
