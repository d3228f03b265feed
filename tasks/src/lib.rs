//! Updraft operators.
//!
//! Every task in a DAG file names an `operator`; its config is one variant of the closed
//! [`OperatorConfig`] enum, and [`OperatorConfig::build`] turns it into a boxed [`Operator`]
//! that the orchestrator's executor runs with a [`TaskContext`] (cancellation, a log sink and
//! live metrics) and that returns a [`TaskResult`] summary for downstream templates.

// What another crate does not use is not `pub`.
#![warn(unreachable_pub)]

mod checks;
mod child;
mod config;
mod context;
mod duration;
mod error;
mod fields;
mod file_to_kafka;
mod generate_to_kafka;
mod http;
mod http_client;
mod http_to_kafka;
mod jq;
pub mod kafka;
mod mongo;
mod noop;
mod operator;
mod record_error;
pub mod shell;
mod sleep;
pub mod stream;
#[cfg(test)]
mod test_context;

pub use config::{JsonConfigError, OperatorConfig, OperatorKind};
pub use context::{Connections, LogSink, Metrics, Share, StreamMetrics, TaskContext};
pub use duration::HumanDuration;
pub use error::{ConfigError, TaskError};
pub use operator::{Operator, TaskResult};
pub use record_error::RecordError;
