use serde::Deserialize;

use crate::HumanDuration;

/// `sleep` waits, then succeeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepConfig {
    /// How long to wait, e.g. `"2s"`.
    pub duration: HumanDuration,
}
