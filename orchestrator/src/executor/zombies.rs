//! Zombies: task instances left `running` by a process that died. On start-up they are
//! retried (if tries remain) or failed, and their runs adopted by this process.

use chrono::Utc;
use nix::{errno::Errno, sys::signal::kill, unistd::Pid};

use super::{Executor, ExecutorError};
use crate::store::{DagRunRow, Fence, RunState, TiChange, TiState};

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
        for mut ti in store
            .task_instances(&run.dag_id, &run.run_id)
            .await?
            .into_iter()
            .filter(|ti| ti.state == TiState::Running)
        {
            let owner = run.owner.as_deref().unwrap_or("unknown");
            ti.error = Some(format!("zombie: the process running it ({owner}) died"));
            ti.end = Some(Utc::now());
            if is_stream(&ti.dag_id, &ti.task_id) {
                ti.max_tries = ti.max_tries.max(ti.try_number + 1);
            }
            let next = if ti.try_number < ti.max_tries {
                ti.next_retry_at = Some(Utc::now());
                TiState::UpForRetry
            } else {
                TiState::Failed
            };
            tracing::warn!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, dead_owner = owner, "Found a zombie task instance");
            let claimant = ti.claimed_by.clone().unwrap_or_default();
            ti.state = next;
            store
                .transition_task_instance(&TiChange {
                    row: &ti,
                    from: TiState::Running,
                    fence: Fence::Claim(&claimant),
                })
                .await?;
        }
        adopted.push(DagRunRow {
            owner: Some(executor.owner().to_owned()),
            ..run
        });
    }
    Ok(adopted)
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
