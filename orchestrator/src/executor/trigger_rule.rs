//! Whether a waiting task may start, given its upstreams' states (Airflow's trigger rules).

use crate::{
    dag::{TaskSpec, TriggerRule},
    store::TiState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not yet: some upstream is not done.
    Wait,
    Run,
    Skip,
    UpstreamFailed,
}

/// What `spec`'s trigger rule decides on the states of its upstreams (`state_of` an
/// upstream's id; one without a state is left out).
pub fn decide_for(spec: &TaskSpec, state_of: impl Fn(&str) -> Option<TiState>) -> Decision {
    let upstream: Vec<TiState> = spec.upstream.iter().filter_map(|id| state_of(id)).collect();
    decide(spec.trigger_rule, &upstream)
}

fn decide(rule: TriggerRule, upstream: &[TiState]) -> Decision {
    use TiState::*;
    let count = |wanted: &[TiState]| upstream.iter().filter(|s| wanted.contains(s)).count();
    let all_done = upstream.iter().all(|s| s.is_finished());
    let failed = count(&[Failed, UpstreamFailed]);
    let succeeded = count(&[Success]);
    let skipped = count(&[Skipped]);
    match rule {
        TriggerRule::AllSuccess if failed > 0 => Decision::UpstreamFailed,
        TriggerRule::AllSuccess if !all_done => Decision::Wait,
        TriggerRule::AllSuccess if skipped > 0 => Decision::Skip,
        TriggerRule::AllSuccess => Decision::Run,
        TriggerRule::AllDone if all_done => Decision::Run,
        TriggerRule::OneSuccess if succeeded > 0 || upstream.is_empty() => Decision::Run,
        TriggerRule::OneSuccess if all_done && failed == upstream.len() => Decision::UpstreamFailed,
        TriggerRule::OneSuccess if all_done => Decision::Skip,
        TriggerRule::OneFailed if failed > 0 => Decision::Run,
        TriggerRule::OneFailed if all_done => Decision::Skip,
        TriggerRule::NoneFailed if failed > 0 => Decision::UpstreamFailed,
        TriggerRule::NoneFailed if all_done => Decision::Run,
        _ => Decision::Wait,
    }
}

#[cfg(test)]
mod tests {
    use TiState::*;

    use super::*;

    #[test]
    fn all_success() {
        assert_eq!(decide(TriggerRule::AllSuccess, &[]), Decision::Run);
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Success, Running]),
            Decision::Wait
        );
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Success, Success]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Running, Failed]),
            Decision::UpstreamFailed
        );
        assert_eq!(
            decide(TriggerRule::AllSuccess, &[Success, Skipped]),
            Decision::Skip
        );
    }

    #[test]
    fn all_done() {
        assert_eq!(
            decide(TriggerRule::AllDone, &[Success, UpForRetry]),
            Decision::Wait
        );
        assert_eq!(
            decide(TriggerRule::AllDone, &[Failed, UpstreamFailed, Skipped]),
            Decision::Run
        );
    }

    #[test]
    fn one_success() {
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Success, Running]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Failed, Running]),
            Decision::Wait
        );
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Failed, Failed]),
            Decision::UpstreamFailed
        );
        assert_eq!(
            decide(TriggerRule::OneSuccess, &[Failed, Skipped]),
            Decision::Skip
        );
    }

    #[test]
    fn one_failed() {
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Failed, Running]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Success, Running]),
            Decision::Wait
        );
        assert_eq!(
            decide(TriggerRule::OneFailed, &[Success, Success]),
            Decision::Skip
        );
    }

    #[test]
    fn none_failed() {
        assert_eq!(
            decide(TriggerRule::NoneFailed, &[Success, Skipped]),
            Decision::Run
        );
        assert_eq!(
            decide(TriggerRule::NoneFailed, &[Success, Queued]),
            Decision::Wait
        );
        assert_eq!(
            decide(TriggerRule::NoneFailed, &[UpstreamFailed, Queued]),
            Decision::UpstreamFailed
        );
    }
}
