//! The `stream` operator: consumes its topics, transforms, folds records into windows or
//! stages them for the sink, and dead-letters what it cannot use; `flush` writes and commits.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rdkafka::{
    Message as _,
    message::{BorrowedMessage, Header, OwnedHeaders},
};

use super::{
    SinkConfig, StreamConfig,
    metrics::{Counters, Rates},
    outbox::Outbox,
    process::{Contribution, Processor, windows},
    sink::{Sink, StageError},
    source::{Partition, Source},
    start_guard::{StartGuard, Verdict},
    window::{Watermark, Windows},
    window_doc::{WindowDoc, document_id},
};
use crate::{
    Operator, TaskContext, TaskError, TaskResult,
    kafka::{self, TopicPolicy, TopicSpec},
};

mod flush;

const METRICS_LOG_EVERY: Duration = Duration::from_secs(10);

/// Consumes until cancelled; flushes and commits on the way out. See [`StreamConfig`].
pub struct StreamOperator {
    config: StreamConfig,
}

impl StreamOperator {
    pub fn new(config: StreamConfig) -> Self {
        Self { config }
    }
}

#[async_trait]
impl Operator for StreamOperator {
    async fn execute(&self, ctx: &TaskContext) -> Result<TaskResult, TaskError> {
        let mut task = StreamTask::start(&self.config, ctx).await?;
        task.run(ctx).await?;
        Ok(task.summary())
    }
}

struct StreamTask<'a> {
    config: &'a StreamConfig,
    processor: Processor,
    windows: Option<Windows>,
    watermark: Watermark,
    source: Source,
    sink: Sink,
    /// Records produced (Kafka sink results, dead letters), acknowledged at each flush.
    outbox: Outbox,
    /// Window documents in memory (open, or loaded to check a replay), by `_id`.
    open: HashMap<String, WindowDoc>,
    dirty: HashSet<String>,
    /// Next offset to commit (the one after the last record handled) per partition, and
    /// whether it moved since the last commit.
    positions: BTreeMap<Partition, i64>,
    /// Partitions whose first record has not yet shown that the broker starts them at the
    /// committed offset.
    guards: HashMap<Partition, StartGuard>,
    uncommitted: bool,
    counters: Counters,
    /// The try's live metrics (flush figures are published as each flush ends).
    metrics: crate::Metrics,
    /// Added to the ids of this share's window documents (empty for a whole task).
    id_suffix: String,
    /// The last flush, while it is written.
    writing: Option<flush::Writing>,
}

impl<'a> StreamTask<'a> {
    async fn start(config: &'a StreamConfig, ctx: &TaskContext) -> Result<Self, TaskError> {
        let brokers = ctx.connections.kafka_brokers(config.brokers.as_deref());
        let outputs: std::collections::BTreeSet<String> = config
            .dead_letter_topic
            .iter()
            .cloned()
            .chain(match &config.sink {
                SinkConfig::Kafka {
                    topic: TopicSpec::Name(name),
                    ..
                } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let policy = TopicPolicy {
            create: true,
            partitions: 1,
        };
        let created = kafka::ensure_topics(&brokers, &outputs, policy).await?;
        if !created.is_empty() {
            ctx.log(&format!("Created topics {}", created.join(", ")));
        }
        let sink = Sink::connect(config, ctx).await?;
        let stored = sink.stored_offsets().await?;
        if let Some(stored) = &stored {
            ctx.log(&format!(
                "Resuming from the offsets stored with the results in {} ({} partitions)",
                sink.describe(),
                stored.len()
            ));
        }
        let mut source = Source::new(config, &brokers, stored, ctx.share)?;
        let starts = source.refresh_assignment().await?;
        let outbox = Outbox::new(kafka::producer(&brokers, Duration::from_secs(30))?);
        let mut task = Self {
            config,
            processor: Processor::new(config),
            windows: config.window.as_ref().map(windows),
            watermark: Watermark::new(lateness_ms(config)),
            source,
            sink,
            outbox,
            open: HashMap::new(),
            dirty: HashSet::new(),
            positions: BTreeMap::new(),
            guards: HashMap::new(),
            uncommitted: false,
            counters: Counters::default(),
            metrics: ctx.metrics.clone(),
            id_suffix: ctx.share.id_suffix(),
            writing: None,
        };
        task.expect_starts(&starts);
        task.resume_watermark().await?;
        ctx.log(&format!(
            "Consuming {} ({} partitions) from {brokers} as group {}",
            config.topics.join(", "),
            task.source.assigned(),
            config.group_id
        ));
        Ok(task)
    }

    async fn run(&mut self, ctx: &TaskContext) -> Result<(), TaskError> {
        let mut flush = tokio::time::interval(self.config.flush_interval.as_duration());
        let mut metrics = tokio::time::interval(Duration::from_secs(1));
        // After a slow flush, ticks resume a period later instead of firing back to back: a
        // second rate published right after the first would read 0 records per second.
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        metrics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rates = Rates::new(&self.counters);
        let mut last_log = Instant::now();
        let consumer = self.source.consumer.clone();
        let mut topics = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => {
                    self.flush().await?;
                    self.flushed().await?;
                    ctx.log(&format!("Stopped after a final flush: {}", self.describe()));
                    return Ok(());
                }
                _ = flush.tick() => self.flush().await?,
                written = flush::written(&mut self.writing) => self.count_flush(written?),
                _ = topics.tick() => {
                    let added = self.source.refresh_assignment().await?;
                    self.expect_starts(&added);
                    if !added.is_empty() {
                        ctx.log(&format!("Reading {} more partitions ({} in all)", added.len(), self.source.assigned()));
                    }
                }
                _ = metrics.tick() => {
                    self.unstall_starts().await?;
                    rates.publish(&self.counters, ctx, self.lag());
                    if last_log.elapsed() >= METRICS_LOG_EVERY {
                        last_log = Instant::now();
                        ctx.log(&format!("Metrics: {}", rates.describe(&ctx.metrics)));
                    }
                }
                message = consumer.recv() => match message {
                    Ok(message) => self.handle(&message).await?,
                    Err(error) => {
                        tracing::warn!(group = %self.config.group_id, %error, "Kafka consumer error");
                    }
                },
            }
        }
    }

    /// Seeds `positions` with the offsets newly assigned partitions start at, and guards
    /// their first records (see [`StartGuard`]).
    fn expect_starts(&mut self, starts: &[(Partition, Option<i64>)]) {
        for (partition, start) in starts {
            if let Some(start) = start {
                self.positions.entry(partition.clone()).or_insert(*start);
                if let Some(guard) = StartGuard::new(*start) {
                    self.guards.insert(partition.clone(), guard);
                }
            }
        }
    }

    /// Whether the record at `offset` is to be processed, for a partition whose start is
    /// still being verified; re-reads from further back when the broker skipped records.
    async fn guard_start(&mut self, partition: &Partition, offset: i64) -> Result<bool, TaskError> {
        let Some(guard) = self.guards.get_mut(partition) else {
            return Ok(true);
        };
        let committed = guard.committed();
        match guard.check(offset) {
            Verdict::Handle => {
                self.guards.remove(partition);
                Ok(true)
            }
            Verdict::Skip => {
                self.counters.skipped_replayed += 1;
                Ok(false)
            }
            Verdict::Rewind(back) => {
                tracing::warn!(topic = %partition.0, partition = partition.1, committed, first = offset, from = back, "The broker started past the committed offset: re-reading from further back");
                self.source.seek(partition, back).await?;
                Ok(false)
            }
        }
    }

    /// Re-reads from further back the guarded partitions that stayed silent with records to
    /// give (see [`StartGuard::check_stalled`]).
    async fn unstall_starts(&mut self) -> Result<(), TaskError> {
        let mut seeks = Vec::new();
        for (partition, guard) in &mut self.guards {
            let high = self.source.high_watermark(partition);
            if let Some(back) = guard.check_stalled(high) {
                tracing::warn!(topic = %partition.0, partition = partition.1, committed = guard.committed(), high, from = back, "The broker gave nothing from inside a batch: re-reading from further back");
                seeks.push((partition.clone(), back));
            }
        }
        for (partition, back) in seeks {
            self.source.seek(&partition, back).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, message: &BorrowedMessage<'_>) -> Result<(), TaskError> {
        let partition = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        // Guards live only until each resumed partition's first record: empty in steady state.
        if !self.guards.is_empty() && !self.guard_start(&partition, offset).await? {
            return Ok(());
        }
        self.counters.records_in += 1;
        // `positions` holds the offset after the last record handled: a gap shows as a jump.
        match self.positions.get(&partition).copied() {
            None => {
                tracing::debug!(topic = %partition.0, partition = partition.1, offset, "Partition starts")
            }
            Some(expected) if expected != offset => {
                tracing::warn!(topic = %partition.0, partition = partition.1, expected, offset, "Partition offsets jump")
            }
            Some(_) => {}
        }
        let outcome = self.processor.transform(message.payload());
        match outcome {
            Err(reason) => self.dead_letter(message, &reason.to_string())?,
            Ok(records) if self.windows.is_some() => {
                match self
                    .processor
                    .contributions(records, message.timestamp().to_millis())
                {
                    Err(reason) => self.dead_letter(message, &reason.to_string())?,
                    Ok(contributions) => {
                        if !self.apply(contributions, &partition, offset).await? {
                            self.counters.late += 1;
                            self.dead_letter(
                                message,
                                "late: every window of the record is closed",
                            )?;
                        }
                    }
                }
            }
            Ok(records) => match self.sink.stage(records, &mut self.outbox) {
                Ok(count) => self.counters.records_out += count as u64,
                Err(StageError::Record(reason)) => {
                    self.dead_letter(message, &reason.to_string())?
                }
                Err(StageError::Sink(error)) => return Err(error),
            },
        }
        self.positions.insert(partition, offset + 1);
        self.uncommitted = true;
        Ok(())
    }

    /// Folds a record's contributions into their windows, skipping windows that already
    /// include its offset; false when every window it falls in is closed (a late record).
    async fn apply(
        &mut self,
        contributions: Vec<Contribution>,
        partition: &Partition,
        offset: i64,
    ) -> Result<bool, TaskError> {
        let Some(windows) = self.windows else {
            return Ok(true);
        };
        let mut touched = HashSet::new();
        let mut any_open = contributions.is_empty();
        for contribution in contributions {
            self.watermark.observe(contribution.event_ms);
            for start in windows.starts(contribution.event_ms) {
                let end = start + windows.size_ms;
                if self.watermark.closes(end) {
                    continue;
                }
                let id = document_id(start, &contribution.group) + &self.id_suffix;
                let window = self.window(&id, start, end, &contribution.group).await?;
                if window.closed {
                    continue;
                }
                any_open = true;
                if window.includes(partition, offset) {
                    self.counters.skipped_replayed += 1;
                    continue;
                }
                window.add(&contribution.inputs);
                touched.insert(id);
            }
        }
        for id in touched {
            if let Some(window) = self.open.get_mut(&id) {
                window.include_up_to(partition, offset);
            }
            self.dirty.insert(id);
        }
        Ok(any_open)
    }

    /// The window document `id`: in memory, else as stored, else new.
    async fn window(
        &mut self,
        id: &str,
        start: i64,
        end: i64,
        group: &BTreeMap<String, serde_json::Value>,
    ) -> Result<&mut WindowDoc, TaskError> {
        if !self.open.contains_key(id) {
            let window = match self.sink.load_window(id).await? {
                Some(document) => {
                    let w = WindowDoc::from_document(&document, group.clone())
                        .map_err(|e| TaskError::Failed(format!("window document {id}: {e}")))?;
                    tracing::debug!(id, offsets = ?w.offsets, "Window loaded");
                    w
                }
                None => WindowDoc {
                    id: id.to_owned(),
                    ..WindowDoc::new(start, end, group.clone())
                },
            };
            self.open.insert(id.to_owned(), window);
        }
        self.open
            .get_mut(id)
            .ok_or_else(|| TaskError::Failed(format!("window {id} vanished")))
    }

    /// Sends the record to the dead-letter topic with the reason and its position; counts it.
    fn dead_letter(
        &mut self,
        message: &BorrowedMessage<'_>,
        reason: &str,
    ) -> Result<(), TaskError> {
        self.counters.dead_lettered += 1;
        let Some(topic) = self.config.dead_letter_topic.clone() else {
            tracing::debug!(
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                reason,
                "Record dropped (no dead_letter_topic)"
            );
            return Ok(());
        };
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "error",
                value: Some(reason),
            })
            .insert(Header {
                key: "source_topic",
                value: Some(message.topic()),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(&offset),
            });
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        self.outbox.send(
            &topic,
            key.as_deref(),
            message.payload().unwrap_or_default(),
            headers,
        )
    }

    /// Consumer lag per partition (high watermark minus the committed offset).
    fn lag(&self) -> BTreeMap<String, i64> {
        self.source.lag()
    }

    fn describe(&self) -> String {
        let c = &self.counters;
        format!(
            "{} in, {} out, {} late, {} dead-lettered, {} replayed records skipped",
            c.records_in, c.records_out, c.late, c.dead_lettered, c.skipped_replayed
        )
    }

    fn summary(&self) -> TaskResult {
        let c = &self.counters;
        let mut result = TaskResult::new();
        result.insert("records_in".into(), c.records_in.into());
        result.insert("records_out".into(), c.records_out.into());
        result.insert("late".into(), c.late.into());
        result.insert("dead_lettered".into(), c.dead_lettered.into());
        result.insert("flushes".into(), c.flushes.into());
        result
    }
}

fn lateness_ms(config: &StreamConfig) -> i64 {
    config
        .window
        .as_ref()
        .map_or(0, |w| w.allowed_lateness.as_duration().as_millis() as i64)
}
