//! The backend's stream queries: running streams with their try, last error and sink, their
//! dead letters, and what their sinks hold.

use tasks::{
    Connections, OperatorConfig,
    kafka::{self, TailRecord, TopicSpec},
    stream::{SinkConfig, StreamConfig, StreamResults, read_results},
};
use ui::{
    BackendError, BackendResult, TaskKey as UiTaskKey,
    views::{DeadLetterView, ResultRow, ResultsView, StreamDetail, StreamView},
};

use super::{WebBackend, internal, streams::stream_view, task_key};
use crate::{
    dag::TaskSpec,
    store::{TaskKey, redact_urls},
};

/// Dead letters read per partition, and shown at most.
const DEAD_LETTERS_PER_PARTITION: i64 = 20;
const MAX_DEAD_LETTERS: usize = 50;
/// A stream restarted this recently is marked.
const RESTARTING_FOR: chrono::Duration = chrono::Duration::minutes(2);

/// The stream config of a task, as written (a templated value fails to parse: `None`).
fn stream_config(spec: &TaskSpec) -> Option<StreamConfig> {
    match serde_json::from_value::<OperatorConfig>(spec.config.clone()) {
        Ok(OperatorConfig::Stream(config)) => Some(config),
        _ => None,
    }
}

fn sink_text(sink: &SinkConfig) -> String {
    match sink {
        SinkConfig::Mongodb {
            database,
            collection,
            ..
        } => format!("mongodb {database}.{collection}"),
        SinkConfig::Postgres(sql) => format!("postgres table {}", sql.table),
        SinkConfig::Mysql(sql) => format!("mysql table {}", sql.table),
        SinkConfig::Kafka {
            topic: TopicSpec::Name(topic),
            ..
        } => format!("kafka topic {topic}"),
        SinkConfig::Kafka {
            topic: TopicSpec::Expression(filter),
            ..
        } => format!("kafka topics {}", filter.source()),
    }
}

/// A JSON value as a table cell: strings as they are, numbers to 3 decimals at most.
fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => {
                let text = format!("{f:.3}");
                text.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn dead_letter(record: TailRecord) -> DeadLetterView {
    let header = |name: &str| record.headers.get(name).cloned().unwrap_or_default();
    DeadLetterView {
        at: record
            .timestamp_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339()),
        partition: record.partition,
        offset: record.offset,
        key: record.key.clone(),
        error: header("error"),
        source: format!(
            "{}/{}@{}",
            header("source_topic"),
            header("source_partition"),
            header("source_offset")
        ),
        payload: record.payload,
    }
}

impl WebBackend {
    fn connections(&self) -> Connections {
        self.executor
            .as_ref()
            .map(|e| e.connections().clone())
            .unwrap_or_default()
    }

    fn spec_of(&self, dag_id: &str, task_id: &str) -> Option<TaskSpec> {
        self.bag().get(dag_id)?.task(task_id).cloned()
    }

    /// Every stream task running in this process.
    pub(super) async fn stream_views(&self) -> BackendResult<Vec<StreamView>> {
        let (Some(executor), Some(sampler)) = (&self.executor, &self.streams) else {
            return Ok(Vec::new());
        };
        let mut views = Vec::new();
        for (key, metrics) in executor.stream_metrics() {
            let history = sampler.history(&key);
            let mut view = stream_view(&key, metrics, history);
            self.complete(&mut view, &key).await?;
            views.push(view);
        }
        views.sort_by(|a, b| {
            (&a.dag_id, &a.task_id, &a.run_id).cmp(&(&b.dag_id, &b.task_id, &b.run_id))
        });
        Ok(views)
    }

    /// Adds the try, the last error and the sink to a view made from live metrics.
    async fn complete(&self, view: &mut StreamView, key: &TaskKey) -> BackendResult<()> {
        let ti = self
            .store
            .task_instance(&key.dag_id, &key.run_id, &key.task_id)
            .await
            .map_err(internal)?;
        if let Some(ti) = ti {
            view.try_number = ti.try_number;
            view.restarts = ti.try_number.saturating_sub(1);
            view.restarting = ti.try_number > 1
                && ti
                    .start
                    .is_some_and(|start| chrono::Utc::now() - start < RESTARTING_FOR);
            // Why the last try failed (kept on the row until a try succeeds).
            view.last_error = ti.error.map(|error| redact_urls(&error).into_owned());
        }
        if let Some(config) = self
            .spec_of(&key.dag_id, &key.task_id)
            .as_ref()
            .and_then(stream_config)
        {
            view.dead_letter_topic = config.dead_letter_topic.clone();
            view.sink = sink_text(&config.sink);
        }
        Ok(())
    }

    pub(super) async fn stream_detail(&self, task: &UiTaskKey) -> BackendResult<StreamDetail> {
        let key = task_key(task);
        let stream = self
            .stream_views()
            .await?
            .into_iter()
            .find(|s| s.dag_id == key.dag_id && s.run_id == key.run_id && s.task_id == key.task_id)
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "no stream {} running in run {} of {} in this process",
                    key.task_id, key.run_id, key.dag_id
                ))
            })?;
        let mut detail = StreamDetail {
            stream,
            ..StreamDetail::default()
        };
        let config = self
            .spec_of(&key.dag_id, &key.task_id)
            .as_ref()
            .and_then(stream_config);
        if let (Some(topic), Some(config)) = (&detail.stream.dead_letter_topic, config) {
            let brokers = self.connections().kafka_brokers(config.brokers.as_deref());
            match kafka::tail(&brokers, topic, DEAD_LETTERS_PER_PARTITION).await {
                Ok(records) => {
                    detail.dead_letters = records
                        .into_iter()
                        .take(MAX_DEAD_LETTERS)
                        .map(dead_letter)
                        .collect();
                }
                Err(error) => {
                    detail.dead_letters_error = Some(redact_urls(&error.to_string()).into_owned());
                }
            }
        }
        Ok(detail)
    }

    pub(super) async fn stream_results(
        &self,
        task: &UiTaskKey,
        window: Option<&str>,
    ) -> BackendResult<ResultsView> {
        let key = task_key(task);
        let spec = self.spec_of(&key.dag_id, &key.task_id).ok_or_else(|| {
            BackendError::NotFound(format!("no task {} in DAG {}", key.task_id, key.dag_id))
        })?;
        let config = stream_config(&spec).ok_or_else(|| {
            BackendError::NotFound(format!(
                "task {} is not a stream task with a plain (untemplated) config",
                key.task_id
            ))
        })?;
        let mut view = ResultsView {
            dag_id: key.dag_id.clone(),
            run_id: key.run_id.clone(),
            task_id: key.task_id.clone(),
            sink: sink_text(&config.sink),
            kind: if config.window.is_some() {
                "windows"
            } else {
                "records"
            }
            .into(),
            // Every share's flushes: the results change when any of them flushes.
            flushes: spec
                .instance_ids()
                .into_iter()
                .filter_map(|task_id| {
                    let instance = TaskKey {
                        task_id,
                        ..key.clone()
                    };
                    self.executor
                        .as_ref()
                        .and_then(|e| e.stream_metrics_of(&instance))
                })
                .map(|m| m.flushes)
                .sum(),
            shares: spec.parallelism.max(1),
            ..ResultsView::default()
        };
        match read_results(&config, &self.connections(), window).await {
            Ok(StreamResults::Windows(windows)) => {
                view.windows = windows.windows;
                view.selected = windows.selected;
                view.window_end = windows.window_end;
                view.group_by = windows.group_by;
                view.aggregates = windows.aggregates;
                view.measure = windows.primary;
                view.rows = windows
                    .rows
                    .into_iter()
                    .map(|row| {
                        let group: Vec<String> = row.group.iter().map(cell).collect();
                        ResultRow {
                            label: group.join(" · "),
                            group,
                            values: row.values.iter().map(cell).collect(),
                            closed: row.closed,
                        }
                    })
                    .collect();
            }
            Ok(StreamResults::Records(records)) => {
                view.columns = records.columns;
                view.records = records
                    .rows
                    .iter()
                    .map(|row| row.iter().map(cell).collect())
                    .collect();
            }
            Err(error) => view.error = Some(redact_urls(&error.to_string()).into_owned()),
        }
        Ok(view)
    }

    pub(super) fn ticks(&self) -> futures::stream::BoxStream<'static, ui::views::StreamTick> {
        match &self.streams {
            Some(sampler) => sampler.subscribe(),
            None => futures::StreamExt::boxed(futures::stream::empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_well() {
        assert_eq!(cell(&serde_json::json!("France")), "France");
        assert_eq!(cell(&serde_json::json!(12)), "12");
        assert_eq!(cell(&serde_json::json!(40.5)), "40.5");
        assert_eq!(cell(&serde_json::json!(1.0 / 3.0)), "0.333");
        assert_eq!(cell(&serde_json::json!(null)), "");
    }
}
