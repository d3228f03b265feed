//! Running stream tasks for the UI. A sampler reads the executor's live metrics four times a
//! second: a stream that flushed is announced at once (results pages follow flushes), and
//! once a second its rate and lag go into a 10-minute history (the sparklines).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use futures::stream::{self, BoxStream, StreamExt as _};
use tokio::sync::broadcast;
use ui::views::{StreamSample, StreamTick, StreamView};

use crate::{executor::Executor, store::TaskKey};

/// Samples of history kept per stream: 10 minutes, one a second.
const HISTORY: usize = 600;
const POLL: Duration = Duration::from_millis(250);
const POLLS_PER_SAMPLE: u32 = 4;
/// A stream not seen for this long is forgotten.
const FORGET_AFTER: chrono::Duration = chrono::Duration::minutes(10);

#[derive(Default)]
struct History {
    samples: VecDeque<StreamSample>,
    flushes: u64,
    last_seen_ms: i64,
}

#[derive(Clone)]
pub struct StreamSampler {
    histories: Arc<Mutex<HashMap<TaskKey, History>>>,
    ticks: broadcast::Sender<StreamTick>,
}

impl StreamSampler {
    /// Starts sampling `executor`'s streams for the life of the process.
    pub fn start(executor: Executor) -> Self {
        let (ticks, _) = broadcast::channel(64);
        let sampler = Self {
            histories: Arc::default(),
            ticks,
        };
        let running = sampler.clone();
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for n in 0u64.. {
                poll.tick().await;
                running.poll(&executor, n);
            }
        });
        sampler
    }

    /// Poll number `seq`: every [`POLLS_PER_SAMPLE`]th one samples.
    fn poll(&self, executor: &Executor, seq: u64) {
        let sample = seq.is_multiple_of(u64::from(POLLS_PER_SAMPLE));
        let now_ms = Utc::now().timestamp_millis();
        let mut flushed = false;
        let mut flushes = BTreeMap::new();
        {
            let mut histories = self.histories.lock().unwrap_or_else(|e| e.into_inner());
            for (key, metrics) in executor.stream_metrics() {
                let history = histories.entry(key.clone()).or_default();
                let count = metrics.flushes;
                flushed |= count != history.flushes;
                history.flushes = count;
                history.last_seen_ms = now_ms;
                if sample {
                    history.samples.push_back(StreamSample {
                        at_ms: now_ms,
                        in_per_s: metrics.records_in_per_s,
                        out_per_s: metrics.records_out_per_s,
                        lag: metrics.lag_total,
                    });
                    if history.samples.len() > HISTORY {
                        history.samples.pop_front();
                    }
                }
                flushes.insert(name(&key), count);
                // A share of a split task (`stats~1`) counts towards the task's own results
                // page, which merges the shares.
                if let Some((task, _)) = key.task_id.split_once(crate::dag::INSTANCE_MARK) {
                    let whole = TaskKey {
                        task_id: task.to_owned(),
                        ..key.clone()
                    };
                    *flushes.entry(name(&whole)).or_default() += count;
                }
            }
            histories.retain(|_, h| now_ms - h.last_seen_ms < FORGET_AFTER.num_milliseconds());
        }
        if sample || flushed {
            let _ = self.ticks.send(StreamTick {
                seq,
                flushes,
                sampled: sample,
            });
        }
    }

    /// The history of a stream, oldest first.
    pub fn history(&self, key: &TaskKey) -> Vec<StreamSample> {
        let histories = self.histories.lock().unwrap_or_else(|e| e.into_inner());
        histories
            .get(key)
            .map(|h| h.samples.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every tick from now on (a slow reader skips the ones it missed).
    pub fn subscribe(&self) -> BoxStream<'static, StreamTick> {
        let receiver = self.ticks.subscribe();
        stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(tick) => return Some((tick, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }
}

/// `dag/run/task`, as ticks name streams.
pub fn name(key: &TaskKey) -> String {
    format!("{}/{}/{}", key.dag_id, key.run_id, key.task_id)
}

/// A stream's view from its live metrics and history (the caller adds try and config).
pub fn stream_view(
    key: &TaskKey,
    metrics: tasks::StreamMetrics,
    history: Vec<StreamSample>,
) -> StreamView {
    StreamView {
        dag_id: key.dag_id.clone(),
        run_id: key.run_id.clone(),
        task_id: key.task_id.clone(),
        worker: metrics.worker,
        records_in: metrics.records_in,
        records_out: metrics.records_out,
        records_in_per_s: metrics.records_in_per_s,
        records_out_per_s: metrics.records_out_per_s,
        lag_total: metrics.lag_total,
        lag: metrics.lag,
        last_flush_at: metrics.last_flush_at,
        last_flush_docs: metrics.last_flush_docs,
        last_flush_ms: metrics.last_flush_ms,
        late: metrics.late,
        dead_lettered: metrics.dead_lettered,
        flushes: metrics.flushes,
        lag_growing: lag_growing(&history),
        history,
        ..StreamView::default()
    }
}

/// The lag grew over the last minute of samples and never dipped below where it started.
pub fn lag_growing(history: &[StreamSample]) -> bool {
    const MINUTE: usize = 60;
    if history.len() < MINUTE {
        return false;
    }
    let last_minute = &history[history.len() - MINUTE..];
    let start = last_minute[0].lag;
    let end = last_minute[MINUTE - 1].lag;
    end > start && last_minute.iter().all(|s| s.lag >= start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lags(values: impl Iterator<Item = i64>) -> Vec<StreamSample> {
        values
            .map(|lag| StreamSample {
                lag,
                ..StreamSample::default()
            })
            .collect()
    }

    #[test]
    fn ticks_name_streams_dag_run_task() {
        let key = TaskKey {
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: "t".into(),
        };
        assert_eq!(name(&key), "d/r/t");
    }

    #[test]
    fn lag_growing_needs_a_minute_of_growth() {
        assert!(lag_growing(&lags(0..90)));
        assert!(!lag_growing(&lags(0..30)), "less than a minute of samples");
        assert!(!lag_growing(&lags((0..90).rev())), "falling");
        assert!(
            !lag_growing(&lags((0..90).map(|i| if i == 50 { 0 } else { 100 + i }))),
            "dipped"
        );
        assert!(!lag_growing(&lags(std::iter::repeat_n(5, 90))), "flat");
    }
}
