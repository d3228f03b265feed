//! Turns a response into keyed records, each bound for its topic.

use std::collections::BTreeSet;

use super::HttpToKafkaConfig;
use crate::jq::{self, Val};

/// One record ready to produce.
pub struct Routed {
    pub topic: String,
    pub key: Option<String>,
    /// The record as compact JSON.
    pub payload: Vec<u8>,
}

/// Records routed on one thread; larger answers are split over every core.
const RECORDS_PER_THREAD: usize = 500;

/// Selects the records of `body` and routes each, in order; the error names the record that
/// failed.
pub fn route(config: &HttpToKafkaConfig, body: &[u8]) -> Result<Vec<Routed>, String> {
    let document = jq::parse_json(body).map_err(|e| format!("response: {e}"))?;
    let records = config
        .records
        .run(document)
        .map_err(|e| format!("records: {e}"))?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(records.len().div_ceil(RECORDS_PER_THREAD))
        .max(1);
    let chunk = records.len().div_ceil(threads).max(1);
    let routed = std::thread::scope(|scope| {
        let workers: Vec<_> = records
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| scope.spawn(move || route_all(config, part, n * chunk)))
            .collect();
        let mut routed = Vec::with_capacity(records.len());
        for worker in workers {
            routed.extend(worker.join().map_err(|_| "routing a record panicked")??);
        }
        Ok::<_, String>(routed)
    })?;
    // Freeing a parsed answer of 5,000 users takes ~60 ms: off the task's path.
    std::thread::spawn(move || drop(records));
    Ok(routed)
}

/// Routes `records`, the first of which is record `first` of the answer.
fn route_all(
    config: &HttpToKafkaConfig,
    records: &[Val],
    first: usize,
) -> Result<Vec<Routed>, String> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            route_one(config, record.clone()).map_err(|e| format!("record {}: {e}", first + index))
        })
        .collect()
}

fn route_one(config: &HttpToKafkaConfig, record: Val) -> Result<Routed, String> {
    let key = match &config.key {
        Some(filter) => match filter.one(record.clone())? {
            Val::Null => return Err(format!("key {:?} is null", filter.source())),
            value => Some(jq::as_text(&value)),
        },
        None => None,
    };
    let topic = config.topic.topic_of(&record)?;
    Ok(Routed {
        topic,
        key,
        payload: jq::to_json_bytes(&record),
    })
}

/// The distinct topics of `records`.
pub fn topics(records: &[Routed]) -> BTreeSet<String> {
    records.iter().map(|r| r.topic.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let routed = route(&config, BODY).unwrap();
        let pairs: Vec<(&str, Option<&str>)> = routed
            .iter()
            .map(|r| (r.topic.as_str(), r.key.as_deref()))
            .collect();
        assert_eq!(pairs, [("users.us", Some("u1")), ("users.fr", Some("u2"))]);
        let payload: serde_json::Value = serde_json::from_slice(&routed[1].payload).unwrap();
        assert_eq!(payload["gender"], "female");
        assert_eq!(topics(&routed).len(), 2);
    }

    #[test]
    fn large_answers_keep_their_order_and_name_the_bad_record() {
        let users: Vec<serde_json::Value> = (0..1_200)
            .map(|i| serde_json::json!({"nat": "US", "login": {"uuid": format!("u{i}")}}))
            .collect();
        let body = serde_json::json!({ "results": users }).to_string();
        let config = config(serde_json::json!({"key": ".login.uuid", "topic": "t"}));
        let routed = route(&config, body.as_bytes()).unwrap();
        let keys: Vec<String> = routed.iter().map(|r| r.key.clone().unwrap()).collect();
        let expected: Vec<String> = (0..1_200).map(|i| format!("u{i}")).collect();
        assert_eq!(keys, expected);
        let mut users = users;
        users[1_100] = serde_json::json!({"nat": "US"});
        let body = serde_json::json!({ "results": users }).to_string();
        let error = route(&config, body.as_bytes()).err().unwrap();
        assert!(error.starts_with("record 1100:"), "{error}");
    }

    #[test]
    fn a_fixed_topic_and_no_key() {
        let routed = route(&config(serde_json::json!({"topic": "all"})), BODY).unwrap();
        assert!(routed.iter().all(|r| r.topic == "all" && r.key.is_none()));
    }

    #[test]
    fn bad_records_and_bodies_are_named() {
        let config = config(serde_json::json!({"key": ".missing", "topic": "t"}));
        let error = route(&config, BODY).err().unwrap();
        assert!(
            error.contains("record 0") && error.contains("null"),
            "{error}"
        );
        let error = route(&config, b"<html>").err().unwrap();
        assert!(error.contains("invalid JSON"), "{error}");
        let by_number = super::super::HttpToKafkaConfig {
            topic: crate::kafka::TopicSpec::parse(".login").unwrap(),
            key: None,
            ..config
        };
        let error = route(&by_number, BODY).err().unwrap();
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
