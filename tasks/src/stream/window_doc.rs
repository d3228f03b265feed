//! Window documents: absolute accumulator values plus, per source partition, the offset up
//! to which a document includes records — what makes replays after a crash harmless.

use std::collections::{BTreeMap, BTreeSet};

use mongodb::bson::{self, Bson, Document, doc};
use serde::{Deserialize, Serialize};

use super::{AggregateSpec, source::Partition};

/// A window document that cannot be written, or a stored one that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowDocError {
    #[error("window {id}: cannot encode {what}: {reason}")]
    Encode {
        id: String,
        what: String,
        reason: String,
    },
    #[error("stored window document: {field}: {reason}")]
    Decode { field: String, reason: String },
}

/// `value` as BSON; the error names the window and what was encoded.
fn encode<T: Serialize + ?Sized>(id: &str, what: &str, value: &T) -> Result<Bson, WindowDocError> {
    bson::to_bson(value).map_err(|e| WindowDocError::Encode {
        id: id.to_owned(),
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

fn decode(field: impl Into<String>) -> impl FnOnce(String) -> WindowDocError {
    move |reason| WindowDocError::Decode {
        field: field.into(),
        reason,
    }
}

/// What one record brings to an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Input {
    /// `count` needs nothing.
    None,
    Number(f64),
    /// `count_distinct` counts distinct texts.
    Text(String),
}

/// The running state of one aggregate in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Accumulator {
    pub n: i64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default)]
    pub distinct: BTreeSet<String>,
}

impl Accumulator {
    fn add(&mut self, input: &Input) {
        self.n += 1;
        match input {
            Input::None => {}
            Input::Number(x) => {
                self.sum += x;
                self.min = Some(self.min.map_or(*x, |m| m.min(*x)));
                self.max = Some(self.max.map_or(*x, |m| m.max(*x)));
            }
            Input::Text(text) => {
                self.distinct.insert(text.clone());
            }
        }
    }

    /// The value users read.
    /// Folds in what another share of the task accumulated for the same window and group.
    fn merge(&mut self, other: &Accumulator) {
        self.n += other.n;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.distinct.extend(other.distinct.iter().cloned());
    }

    fn value(&self, spec: &AggregateSpec) -> Bson {
        let float = |x: Option<f64>| x.map_or(Bson::Null, Bson::Double);
        match spec {
            AggregateSpec::Count => Bson::Int64(self.n),
            AggregateSpec::Sum(_) => Bson::Double(self.sum),
            AggregateSpec::Min(_) => float(self.min),
            AggregateSpec::Max(_) => float(self.max),
            AggregateSpec::Avg(_) => float((self.n > 0).then(|| self.sum / self.n as f64)),
            AggregateSpec::CountDistinct(_) => Bson::Int64(self.distinct.len() as i64),
        }
    }
}

/// One output document: a window of one group.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WindowDoc {
    pub id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub group: BTreeMap<String, serde_json::Value>,
    pub accumulators: BTreeMap<String, Accumulator>,
    /// Per source partition, the next offset not yet included.
    pub offsets: BTreeMap<Partition, i64>,
    pub closed: bool,
}

#[derive(Serialize, Deserialize)]
struct OffsetEntry {
    topic: String,
    partition: i32,
    next: i64,
}

impl WindowDoc {
    pub(super) fn new(
        start_ms: i64,
        end_ms: i64,
        group: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        Self {
            id: document_id(start_ms, &group),
            start_ms,
            end_ms,
            group,
            accumulators: BTreeMap::new(),
            offsets: BTreeMap::new(),
            closed: false,
        }
    }

    /// Whether the record at `offset` of `partition` is already counted here.
    pub(super) fn includes(&self, partition: &Partition, offset: i64) -> bool {
        self.offsets
            .get(partition)
            .is_some_and(|next| offset < *next)
    }

    /// Adds one record's inputs (by aggregate name).
    pub(super) fn add(&mut self, inputs: &BTreeMap<String, Input>) {
        for (name, input) in inputs {
            self.accumulators
                .entry(name.clone())
                .or_default()
                .add(input);
        }
    }

    /// Marks every record of `partition` up to `offset` as included.
    pub(super) fn include_up_to(&mut self, partition: &Partition, offset: i64) {
        match self.offsets.get_mut(partition) {
            Some(next) => *next = offset + 1,
            None => {
                self.offsets.insert(partition.clone(), offset + 1);
            }
        }
    }

    pub(super) fn to_document(
        &self,
        specs: &BTreeMap<String, AggregateSpec>,
    ) -> Result<Document, WindowDocError> {
        let mut document = doc! {
            "_id": &self.id,
            "window_start": iso(self.start_ms),
            "window_end": iso(self.end_ms),
        };
        for (name, value) in &self.group {
            document.insert(name, encode(&self.id, name, value)?);
        }
        for (name, spec) in specs {
            let value = self
                .accumulators
                .get(name)
                .map_or_else(|| Accumulator::default().value(spec), |a| a.value(spec));
            document.insert(name, value);
        }
        let offsets: Vec<OffsetEntry> = self
            .offsets
            .iter()
            .map(|((topic, partition), next)| OffsetEntry {
                topic: topic.clone(),
                partition: *partition,
                next: *next,
            })
            .collect();
        document.insert("closed", self.closed);
        document.insert(
            "_state",
            doc! {
                "start_ms": self.start_ms,
                "end_ms": self.end_ms,
                "accumulators": encode(&self.id, "accumulators", &self.accumulators)?,
                "offsets": encode(&self.id, "offsets", &offsets)?,
            },
        );
        Ok(document)
    }

    /// Reads back a document written by [`WindowDoc::to_document`].
    pub(super) fn from_document(
        document: &Document,
        group: BTreeMap<String, serde_json::Value>,
    ) -> Result<Self, WindowDocError> {
        let state = document
            .get_document("_state")
            .map_err(|e| decode("_state")(e.to_string()))?;
        let number = |key: &str| -> Result<i64, WindowDocError> {
            match state.get(key) {
                Some(Bson::Int64(n)) => Ok(*n),
                Some(Bson::Int32(n)) => Ok(i64::from(*n)),
                Some(Bson::Double(n)) => Ok(*n as i64),
                other => Err(decode(format!("_state.{key}"))(format!("{other:?}"))),
            }
        };
        let accumulators =
            bson::from_bson(state.get("accumulators").cloned().unwrap_or(Bson::Null))
                .map_err(|e| decode("_state.accumulators")(e.to_string()))?;
        let offsets: Vec<OffsetEntry> =
            bson::from_bson(state.get("offsets").cloned().unwrap_or(Bson::Array(vec![])))
                .map_err(|e| decode("_state.offsets")(e.to_string()))?;
        Ok(Self {
            id: document
                .get_str("_id")
                .map_err(|e| decode("_id")(e.to_string()))?
                .to_owned(),
            start_ms: number("start_ms")?,
            end_ms: number("end_ms")?,
            group,
            accumulators,
            offsets: offsets
                .into_iter()
                .map(|o| ((o.topic, o.partition), o.next))
                .collect(),
            closed: document.get_bool("closed").unwrap_or(false),
        })
    }
}

/// `<group values as JSON>@<window start>`: the same window and group always map here.
/// (Group first: nx-27017 0.8.1 mistakes strings that start with a timestamp for dates and
/// then fails to match them in upserts.)
pub(super) fn document_id(start_ms: i64, group: &BTreeMap<String, serde_json::Value>) -> String {
    let values: Vec<&serde_json::Value> = group.values().collect();
    format!(
        "{}@{}",
        serde_json::to_string(&values).unwrap_or_default(),
        iso(start_ms)
    )
}

/// A window document's id without the share suffix (`~0of2`) a task of several shares adds.
pub fn without_share(id: &str) -> &str {
    match id.rsplit_once('~') {
        Some((base, share))
            if share
                .split_once("of")
                .is_some_and(|(i, n)| i.parse::<u32>().is_ok() && n.parse::<u32>().is_ok()) =>
        {
            base
        }
        _ => id,
    }
}

/// The documents of a task's shares (`parallelism` > 1) merged into one per window and
/// group: their accumulators added (count and sum summed, min of mins, max of maxes, distinct
/// values united), the aggregates derived again, closed once every share closed it. Each
/// share writes only its own documents, so the merge is what the task as a whole holds; a
/// whole task's documents pass through as they are.
pub fn merge_shares(
    documents: Vec<Document>,
    specs: &BTreeMap<String, AggregateSpec>,
) -> Result<Vec<Document>, WindowDocError> {
    let mut merged: BTreeMap<String, (Document, BTreeMap<String, Accumulator>, usize)> =
        BTreeMap::new();
    for document in documents {
        let id = document
            .get_str("_id")
            .map_err(|e| decode("_id")(e.to_string()))?;
        let base = without_share(id).to_owned();
        let accumulators: BTreeMap<String, Accumulator> = document
            .get_document("_state")
            .ok()
            .and_then(|state| state.get("accumulators").cloned())
            .map(bson::from_bson)
            .transpose()
            .map_err(|e| decode("_state.accumulators")(e.to_string()))?
            .unwrap_or_default();
        match merged.get_mut(&base) {
            None => {
                merged.insert(base, (document, accumulators, 1));
            }
            Some((first, sum, shares)) => {
                for (name, accumulator) in &accumulators {
                    sum.entry(name.clone()).or_default().merge(accumulator);
                }
                let closed = first.get_bool("closed").unwrap_or(false)
                    && document.get_bool("closed").unwrap_or(false);
                first.insert("closed", closed);
                *shares += 1;
            }
        }
    }
    Ok(merged
        .into_iter()
        .map(|(base, (mut document, accumulators, shares))| {
            if shares > 1 {
                document.insert("_id", base);
                for (name, spec) in specs {
                    let value = accumulators
                        .get(name)
                        .map_or_else(|| Accumulator::default().value(spec), |a| a.value(spec));
                    document.insert(name, value);
                }
                document.remove("_state");
            }
            document
        })
        .collect())
}

/// RFC 3339 in UTC with milliseconds.
pub(super) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jq::JqFilter;

    fn specs() -> BTreeMap<String, AggregateSpec> {
        let f = |s: &str| JqFilter::compile(s).unwrap();
        BTreeMap::from([
            ("users".to_string(), AggregateSpec::Count),
            ("avg_age".to_string(), AggregateSpec::Avg(f(".age"))),
            ("oldest".to_string(), AggregateSpec::Max(f(".age"))),
            (
                "cities".to_string(),
                AggregateSpec::CountDistinct(f(".city")),
            ),
        ])
    }

    fn inputs(age: f64, city: &str) -> BTreeMap<String, Input> {
        BTreeMap::from([
            ("users".to_string(), Input::None),
            ("avg_age".to_string(), Input::Number(age)),
            ("oldest".to_string(), Input::Number(age)),
            ("cities".to_string(), Input::Text(city.into())),
        ])
    }

    #[test]
    fn the_shares_of_a_window_merge_into_what_one_task_would_hold() {
        let group = BTreeMap::from([("country".to_string(), serde_json::json!("FR"))]);
        let specs = specs();
        let mut whole = WindowDoc::new(60_000, 120_000, group.clone());
        let mut shares = Vec::new();
        for (index, ages) in [[20.0, 30.0], [40.0, 10.0]].iter().enumerate() {
            let mut share = WindowDoc::new(60_000, 120_000, group.clone());
            share.id = format!("{}~{index}of2", share.id);
            for age in ages {
                let inputs = BTreeMap::from([
                    ("users".to_string(), Input::None),
                    ("avg_age".to_string(), Input::Number(*age)),
                ]);
                share.add(&inputs);
                whole.add(&inputs);
            }
            share.closed = index == 0;
            shares.push(share.to_document(&specs).unwrap());
        }
        let merged = merge_shares(shares, &specs).unwrap();
        assert_eq!(merged.len(), 1);
        let expected = whole.to_document(&specs).unwrap();
        for field in ["_id", "users", "avg_age"] {
            assert_eq!(merged[0].get(field), expected.get(field), "{field}");
        }
        assert!(
            !merged[0].get_bool("closed").unwrap(),
            "one share still open"
        );
        assert_eq!(without_share("[\"FR\"]@x~1of2"), "[\"FR\"]@x");
        assert_eq!(without_share("a~b"), "a~b");
    }

    #[test]
    fn aggregates_and_offsets_round_trip_through_bson() {
        let group = BTreeMap::from([("country".to_string(), serde_json::json!("France"))]);
        let mut window = WindowDoc::new(60_000, 120_000, group.clone());
        let partition = ("users.fr".to_string(), 2);
        window.add(&inputs(30.0, "Paris"));
        window.add(&inputs(40.0, "Lyon"));
        window.add(&inputs(50.0, "Paris"));
        window.include_up_to(&partition, 41);
        let document = window.to_document(&specs()).unwrap();
        assert_eq!(document.get_i64("users").unwrap(), 3);
        assert_eq!(document.get_f64("avg_age").unwrap(), 40.0);
        assert_eq!(document.get_f64("oldest").unwrap(), 50.0);
        assert_eq!(document.get_i64("cities").unwrap(), 2);
        assert_eq!(document.get_str("country").unwrap(), "France");
        assert_eq!(
            document.get_str("window_start").unwrap(),
            "1970-01-01T00:01:00.000Z"
        );
        let back = WindowDoc::from_document(&document, group).unwrap();
        assert_eq!(back, window);
        assert!(back.includes(&partition, 41));
        assert!(!back.includes(&partition, 42));
        assert!(!back.includes(&("users.fr".to_string(), 0), 0));
    }

    #[test]
    fn ids_are_deterministic_per_window_and_group() {
        let a = BTreeMap::from([
            ("country".to_string(), serde_json::json!("France")),
            ("gender".to_string(), serde_json::json!("female")),
        ]);
        assert_eq!(document_id(0, &a), document_id(0, &a.clone()));
        assert_eq!(
            document_id(0, &a),
            "[\"France\",\"female\"]@1970-01-01T00:00:00.000Z"
        );
        assert_ne!(document_id(0, &a), document_id(60_000, &a));
        assert_eq!(iso(1_796_194_960_123), "2026-12-02T07:02:40.123Z");
        assert_eq!(iso(-60_000), "1969-12-31T23:59:00.000Z");
    }
}
