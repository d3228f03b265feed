//! The two state machines — task instances and DAG runs — and the one place each state
//! change is checked, written and logged.
//!
//! Every write of a state goes through [`Store::transition_task_instances`] (and its one-row
//! form) or [`Store::transition_run`]: the edge is checked against the tables below, the row is
//! written only if it is still in its previous state and its fence still holds (the run's
//! owner, or the claim of the try), and the move is logged as `from -> to`. The executor, the
//! zombie and lost-worker recovery, `tasks clear` and `tasks mark` all use them.

use super::{RunState, TiState};

/// Whether a task instance may move from `from` to `to`.
///
/// - scheduled -> queued (upstreams allow it) | upstream_failed | skipped (trigger rule)
/// - queued -> running (claimed by a slot or a worker) | skipped (the run was stopped first)
/// - running -> success | failed | up_for_retry (a try ended; zombies and lost workers too)
/// - up_for_retry -> queued (the retry delay passed) | failed (the run was stopped)
/// - a finished or retrying instance -> scheduled (`tasks clear`)
/// - a finished instance -> success | failed (`tasks mark`)
pub fn task_can_transition(from: TiState, to: TiState) -> bool {
    use TiState::*;
    let cleared = to == Scheduled && (from.is_finished() || from == UpForRetry);
    let marked = matches!(to, Success | Failed) && from.is_finished() && from != to;
    cleared
        || marked
        || matches!(
            (from, to),
            (Scheduled, Queued | UpstreamFailed | Skipped)
                | (Queued, Running | Skipped)
                | (Running, Success | Failed | UpForRetry)
                | (UpForRetry, Queued | Failed)
        )
}

/// Whether a DAG run may move from `from` to `to`.
///
/// - queued -> running (a scheduler claims it) | stopped (stopped before it started)
/// - running -> success | failed | stopped (its driver ends it)
/// - running -> running (a scheduler adopts the run of a dead one: only the owner changes)
/// - a finished run -> queued (`tasks clear` reopens it)
/// - a finished run -> success | failed (`tasks mark` recomputes it)
pub fn run_can_transition(from: RunState, to: RunState) -> bool {
    use RunState::*;
    let reopened = to == Queued && from.is_finished();
    let marked = matches!(to, Success | Failed) && from.is_finished() && from != to;
    reopened
        || marked
        || matches!(
            (from, to),
            (Queued, Running | Stopped) | (Running, Running | Success | Failed | Stopped)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_and_retries_are_allowed() {
        use TiState::*;
        let path = [
            Scheduled, Queued, Running, UpForRetry, Queued, Running, Success,
        ];
        for pair in path.windows(2) {
            assert!(
                task_can_transition(pair[0], pair[1]),
                "{:?} -> {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn finished_instances_move_only_by_clear_or_mark() {
        for from in TiState::ALL.iter().copied().filter(|s| s.is_finished()) {
            for to in TiState::ALL.iter().copied() {
                let by_command = to == TiState::Scheduled
                    || (matches!(to, TiState::Success | TiState::Failed) && to != from);
                assert_eq!(
                    task_can_transition(from, to),
                    by_command,
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn a_task_cannot_skip_running_nor_be_cleared_while_it_runs() {
        use TiState::*;
        for (from, to) in [
            (Scheduled, Success),
            (Queued, Success),
            (Scheduled, Running),
            (UpForRetry, Running),
            (Running, Scheduled),
            (Queued, Scheduled),
            (Running, Running),
            (Scheduled, Scheduled),
        ] {
            assert!(!task_can_transition(from, to), "{from:?} -> {to:?}");
        }
        assert!(task_can_transition(UpForRetry, Scheduled));
    }

    #[test]
    fn runs_start_end_and_reopen() {
        use RunState::*;
        for (from, to) in [
            (Queued, Running),
            (Queued, Stopped),
            (Running, Success),
            (Running, Failed),
            (Running, Stopped),
            (Running, Running),
            (Success, Queued),
            (Failed, Queued),
            (Stopped, Queued),
            (Failed, Success),
            (Success, Failed),
            (Stopped, Success),
        ] {
            assert!(run_can_transition(from, to), "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn runs_cannot_end_before_they_start_or_change_while_finished_but_by_command() {
        use RunState::*;
        for (from, to) in [
            (Queued, Success),
            (Queued, Failed),
            (Queued, Queued),
            (Running, Queued),
            (Success, Running),
            (Failed, Running),
            (Success, Success),
            (Success, Stopped),
            (Failed, Stopped),
        ] {
            assert!(!run_can_transition(from, to), "{from:?} -> {to:?}");
        }
    }
}
