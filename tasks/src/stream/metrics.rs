//! The live metrics of a stream task: counters, and the per-second rates published from them.

use std::{collections::BTreeMap, time::Instant};

use crate::TaskContext;

/// Counters behind the live metrics and the result.
#[derive(Default)]
pub struct Counters {
    pub records_in: u64,
    pub records_out: u64,
    pub skipped_replayed: u64,
    pub late: u64,
    pub dead_lettered: u64,
    pub flushes: u64,
    pub last_flush_docs: usize,
    pub last_flush_ms: u64,
    pub last_flush_at: Option<String>,
}

/// Per-second rates from counter deltas, published with the rest of the live metrics.
pub struct Rates {
    at: Instant,
    records_in: u64,
    records_out: u64,
}

impl Rates {
    pub fn new(counters: &Counters) -> Self {
        Self {
            at: Instant::now(),
            records_in: counters.records_in,
            records_out: counters.records_out,
        }
    }

    pub fn publish(&mut self, c: &Counters, ctx: &TaskContext, lag: BTreeMap<String, i64>) {
        let seconds = self.at.elapsed().as_secs_f64().max(1e-3);
        let m = &ctx.metrics;
        m.set("records_in", c.records_in);
        m.set("records_out", c.records_out);
        m.set(
            "records_in_per_s",
            ((c.records_in - self.records_in) as f64 / seconds).round(),
        );
        m.set(
            "records_out_per_s",
            ((c.records_out - self.records_out) as f64 / seconds).round(),
        );
        m.set("late", c.late);
        m.set("dead_lettered", c.dead_lettered);
        m.set("replayed_skipped", c.skipped_replayed);
        publish_flush(c, m);
        m.set("lag_total", lag.values().sum::<i64>());
        m.set("lag", serde_json::to_value(lag).unwrap_or_default());
        *self = Self::new(c);
    }

    pub fn describe(&self, metrics: &crate::Metrics) -> String {
        let m = metrics.snapshot();
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        format!(
            "in {}/s, out {}/s, lag {}, late {}, dead-lettered {}, replayed skipped {}, last flush {} written in {} ms",
            get("records_in_per_s"),
            get("records_out_per_s"),
            get("lag_total"),
            get("late"),
            get("dead_lettered"),
            get("replayed_skipped"),
            get("last_flush_docs"),
            get("last_flush_ms")
        )
    }
}

/// The figures of the last flush: published as soon as a flush ends, so a results page can
/// follow flushes within a fraction of a second.
pub fn publish_flush(c: &Counters, m: &crate::Metrics) {
    m.set("flushes", c.flushes);
    m.set("last_flush_at", c.last_flush_at.clone());
    m.set("last_flush_docs", c.last_flush_docs);
    m.set("last_flush_ms", c.last_flush_ms);
}
