use serde::Deserialize;

use crate::{
    http::HttpConfig, http_to_kafka::HttpToKafkaConfig, noop::NoopConfig, operator::Operator,
    shell::ShellConfig, sleep::SleepConfig, stream::StreamConfig,
};

/// The operator of a task and its config: a closed enum tagged by the `operator` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "operator", rename_all = "snake_case")]
pub enum OperatorConfig {
    /// Does nothing and succeeds.
    Noop(NoopConfig),
    /// Waits for a duration.
    Sleep(SleepConfig),
    /// Runs a command through `bash -c`.
    Shell(ShellConfig),
    /// Makes one HTTP request.
    Http(HttpConfig),
    /// GETs a URL and produces the records it selects to Kafka topics.
    HttpToKafka(HttpToKafkaConfig),
    /// Consumes Kafka topics until stopped: transforms, windows, MongoDB or Kafka sink.
    Stream(StreamConfig),
}

impl OperatorConfig {
    /// The names accepted in the `operator` key, for error messages.
    pub const NAMES: &'static [&'static str] =
        &["noop", "sleep", "shell", "http", "http_to_kafka", "stream"];

    /// Builds the operator that runs this config.
    pub fn build(self) -> Box<dyn Operator> {
        match self {
            Self::Noop(config) => Box::new(crate::noop::NoopOperator::new(config)),
            Self::Sleep(config) => Box::new(crate::sleep::SleepOperator::new(config)),
            Self::Shell(config) => Box::new(crate::shell::ShellOperator::new(config)),
            Self::Http(config) => Box::new(crate::http::HttpOperator::new(config)),
            Self::Stream(config) => Box::new(crate::stream::StreamOperator::new(config)),
            Self::HttpToKafka(config) => {
                Box::new(crate::http_to_kafka::HttpToKafkaOperator::new(config))
            }
        }
    }

    /// The operator's name as written in DAG files.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Noop(_) => "noop",
            Self::Sleep(_) => "sleep",
            Self::Shell(_) => "shell",
            Self::Http(_) => "http",
            Self::HttpToKafka(_) => "http_to_kafka",
            Self::Stream(_) => "stream",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let value = serde_json::json!({"operator": "sleep", "duration": "1s", "bogus": 1});
        let err = serde_json::from_value::<OperatorConfig>(value)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn unknown_operator_is_rejected() {
        let value = serde_json::json!({"operator": "teleport"});
        let err = serde_json::from_value::<OperatorConfig>(value)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `teleport`"), "{err}");
    }

    #[test]
    fn every_name_deserializes() {
        for name in OperatorConfig::NAMES {
            let mut value = serde_json::json!({"operator": name});
            let extra = match *name {
                "sleep" => Some(("duration", "1s")),
                "shell" => Some(("command", "true")),
                "http" => Some(("url", "http://127.0.0.1:1/")),
                "http_to_kafka" => Some(("topic", "t")),
                _ => None,
            };
            if let Some((key, val)) = extra {
                value[key] = serde_json::json!(val);
            }
            if *name == "stream" {
                value["topics"] = serde_json::json!(["t"]);
                value["group_id"] = serde_json::json!("g");
                value["sink"] = serde_json::json!({"kind": "kafka", "topic": "out"});
            }
            if *name == "http_to_kafka" {
                value["url"] = serde_json::json!("http://127.0.0.1:1/");
            }
            let config: OperatorConfig = serde_json::from_value(value).expect(name);
            assert_eq!(config.name(), *name);
        }
    }
}
