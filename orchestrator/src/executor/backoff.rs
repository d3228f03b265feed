//! How long to wait before a retry.

use std::time::Duration;

use crate::dag::RetryPolicy;

/// The wait before try `next_try` (2 for the first retry): `delay`, or with exponential backoff
/// `delay * 2^(retries so far - 1)`, capped by `max_delay` (and at 24 hours whatever the policy).
pub fn retry_delay(policy: &RetryPolicy, next_try: u32) -> Duration {
    const CEILING: Duration = Duration::from_secs(24 * 3600);
    let retry_index = next_try.saturating_sub(2).min(32);
    let delay = if policy.exponential_backoff {
        policy
            .delay
            .saturating_mul(2u32.saturating_pow(retry_index))
    } else {
        policy.delay
    };
    delay.min(policy.max_delay.unwrap_or(CEILING)).min(CEILING)
}

/// Stream tasks are restarted for as long as their run lives: 1 s after a try that had been
/// running for a minute or more (a fresh failure), else doubling with each quick failure,
/// up to a minute.
pub fn stream_restart_delay(try_number: u32, ran_for: Duration) -> Duration {
    const HEALTHY: Duration = Duration::from_secs(60);
    const FIRST: Duration = Duration::from_secs(1);
    if ran_for >= HEALTHY {
        return FIRST;
    }
    FIRST
        .saturating_mul(2u32.saturating_pow(try_number.saturating_sub(1).min(6)))
        .min(HEALTHY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(exponential: bool, max_delay: Option<u64>) -> RetryPolicy {
        RetryPolicy {
            retries: 10,
            delay: Duration::from_secs(5),
            exponential_backoff: exponential,
            max_delay: max_delay.map(Duration::from_secs),
        }
    }

    #[test]
    fn fixed_delay_stays_the_same() {
        let p = policy(false, None);
        assert_eq!(retry_delay(&p, 2), Duration::from_secs(5));
        assert_eq!(retry_delay(&p, 7), Duration::from_secs(5));
    }

    #[test]
    fn exponential_delay_doubles_up_to_the_cap() {
        let p = policy(true, Some(30));
        let waits: Vec<u64> = (2..=6).map(|t| retry_delay(&p, t).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 30, 30]);
    }

    #[test]
    fn huge_try_numbers_do_not_overflow() {
        assert_eq!(
            retry_delay(&policy(true, None), u32::MAX),
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn streams_restart_fast_after_a_healthy_run_and_back_off_when_failing_fast() {
        let quick = Duration::from_secs(2);
        assert_eq!(stream_restart_delay(1, quick), Duration::from_secs(1));
        assert_eq!(stream_restart_delay(2, quick), Duration::from_secs(2));
        assert_eq!(stream_restart_delay(4, quick), Duration::from_secs(8));
        assert_eq!(stream_restart_delay(50, quick), Duration::from_secs(60));
        assert_eq!(
            stream_restart_delay(50, Duration::from_secs(600)),
            Duration::from_secs(1)
        );
    }
}
