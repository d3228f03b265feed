//! The live metrics of a stream task: counters, and the per-second rates published from them.

use std::{collections::BTreeMap, time::Instant};

use crate::TaskContext;

/// Counters behind the live metrics and the result.
#[derive(Default)]
pub(super) struct Counters {
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
pub(super) struct Rates {
    at: Instant,
    records_in: u64,
    records_out: u64,
}

impl Rates {
    pub(super) fn new(counters: &Counters) -> Self {
        Self {
            at: Instant::now(),
            records_in: counters.records_in,
            records_out: counters.records_out,
        }
    }

    pub(super) fn publish(&mut self, c: &Counters, ctx: &TaskContext, lag: BTreeMap<String, i64>) {
        let seconds = self.at.elapsed().as_secs_f64().max(1e-3);
        let per_second = |now: u64, then: u64| (now.saturating_sub(then) as f64 / seconds).round();
        ctx.metrics.update_stream(|m| {
            m.records_in = c.records_in;
            m.records_out = c.records_out;
            m.records_in_per_s = per_second(c.records_in, self.records_in);
            m.records_out_per_s = per_second(c.records_out, self.records_out);
            m.late = c.late;
            m.dead_lettered = c.dead_lettered;
            m.replayed_skipped = c.skipped_replayed;
            m.lag_total = lag.values().sum();
            m.lag = lag;
            flush_figures(c, m);
        });
        *self = Self::new(c);
    }

    pub(super) fn describe(&self, metrics: &crate::Metrics) -> String {
        let m = metrics.stream().unwrap_or_default();
        format!(
            "in {}/s, out {}/s, lag {}, late {}, dead-lettered {}, replayed skipped {}, last flush {} written in {} ms",
            m.records_in_per_s,
            m.records_out_per_s,
            m.lag_total,
            m.late,
            m.dead_lettered,
            m.replayed_skipped,
            m.last_flush_docs,
            m.last_flush_ms
        )
    }
}

/// The figures of the last flush: published as soon as a flush ends, so a results page can
/// follow flushes within a fraction of a second.
pub(super) fn publish_flush(c: &Counters, metrics: &crate::Metrics) {
    metrics.update_stream(|m| flush_figures(c, m));
}

fn flush_figures(c: &Counters, m: &mut crate::StreamMetrics) {
    m.flushes = c.flushes;
    m.last_flush_at = c.last_flush_at.clone();
    m.last_flush_docs = c.last_flush_docs as u64;
    m.last_flush_ms = c.last_flush_ms;
}
