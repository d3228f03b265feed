//! When the scheduler loop last went round, for `/health`.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Utc};

/// The latest moment the scheduler loop went round, shared with the web server.
#[derive(Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    pub fn beat(&self) {
        self.0
            .store(Utc::now().timestamp_micros(), Ordering::Relaxed);
    }

    pub fn latest(&self) -> Option<DateTime<Utc>> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }
}
