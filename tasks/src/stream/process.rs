//! One source record through the task's expressions: parse, transform, then (with windows)
//! event time, group and aggregate inputs. Any failure is a reason for the dead-letter topic.

use std::collections::BTreeMap;

use super::{AggregateSpec, StreamConfig, window::Windows, window_doc::Input};
use crate::{
    RecordError,
    fields::Fields,
    jq::{self, JqFilter, Val},
};

/// What a record contributes to one window of one group.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Contribution {
    pub event_ms: i64,
    pub group: BTreeMap<String, serde_json::Value>,
    pub inputs: BTreeMap<String, Input>,
}

/// The compiled expressions of a stream task.
pub(super) struct Processor {
    /// The parts of a record the expressions read, when that is not the whole record.
    fields: Option<Fields>,
    transforms: Vec<JqFilter>,
    window: Option<WindowExprs>,
}

struct WindowExprs {
    event_time: Option<JqFilter>,
    group_by: BTreeMap<String, JqFilter>,
    aggregates: BTreeMap<String, AggregateSpec>,
}

impl Processor {
    pub(super) fn new(config: &StreamConfig) -> Self {
        let fields = match &config.window {
            Some(w) if config.transform.is_empty() => Fields::read_by(
                w.event_time
                    .iter()
                    .chain(w.group_by.values())
                    .chain(w.aggregates.values().filter_map(AggregateSpec::filter)),
            ),
            _ => None,
        };
        Self {
            fields,
            transforms: config.transform.clone(),
            window: config.window.as_ref().map(|w| WindowExprs {
                event_time: w.event_time.clone(),
                group_by: w.group_by.clone(),
                aggregates: w.aggregates.clone(),
            }),
        }
    }

    /// Parses and transforms a payload into zero or more records.
    pub(super) fn transform(&self, payload: Option<&[u8]>) -> Result<Vec<Val>, RecordError> {
        let payload = payload.ok_or(RecordError::NoValue)?;
        let record = match &self.fields {
            Some(fields) => fields.parse(payload)?,
            None => jq::parse_json(payload)?,
        };
        let mut records = vec![record];
        for filter in &self.transforms {
            let mut next = Vec::new();
            for record in records {
                filter.for_each(record, |out| next.push(out))?;
            }
            records = next;
        }
        Ok(records)
    }

    /// What each transformed record brings to the windows; `kafka_ms` is the record's Kafka
    /// timestamp, the event time when no expression is set.
    pub(super) fn contributions(
        &self,
        records: Vec<Val>,
        kafka_ms: Option<i64>,
    ) -> Result<Vec<Contribution>, RecordError> {
        let Some(window) = &self.window else {
            return Ok(Vec::new());
        };
        records
            .into_iter()
            .map(|record| window.contribution(record, kafka_ms))
            .collect()
    }
}

impl WindowExprs {
    fn contribution(
        &self,
        record: Val,
        kafka_ms: Option<i64>,
    ) -> Result<Contribution, RecordError> {
        let event_ms = match &self.event_time {
            Some(filter) => event_time_ms(&filter.one(record.clone())?).map_err(|reason| {
                RecordError::EventTime {
                    code: filter.source().to_owned(),
                    reason,
                }
            })?,
            None => kafka_ms.ok_or(RecordError::NoTimestamp)?,
        };
        let mut group = BTreeMap::new();
        for (name, filter) in &self.group_by {
            group.insert(name.clone(), jq::to_json(&filter.one(record.clone())?));
        }
        let mut inputs = BTreeMap::new();
        for (name, spec) in &self.aggregates {
            let input = input(spec, &record).map_err(|reason| RecordError::Aggregate {
                name: name.clone(),
                reason,
            })?;
            inputs.insert(name.clone(), input);
        }
        Ok(Contribution {
            event_ms,
            group,
            inputs,
        })
    }
}

/// What `record` brings to the aggregate `spec`; the error is the reason, for
/// [`RecordError::Aggregate`].
fn input(spec: &AggregateSpec, record: &Val) -> Result<Input, String> {
    let one = |filter: &JqFilter| filter.one(record.clone()).map_err(|e| e.to_string());
    let number = |filter: &JqFilter| -> Result<Input, String> {
        match one(filter)? {
            Val::Num(n) => jq::number_to_f64(&n).map(Input::Number),
            other => Err(format!("{:?} gave {other}, not a number", filter.source())),
        }
    };
    match spec {
        AggregateSpec::Count => Ok(Input::None),
        AggregateSpec::Sum(f)
        | AggregateSpec::Min(f)
        | AggregateSpec::Max(f)
        | AggregateSpec::Avg(f) => number(f),
        AggregateSpec::CountDistinct(f) => match one(f)? {
            Val::Null => Err(format!("{:?} gave null", f.source())),
            value => Ok(Input::Text(jq::as_text(&value))),
        },
    }
}

/// RFC 3339 text or seconds since the epoch, as milliseconds.
fn event_time_ms(value: &Val) -> Result<i64, String> {
    match value {
        Val::TStr(text) => {
            let text = String::from_utf8_lossy(text);
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
        }
        Val::Num(n) => jq::number_to_f64(n).map(|seconds| (seconds * 1000.0).round() as i64),
        other => Err(format!("gave {other}, not a time")),
    }
}

/// The window geometry of a config.
pub(super) fn windows(config: &super::WindowConfig) -> Windows {
    let size_ms = config.size.as_duration().as_millis() as i64;
    Windows {
        size_ms,
        slide_ms: config
            .slide
            .map_or(size_ms, |s| s.as_duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(window: serde_json::Value) -> StreamConfig {
        serde_json::from_value(serde_json::json!({
            "topics": ["users"],
            "group_id": "g",
            "transform": ["select(.kind != \"skip\")"],
            "window": window,
            "sink": {"kind": "mongodb", "database": "d", "collection": "c"},
        }))
        .unwrap()
    }

    fn window() -> serde_json::Value {
        serde_json::json!({
            "size": "1m",
            "event_time": ".at",
            "group_by": {"country": ".country"},
            "aggregates": {"users": "count", "avg_age": {"avg": ".age"}},
        })
    }

    #[test]
    fn a_record_becomes_a_contribution() {
        let processor = Processor::new(&config(window()));
        let records = processor
            .transform(Some(
                br#"{"at": "1970-01-01T00:01:30Z", "country": "France", "age": 30}"#,
            ))
            .unwrap();
        let contributions = processor.contributions(records, None).unwrap();
        assert_eq!(contributions.len(), 1);
        assert_eq!(contributions[0].event_ms, 90_000);
        assert_eq!(contributions[0].group["country"], "France");
        assert_eq!(contributions[0].inputs["avg_age"], Input::Number(30.0));
        let dropped = processor.transform(Some(br#"{"kind": "skip"}"#)).unwrap();
        assert!(dropped.is_empty());
    }

    #[test]
    fn missing_fields_and_bad_json_are_reasons() {
        let processor = Processor::new(&config(window()));
        let error = processor.transform(Some(b"{not json")).unwrap_err();
        assert!(
            matches!(error, RecordError::Jq(jq::JqError::Json(_))),
            "{error}"
        );
        assert!(error.to_string().starts_with("invalid JSON"), "{error}");
        let records = processor
            .transform(Some(
                br#"{"at": "1970-01-01T00:00:00Z", "country": "France"}"#,
            ))
            .unwrap();
        let error = processor.contributions(records, None).unwrap_err();
        assert!(
            matches!(&error, RecordError::Aggregate { name, reason } if name == "avg_age" && reason.contains("not a number")),
            "{error}"
        );
        let records = processor
            .transform(Some(br#"{"at": "yesterday", "country": "x", "age": 1}"#))
            .unwrap();
        let error = processor.contributions(records, None).unwrap_err();
        assert!(error.to_string().contains("RFC 3339"), "{error}");
    }

    #[test]
    fn kafka_timestamps_and_epoch_seconds_are_event_times() {
        let mut w = window();
        w.as_object_mut().unwrap().remove("event_time");
        let processor = Processor::new(&config(w));
        let records = processor
            .transform(Some(br#"{"country": "x", "age": 1}"#))
            .unwrap();
        assert_eq!(
            processor.contributions(records, Some(1234)).unwrap()[0].event_ms,
            1234
        );
        assert_eq!(
            event_time_ms(&jq::from_json(&serde_json::json!(1.5))).unwrap(),
            1500
        );
    }
}
