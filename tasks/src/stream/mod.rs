//! The `stream` operator. `operator.rs` is the consume loop and `operator/flush.rs` the flush;
//! `source.rs` reads the topics, `process.rs` runs a record through the expressions,
//! `window.rs` and `window_doc.rs` hold window geometry and window documents, `sink/` writes
//! results and `outbox.rs` produces records.

mod config;
mod metrics;
mod operator;
mod outbox;
mod process;
mod results;
mod sink;
mod source;
mod start_guard;
mod window;
mod window_doc;

pub use config::*;
pub use operator::*;
pub use results::{RecordResults, StreamResults, WindowResults, WindowRow, read_results};
pub use window_doc::{merge_shares, without_share};
