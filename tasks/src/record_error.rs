//! Why one record cannot be used: the `error` header of its dead letter (streams) or the
//! reason a producer task fails (`http_to_kafka`).

use crate::{jq::JqError, kafka::TopicError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record without a value")]
    NoValue,
    #[error("record without a Kafka timestamp")]
    NoTimestamp,
    #[error(transparent)]
    Jq(#[from] JqError),
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("{0} is not set")]
    Unset(&'static str),
    #[error("{field} {code:?} is null")]
    NullKey { field: &'static str, code: String },
    #[error("event_time {code:?}: {reason}")]
    EventTime { code: String, reason: String },
    #[error("aggregate {name}: {reason}")]
    Aggregate { name: String, reason: String },
    #[error("a record to upsert must be an object, not {0}")]
    NotAnObject(String),
    #[error("cannot convert the record for the sink: {0}")]
    Convert(String),
}
