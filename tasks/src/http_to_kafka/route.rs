//! Turns a response into keyed records, each bound for its topic.

use std::collections::BTreeSet;

use super::HttpToKafkaConfig;
use crate::jq::{self, Val};

/// One record ready to produce.
pub struct Routed {
    pub topic: String,
    pub key: Option<String>,
    pub payload: String,
}

/// Selects the records of `body` and routes each; the error names the record that failed.
pub fn route(config: &HttpToKafkaConfig, body: &[u8]) -> Result<Vec<Routed>, String> {
    let document = jq::parse_json(body).map_err(|e| format!("response: {e}"))?;
    let records = config
        .records
        .run(document)
        .map_err(|e| format!("records: {e}"))?;
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| {
            route_one(config, record).map_err(|e| format!("record {index}: {e}"))
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
        payload: record.to_string(),
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
        let payload: serde_json::Value = serde_json::from_str(&routed[1].payload).unwrap();
        assert_eq!(payload["gender"], "female");
        assert_eq!(topics(&routed).len(), 2);
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
