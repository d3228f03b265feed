//! The task-instance state machine: which moves are allowed.

use crate::store::TiState;

/// Whether a task instance may move from `from` to `to`.
///
/// scheduled -> queued (upstreams allow it) | upstream_failed | skipped (trigger rule)
/// queued -> running (a slot is free) | skipped (the run was stopped first)
/// running -> success | failed | up_for_retry (a try ended; zombies too)
/// up_for_retry -> queued (the retry delay passed) | failed (the run was stopped)
pub fn can_transition(from: TiState, to: TiState) -> bool {
    use TiState::*;
    matches!(
        (from, to),
        (Scheduled, Queued | UpstreamFailed | Skipped)
            | (Queued, Running | Skipped)
            | (Running, Success | Failed | UpForRetry)
            | (UpForRetry, Queued | Failed)
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
                can_transition(pair[0], pair[1]),
                "{:?} -> {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn finished_states_are_final() {
        for from in TiState::ALL.iter().copied().filter(|s| s.is_finished()) {
            for to in TiState::ALL {
                assert!(!can_transition(from, *to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_task_cannot_skip_running() {
        assert!(!can_transition(TiState::Scheduled, TiState::Success));
        assert!(!can_transition(TiState::Queued, TiState::Success));
        assert!(!can_transition(TiState::Scheduled, TiState::Running));
    }
}
