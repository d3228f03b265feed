use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    ConfigError, file_to_kafka::FileToKafkaConfig, generate_to_kafka::GenerateToKafkaConfig,
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
    /// Produces simulated records, each field drawn by a generator.
    GenerateToKafka(GenerateToKafkaConfig),
    /// Streams a file's lines, JSON lines or CSV rows into Kafka.
    FileToKafka(FileToKafkaConfig),
    /// Consumes Kafka topics until stopped: transforms, windows, MongoDB or Kafka sink.
    Stream(StreamConfig),
}

/// The operator a task names, as written in DAG files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    Noop,
    Sleep,
    Shell,
    Http,
    HttpToKafka,
    GenerateToKafka,
    FileToKafka,
    Stream,
}

impl OperatorKind {
    pub const ALL: [Self; 8] = [
        Self::Noop,
        Self::Sleep,
        Self::Shell,
        Self::Http,
        Self::HttpToKafka,
        Self::GenerateToKafka,
        Self::FileToKafka,
        Self::Stream,
    ];

    /// The name written in the `operator` key.
    pub fn name(self) -> &'static str {
        match self {
            Self::Noop => "noop",
            Self::Sleep => "sleep",
            Self::Shell => "shell",
            Self::Http => "http",
            Self::HttpToKafka => "http_to_kafka",
            Self::GenerateToKafka => "generate_to_kafka",
            Self::FileToKafka => "file_to_kafka",
            Self::Stream => "stream",
        }
    }

    /// The kind named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Every name, comma-separated, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A config that does not fit its operator, with the path of the value serde stopped at
/// (`window.size`, `fields.cpu`; empty when the config as a whole is wrong).
pub type JsonConfigError = serde_path_to_error::Error<serde_json::Error>;

impl OperatorConfig {
    /// The config of a `kind` operator from JSON (a rendered config; an `operator` key is
    /// ignored). Unlike deserializing the tagged enum, the error keeps the path of the value.
    pub fn from_json(
        kind: OperatorKind,
        mut value: serde_json::Value,
    ) -> Result<Self, JsonConfigError> {
        fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, JsonConfigError> {
            serde_path_to_error::deserialize(value)
        }
        if let Some(map) = value.as_object_mut() {
            map.remove("operator");
        }
        Ok(match kind {
            OperatorKind::Noop => Self::Noop(typed(value)?),
            OperatorKind::Sleep => Self::Sleep(typed(value)?),
            OperatorKind::Shell => Self::Shell(typed(value)?),
            OperatorKind::Http => Self::Http(typed(value)?),
            OperatorKind::HttpToKafka => Self::HttpToKafka(typed(value)?),
            OperatorKind::GenerateToKafka => Self::GenerateToKafka(typed(value)?),
            OperatorKind::FileToKafka => Self::FileToKafka(typed(value)?),
            OperatorKind::Stream => Self::Stream(typed(value)?),
        })
    }

    /// Checks every rule serde cannot (window slides, durations above zero, URLs, patterns);
    /// run when a DAG file loads and again on the rendered config before each try.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Noop(_) | Self::Sleep(_) => Ok(()),
            Self::Shell(config) => config.validate(),
            Self::Http(config) => config.validate(),
            Self::HttpToKafka(config) => config.validate(),
            Self::GenerateToKafka(config) => config.validate(),
            Self::FileToKafka(config) => config.validate(),
            Self::Stream(config) => config.validate(),
        }
    }

    /// Validates this config and builds the operator that runs it.
    pub fn build(self) -> Result<Box<dyn Operator>, ConfigError> {
        self.validate()?;
        Ok(match self {
            Self::Noop(config) => Box::new(crate::noop::NoopOperator::new(config)),
            Self::Sleep(config) => Box::new(crate::sleep::SleepOperator::new(config)),
            Self::Shell(config) => Box::new(crate::shell::ShellOperator::new(config)),
            Self::Http(config) => Box::new(crate::http::HttpOperator::new(config)),
            Self::Stream(config) => Box::new(crate::stream::StreamOperator::new(config)),
            Self::HttpToKafka(config) => {
                Box::new(crate::http_to_kafka::HttpToKafkaOperator::new(config))
            }
            Self::GenerateToKafka(config) => Box::new(
                crate::generate_to_kafka::GenerateToKafkaOperator::new(config),
            ),
            Self::FileToKafka(config) => {
                Box::new(crate::file_to_kafka::FileToKafkaOperator::new(config))
            }
        })
    }

    pub fn kind(&self) -> OperatorKind {
        match self {
            Self::Noop(_) => OperatorKind::Noop,
            Self::Sleep(_) => OperatorKind::Sleep,
            Self::Shell(_) => OperatorKind::Shell,
            Self::Http(_) => OperatorKind::Http,
            Self::HttpToKafka(_) => OperatorKind::HttpToKafka,
            Self::GenerateToKafka(_) => OperatorKind::GenerateToKafka,
            Self::FileToKafka(_) => OperatorKind::FileToKafka,
            Self::Stream(_) => OperatorKind::Stream,
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
    fn from_json_names_the_path_of_a_wrong_value() {
        let value = serde_json::json!({
            "operator": "generate_to_kafka", "records": "100", "topic": "t",
            "fields": {"id": "uuid"},
        });
        let err = OperatorConfig::from_json(OperatorKind::GenerateToKafka, value).unwrap_err();
        assert_eq!(err.path().to_string(), "records");
        assert!(
            err.inner()
                .to_string()
                .starts_with("invalid type: string \"100\""),
            "{err}"
        );
    }

    #[test]
    fn every_name_deserializes() {
        for kind in OperatorKind::ALL {
            let name = kind.name();
            let mut value = serde_json::json!({"operator": name});
            let extra = match name {
                "sleep" => Some(("duration", "1s")),
                "shell" => Some(("command", "true")),
                "http" => Some(("url", "http://127.0.0.1:1/")),
                "http_to_kafka" => Some(("topic", "t")),
                _ => None,
            };
            if let Some((key, val)) = extra {
                value[key] = serde_json::json!(val);
            }
            if name == "stream" {
                value["topics"] = serde_json::json!(["t"]);
                value["group_id"] = serde_json::json!("g");
                value["sink"] = serde_json::json!({"kind": "kafka", "topic": "out"});
            }
            if name == "http_to_kafka" {
                value["url"] = serde_json::json!("http://127.0.0.1:1/");
            }
            if name == "file_to_kafka" {
                value["path"] = serde_json::json!("words.txt");
                value["topic"] = serde_json::json!("t");
            }
            if name == "generate_to_kafka" {
                value["records"] = serde_json::json!(1);
                value["topic"] = serde_json::json!("t");
                value["fields"] = serde_json::json!({"id": "uuid"});
            }
            let config: OperatorConfig = serde_json::from_value(value.clone()).expect(name);
            assert_eq!(config.kind(), kind);
            let from_json = OperatorConfig::from_json(kind, value).expect(name);
            assert_eq!(from_json.kind(), kind);
            assert_eq!(OperatorKind::from_name(name), Some(kind));
            config.validate().expect(name);
        }
    }
}
