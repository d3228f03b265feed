//! Turns a response into keyed records, each bound for its topic.

use serde::Deserialize as _;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::HttpToKafkaConfig;
use crate::{
    RecordError,
    fields::{Fields, Key},
    jq::{self, JqError, Val},
    kafka,
};

/// Why an answer cannot be turned into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RouteError {
    #[error("response: {0}")]
    Response(JqError),
    #[error("records: {0}")]
    Records(JqError),
    #[error("record {index}: {error}")]
    Record { index: usize, error: RecordError },
    #[error("routing a record panicked")]
    Panicked,
}

/// One record ready to produce. Its payload is the record's JSON: a slice of the answer,
/// shared and not copied, when `records` is a plain path; else the value jq selected,
/// written compactly.
pub(super) type Routed = kafka::Outgoing;

/// Records routed on one thread; larger answers are split over every core.
const RECORDS_PER_THREAD: usize = 500;

/// Selects the records of `body` and routes each, in order; the error names the record that
/// failed.
///
/// When `records` is a plain path to an array (`.results[]`, `.data.items[]`, `.[]`), the
/// records are found by scanning the answer without building its tree, and each is parsed on
/// its own, on every core, and sent as the bytes the API gave. Anything else, or an answer
/// that does not have an array there, goes through jq (which then names the problem).
pub(super) fn route(
    config: &HttpToKafkaConfig,
    body: &bytes::Bytes,
) -> Result<Vec<Routed>, RouteError> {
    if let Some(raw) = plain_path(config.records.source()).and_then(|path| raw_records(body, &path))
    {
        // With a plain key and topic path (or a topic name), only what they read is parsed.
        let fields = Fields::read_by(config.key.iter().chain(config.topic.filter()));
        return in_parallel(config, &raw, |raw: &&RawValue| {
            let bytes = raw.get().as_bytes();
            let record = match &fields {
                Some(fields) => fields.parse_raw(raw)?,
                None => jq::parse_json(bytes)?,
            };
            Ok((record, body.slice_ref(bytes)))
        });
    }
    let document = jq::parse_json(body).map_err(RouteError::Response)?;
    let records = config.records.run(document).map_err(RouteError::Records)?;
    let routed = in_parallel(config, &records, |record: &Val| {
        Ok((record.clone(), jq::to_json_bytes(record).into()))
    })?;
    // Freeing a parsed answer of 5,000 users takes ~60 ms: off the task's path.
    std::thread::spawn(move || drop(records));
    Ok(routed)
}

/// The keys of `records` when it is `.a.b[]` (or `.[]`): a path of plain names to an array.
fn plain_path(records: &str) -> Option<Vec<&str>> {
    jq::plain_keys(records.trim().strip_suffix("[]")?)
}

/// The elements of the array at `path` in `body`, as slices of it, found in one pass over
/// the answer; none when it has no array there (or is not JSON).
fn raw_records<'a>(body: &'a [u8], path: &[&str]) -> Option<Vec<&'a RawValue>> {
    let mut deserializer = serde_json::Deserializer::from_str(std::str::from_utf8(body).ok()?);
    let records = ArrayAt(path).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    records
}

/// Follows a path of keys through objects to an array; its elements as slices of the
/// answer. Other values are skipped (still checked as JSON); a key given twice counts
/// last, as in jq.
struct ArrayAt<'p>(&'p [&'p str]);

impl<'de> DeserializeSeed<'de> for ArrayAt<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.0.is_empty() {
            return Vec::deserialize(deserializer).map(Some);
        }
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ArrayAt<'_> {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Ok(None);
        };
        let mut found = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == *first {
                found = map.next_value_seed(ArrayAt(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Routes every item (`to_record` gives its value and payload), split over the cores, in
/// order; the error names the first item that failed.
fn in_parallel<T: Sync>(
    config: &HttpToKafkaConfig,
    items: &[T],
    to_record: impl Fn(&T) -> Result<(Val, bytes::Bytes), RecordError> + Sync,
) -> Result<Vec<Routed>, RouteError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().div_ceil(RECORDS_PER_THREAD))
        .max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    let to_record = &to_record;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                scope.spawn(move || {
                    let mut router = kafka::Router::new(&config.topic, config.key.as_ref());
                    part.iter()
                        .enumerate()
                        .map(|(index, item)| {
                            to_record(item)
                                .and_then(|(record, payload)| router.route(&record, payload))
                                .map_err(|error| RouteError::Record {
                                    index: n * chunk + index,
                                    error,
                                })
                        })
                        .collect::<Result<Vec<_>, RouteError>>()
                })
            })
            .collect();
        let mut routed = Vec::with_capacity(items.len());
        for worker in workers {
            routed.extend(worker.join().map_err(|_| RouteError::Panicked)??);
        }
        Ok(routed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `route` of a body given as bytes.
    fn route_of(config: &HttpToKafkaConfig, body: &[u8]) -> Result<Vec<Routed>, RouteError> {
        route(config, &bytes::Bytes::copy_from_slice(body))
    }

    fn config(extra: serde_json::Value) -> HttpToKafkaConfig {
        let mut value = serde_json::json!({"url": "http://x/"});
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    const BODY: &[u8] = br#"{"results": [
        {"nat": "US", "gender": "male", "login": {"uuid": "u1"}},
        {"nat": "FR", "gender": "female", "login": {"uuid": "u2"}}
    ]}"#;

    #[test]
    fn records_fan_out_by_expression_with_keys() {
        let config = config(serde_json::json!({
            "key": ".login.uuid",
            "topic": "\"users.\\(.nat | ascii_downcase)\"",
        }));
        let routed = route_of(&config, BODY).unwrap();
        let pairs: Vec<(&str, Option<&str>)> = routed
            .iter()
            .map(|r| (r.topic.as_str(), r.key.as_deref()))
            .collect();
        assert_eq!(pairs, [("users.us", Some("u1")), ("users.fr", Some("u2"))]);
        let payload: serde_json::Value = serde_json::from_slice(&routed[1].payload).unwrap();
        assert_eq!(payload["gender"], "female");
        assert_eq!(kafka::topics(&routed).len(), 2);
    }

    #[test]
    fn large_answers_keep_their_order_and_name_the_bad_record() {
        let users: Vec<serde_json::Value> = (0..1_200)
            .map(|i| serde_json::json!({"nat": "US", "login": {"uuid": format!("u{i}")}}))
            .collect();
        let body = serde_json::json!({ "results": users }).to_string();
        let config = config(serde_json::json!({"key": ".login.uuid", "topic": "t"}));
        let routed = route_of(&config, body.as_bytes()).unwrap();
        let keys: Vec<String> = routed.iter().map(|r| r.key.clone().unwrap()).collect();
        let expected: Vec<String> = (0..1_200).map(|i| format!("u{i}")).collect();
        assert_eq!(keys, expected);
        let mut users = users;
        users[1_100] = serde_json::json!({"nat": "US"});
        let body = serde_json::json!({ "results": users }).to_string();
        let error = route_of(&config, body.as_bytes())
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("record 1100:"), "{error}");
    }

    #[test]
    fn plain_paths_are_recognised() {
        assert_eq!(plain_path(".results[]"), Some(vec!["results"]));
        assert_eq!(
            plain_path(" .data.items_2[] "),
            Some(vec!["data", "items_2"])
        );
        assert_eq!(plain_path(".[]"), Some(vec![]));
        for other in [
            ".results",
            ".results[0]",
            ".results[] | .x",
            ".\"a b\"[]",
            "..[]",
            ".2x[]",
        ] {
            assert_eq!(plain_path(other), None, "{other}");
        }
    }

    #[test]
    fn a_plain_path_sends_each_record_as_the_api_wrote_it() {
        let body = br#"{"info": {"seed": "x"}, "results": [ {"nat": "US", "n": 1.50, "login": {"uuid": "u1"}},
            {"nat":"FR","n":2e3,"login":{"uuid":"u2"}} ]}"#;
        let config = config(serde_json::json!({"key": ".login.uuid", "topic": "t"}));
        let routed = route_of(&config, body).unwrap();
        assert_eq!(
            String::from_utf8(routed[0].payload.to_vec()).unwrap(),
            r#"{"nat": "US", "n": 1.50, "login": {"uuid": "u1"}}"#
        );
        assert_eq!(
            String::from_utf8(routed[1].payload.to_vec()).unwrap(),
            r#"{"nat":"FR","n":2e3,"login":{"uuid":"u2"}}"#
        );
        assert_eq!(routed[1].key.as_deref(), Some("u2"));
    }

    #[test]
    fn a_plain_path_finds_the_array_jq_finds() {
        let by_scan =
            config(serde_json::json!({"records": ".data.items[]", "key": ".k", "topic": "t"}));
        let by_jq =
            config(serde_json::json!({"records": ".data.items[] | .", "key": ".k", "topic": "t"}));
        for body in [
            &br#"{"info": {"items": [{"k": "no"}]}, "data": {"x": [1, "]"], "items": [{"k": "a"}, {"k": "b"}]}, "z": {}}"#[..],
            br#"{"data": {"items": [{"k": "first"}]}, "data": {"items": [{"k": "last"}]}}"#,
            br#"{"d\u0061ta": {"items": [{"k": "escaped"}]}}"#,
            br#"{"data": {"items": []}}"#,
        ] {
            let keys = |config: &HttpToKafkaConfig| {
                route_of(config, body).map(|routed| routed.into_iter().map(|r| r.key).collect::<Vec<_>>())
            };
            assert_eq!(keys(&by_scan), keys(&by_jq), "{}", String::from_utf8_lossy(body));
            assert!(raw_records(body, &["data", "items"]).is_some());
        }
        for body in [
            &br#"{"data": {"items": {"k": "a"}}}"#[..],
            br#"{"data": [] }"#,
            br#"{"data": {}} x"#,
        ] {
            assert!(
                raw_records(body, &["data", "items"]).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_key_and_topic_read_in_part_give_and_fail_as_on_the_whole_record() {
        let topic = "\"users.\" + (.nat | ascii_downcase)";
        let plain = config(serde_json::json!({"key": ".login.uuid", "topic": topic}));
        let whole = config(
            serde_json::json!({"key": ". as $u | .login.uuid", "topic": format!(". as $u | {topic}")}),
        );
        let read = |c: &HttpToKafkaConfig| Fields::read_by(c.key.iter().chain(c.topic.filter()));
        assert!(read(&plain).is_some() && read(&whole).is_none());
        for body in [
            &br#"{"results": [{"nat": "US", "login": {"uuid": 7, "x": [1, {"y": null}]}}]}"#[..],
            br#"{"results": [{"nat": "US", "login": {"uuid": "u1"}}, {"nat": "FR"}]}"#,
            br#"{"results": [{"login": "text"}]}"#,
            br#"{"results": [{"login": {"uuid": null}}]}"#,
            br#"{"results": [3]}"#,
            br#"{"results": [{"nat": 3, "login": {"uuid": "u1"}}]}"#,
            br#"{"results": [{"nat": {"a": 1}, "login": {"uuid": "u1"}}]}"#,
        ] {
            let outcome = |config: &HttpToKafkaConfig| {
                route_of(config, body)
                    .map(|routed| {
                        routed
                            .into_iter()
                            .map(|r| (r.topic, r.key, r.payload))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|e| e.to_string().replace(". as $u | ", ""))
            };
            assert_eq!(
                outcome(&plain),
                outcome(&whole),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn other_selections_go_through_jq_and_missing_arrays_are_named() {
        let config = config(serde_json::json!({
            "records": ".results[] | select(.nat == \"FR\")",
            "key": ".login.uuid",
            "topic": "t",
        }));
        let routed = route_of(&config, BODY).unwrap();
        assert_eq!(routed.len(), 1);
        assert_eq!(routed[0].key.as_deref(), Some("u2"));
        let error = route_of(&config, br#"{"info": {}}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("records:"), "{error}");
        let plain = super::super::HttpToKafkaConfig {
            records: crate::jq::JqFilter::compile(".results[]").unwrap(),
            ..config
        };
        let error = route_of(&plain, br#"{"results": null}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with("records:") && error.contains("null"),
            "{error}"
        );
    }

    #[test]
    fn a_fixed_topic_and_no_key() {
        let routed = route_of(&config(serde_json::json!({"topic": "all"})), BODY).unwrap();
        assert!(routed.iter().all(|r| r.topic == "all" && r.key.is_none()));
    }

    #[test]
    fn bad_records_and_bodies_are_named() {
        let config = config(serde_json::json!({"key": ".missing", "topic": "t"}));
        let error = route_of(&config, BODY).err().unwrap().to_string();
        assert!(
            error.contains("record 0") && error.contains("null"),
            "{error}"
        );
        let error = route_of(&config, b"<html>").err().unwrap().to_string();
        assert!(error.contains("invalid JSON"), "{error}");
        let by_number = super::super::HttpToKafkaConfig {
            topic: crate::kafka::TopicSpec::parse(".login").unwrap(),
            key: None,
            ..config
        };
        let error = route_of(&by_number, BODY).err().unwrap().to_string();
        assert!(error.contains("not a topic name"), "{error}");
    }

    #[test]
    fn a_bad_expression_fails_when_the_config_is_read() {
        let error = serde_json::from_value::<HttpToKafkaConfig>(
            serde_json::json!({"url": "http://x/", "topic": "t", "key": ".login | uuid("}),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("jq expression"), "{error}");
    }
}
