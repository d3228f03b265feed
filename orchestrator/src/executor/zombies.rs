//! Zombies: task instances left `running` by a process that died. On start-up they are
//! retried (if tries remain) or failed, and their runs adopted by this process.

use chrono::Utc;
use nix::{errno::Errno, sys::signal::kill, unistd::Pid};

use super::{Dispatch, Executor, ExecutorError};
use crate::store::{DagRunRow, Fence, RunState, TaskInstanceRow, TiChange, TiState};

/// Whether the `host:pid` owner is alive. Owners on other hosts are taken to be alive: only
/// one host's processes can be checked from here.
pub fn is_owner_alive(owner: Option<&str>, hostname: &str) -> bool {
    let Some((host, pid)) = owner.and_then(|o| o.rsplit_once(':')) else {
        return false;
    };
    if host != hostname {
        return true;
    }
    match pid.parse::<i32>() {
        Ok(pid) if pid > 0 => !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH)),
        _ => false,
    }
}

/// Adopts the running runs whose owner died, turning their `running` task instances into
/// retries or failures; returns the adopted runs, to be driven again.
/// `is_stream(dag_id, task_id)` tells which instances are supervised streams: those are always
/// restarted, whatever their tries.
pub async fn recover_zombies(
    executor: &Executor,
    is_stream: impl Fn(&str, &str) -> bool,
) -> Result<Vec<DagRunRow>, ExecutorError> {
    let store = executor.store();
    let mut adopted = Vec::new();
    for run in store.runs_in_state(RunState::Running).await? {
        if run.owner.as_deref() == Some(executor.owner())
            || is_owner_alive(run.owner.as_deref(), &executor.inner.hostname)
        {
            continue;
        }
        if !store
            .adopt_run(
                &run.dag_id,
                &run.run_id,
                run.owner.as_deref(),
                executor.owner(),
            )
            .await?
        {
            continue;
        }
        if executor.dispatch() == Dispatch::Queue {
            // Tries of workers are theirs: a lost worker's are taken by its heartbeat's age.
            adopted.push(DagRunRow {
                owner: Some(executor.owner().to_owned()),
                ..run
            });
            continue;
        }
        let owner = run.owner.as_deref().unwrap_or("unknown");
        for ti in store
            .task_instances(&run.dag_id, &run.run_id)
            .await?
            .into_iter()
            .filter(|ti| ti.state == TiState::Running)
        {
            tracing::warn!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, dead_owner = owner, "Found a zombie task instance");
            let reason = format!("zombie: the process running it ({owner}) died");
            let stream = is_stream(&ti.dag_id, &ti.task_id);
            take_over_try(executor, ti, reason, stream).await?;
        }
        adopted.push(DagRunRow {
            owner: Some(executor.owner().to_owned()),
            ..run
        });
    }
    Ok(adopted)
}

/// Declares lost the workers whose heartbeat is older than `timeout` and takes over their
/// running tries: retried (another worker claims them) while tries remain, else failed.
/// Returns how many tries were taken.
pub async fn recover_lost_workers(
    executor: &Executor,
    timeout: std::time::Duration,
    is_stream: impl Fn(&str, &str) -> bool,
) -> Result<usize, ExecutorError> {
    let store = executor.store();
    let cutoff = Utc::now() - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let mut taken = 0;
    for worker_id in store.declare_lost_workers(cutoff).await? {
        let tries = store.running_claimed_by(&worker_id).await?;
        tracing::warn!(worker_id = %worker_id, tries = tries.len(), timeout = ?timeout, "A worker stopped heartbeating: taking over its tries");
        for ti in tries {
            let reason = format!(
                "lost worker: {worker_id} sent no heartbeat for {}",
                humantime::format_duration(timeout)
            );
            let stream = is_stream(&ti.dag_id, &ti.task_id);
            take_over_try(executor, ti, reason, stream).await?;
            taken += 1;
        }
    }
    Ok(taken)
}

/// Ends a try whose process is gone, fenced by its claim (a claimant that is alive after all
/// can write nothing more): `up_for_retry` while tries remain (a stream's always do), else
/// `failed`.
async fn take_over_try(
    executor: &Executor,
    mut ti: TaskInstanceRow,
    reason: String,
    is_stream: bool,
) -> Result<(), ExecutorError> {
    ti.error = Some(reason);
    ti.end = Some(Utc::now());
    if is_stream {
        ti.max_tries = ti.max_tries.max(ti.try_number + 1);
    }
    ti.state = if ti.try_number < ti.max_tries {
        ti.next_retry_at = Some(Utc::now());
        TiState::UpForRetry
    } else {
        TiState::Failed
    };
    let claimant = ti.claimed_by.clone().unwrap_or_default();
    executor
        .store()
        .transition_task_instance(&TiChange {
            row: &ti,
            from: TiState::Running,
            via: None,
            fence: Fence::Claim(&claimant),
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_checked_by_pid_on_this_host() {
        let me = format!("here:{}", std::process::id());
        assert!(is_owner_alive(Some(&me), "here"));
        assert!(!is_owner_alive(Some("here:2147483646"), "here"));
        assert!(is_owner_alive(Some("elsewhere:1"), "here"));
        assert!(!is_owner_alive(None, "here"));
        assert!(!is_owner_alive(Some("garbage"), "here"));
    }
}
