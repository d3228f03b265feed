//! The orchestrator's integration tests, in one binary: the crate and `support` are compiled
//! and linked once, not once per test file. Each module is one area; `support` holds what they
//! share (stores, DAGs, processes, the services `scripts/test` starts).

mod support;

mod airflow_api;
mod backfill;
mod browser;
mod commands;
mod dags_validate;
mod deployment;
mod executor;
mod metrics;
mod pools;
mod serve;
mod sql_pipelines;
mod sql_sinks;
mod store;
mod stream_crash;
mod stream_outages;
mod streaming;
mod workers;
