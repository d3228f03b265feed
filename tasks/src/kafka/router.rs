//! Where each record goes: its topic and its key.

use std::collections::HashMap;

use super::{Outgoing, TopicError, TopicSpec};
use crate::{
    RecordError,
    fields::Fields,
    jq::{self, JqFilter, Val},
};

/// Routes records to their topic ([`RecordTopics`]) and key. One router per thread.
pub struct Router<'c> {
    topics: RecordTopics,
    key: Option<&'c JqFilter>,
}

impl<'c> Router<'c> {
    pub fn new(topic: &TopicSpec, key: Option<&'c JqFilter>) -> Self {
        Self {
            topics: RecordTopics::new(topic.clone()),
            key,
        }
    }

    /// `record` (whose JSON is `payload`) bound for its topic, keyed by the key's value; a
    /// null key is the record's fault.
    pub fn route(
        &mut self,
        record: &Val,
        payload: impl Into<bytes::Bytes>,
    ) -> Result<Outgoing, RecordError> {
        let key = match self.key {
            Some(filter) => match filter.one(record.clone())? {
                Val::Null => {
                    return Err(RecordError::NullKey {
                        field: "key",
                        code: filter.source().to_owned(),
                    });
                }
                value => Some(jq::as_text(&value)),
            },
            None => None,
        };
        Ok(Outgoing {
            topic: self.topics.topic_of(record)?,
            key,
            payload: payload.into(),
        })
    }
}

/// The topics a [`TopicSpec`] gives records. An expression that reads the record only
/// through plain paths, and gives the same for the same input, runs once per distinct value
/// of what it reads (`"users." + (.nat | ascii_downcase)` once per nationality), not once
/// per record: running jaq costs 1-2 µs a record (BENCHMARKS.md).
pub struct RecordTopics {
    spec: TopicSpec,
    known: Option<KnownTopics>,
}

/// The topics worked out so far, by the JSON of the part of the record the expression reads.
struct KnownTopics {
    reads: Fields,
    topics: HashMap<Vec<u8>, String>,
}

/// Distinct values remembered; past them, the expression runs for every record.
const MAX_KNOWN_TOPICS: usize = 1024;

impl RecordTopics {
    pub fn new(spec: TopicSpec) -> Self {
        let known = spec
            .filter()
            .filter(|filter| filter.is_pure())
            .and_then(|filter| Fields::read_by([filter]))
            .map(|reads| KnownTopics {
                reads,
                topics: HashMap::new(),
            });
        Self { spec, known }
    }

    /// What the topics are worked out from.
    pub fn spec(&self) -> &TopicSpec {
        &self.spec
    }

    /// The topic of `record`, as [`TopicSpec::topic_of`] gives it.
    pub fn topic_of(&mut self, record: &Val) -> Result<String, TopicError> {
        let Some(known) = &mut self.known else {
            return self.spec.topic_of(record);
        };
        let read = jq::to_json_bytes(&known.reads.project(record));
        if let Some(topic) = known.topics.get(&read) {
            return Ok(topic.clone());
        }
        let topic = self.spec.topic_of(record)?;
        if known.topics.len() < MAX_KNOWN_TOPICS {
            known.topics.insert(read, topic.clone());
        }
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Val {
        jq::parse_json(json.as_bytes()).unwrap()
    }

    fn topics(code: &str, records: &[&str]) -> Vec<Result<String, String>> {
        let spec = TopicSpec::parse(code).unwrap();
        let mut router = Router::new(&spec, None);
        records
            .iter()
            .map(|json| {
                router
                    .route(&record(json), Vec::new())
                    .map(|routed| routed.topic)
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn a_remembered_topic_is_the_one_the_expression_gives() {
        let code = "\"users.\" + (.nat | ascii_downcase)";
        let records = [
            r#"{"nat": "US", "id": 1}"#,
            r#"{"nat": "FR", "id": 2}"#,
            r#"{"id": 3, "nat": "US"}"#,
            r#"{"nat": "us", "id": 4}"#,
            r#"{"nat": 7}"#,
            r#"{"nat": "US", "nat": "FR"}"#,
            r#"{"id": 5}"#,
            r#""text""#,
            r#"{"nat": "US", "id": 1}"#,
        ];
        let spec = TopicSpec::parse(code).unwrap();
        let each_alone: Vec<Result<String, String>> = records
            .iter()
            .map(|json| spec.topic_of(&record(json)).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(topics(code, &records), each_alone);
        assert_eq!(each_alone[0], Ok("users.us".to_owned()));
        assert_eq!(each_alone[5], Ok("users.fr".to_owned()));
        assert!(Router::new(&spec, None).topics.known.is_some());
    }

    #[test]
    fn an_expression_reading_the_clock_or_the_whole_record_runs_for_every_record() {
        for code in [
            "\"t.\" + (now | floor | tostring) + .id",
            "\"t.\" + (keys | join(\"-\"))",
        ] {
            let spec = TopicSpec::parse(code).unwrap();
            assert!(Router::new(&spec, None).topics.known.is_none(), "{code}");
        }
        let many: Vec<String> = (0..MAX_KNOWN_TOPICS + 5)
            .map(|i| format!(r#"{{"id": "{i}"}}"#))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let routed = topics("\"t.\" + .id", &many);
        assert_eq!(
            routed.last(),
            Some(&Ok(format!("t.{}", MAX_KNOWN_TOPICS + 4)))
        );
    }

    #[test]
    fn a_null_key_is_the_records_fault() {
        let spec = TopicSpec::parse("t").unwrap();
        let key = JqFilter::compile(".id").unwrap();
        let mut router = Router::new(&spec, Some(&key));
        let routed = router.route(&record(r#"{"id": 3}"#), Vec::new()).unwrap();
        assert_eq!(
            (routed.topic.as_str(), routed.key.as_deref()),
            ("t", Some("3"))
        );
        let error = router
            .route(&record(r#"{"x": 3}"#), Vec::new())
            .unwrap_err();
        assert!(error.to_string().contains(".id"), "{error}");
    }
}
