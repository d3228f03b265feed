//! Updraft's orchestrator: DAG files, the metadata store, the scheduler and the executor.

pub mod alloc;
pub mod audit;
pub mod backfill;
pub mod commands;
pub mod dag;
pub mod executor;
pub mod logs;
pub mod scheduler;
pub mod store;
pub mod telemetry;
pub mod users;
pub mod web;
pub mod worker;
