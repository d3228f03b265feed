//! Updraft's orchestrator: DAG files, the metadata store, the scheduler and the executor.

pub mod dag;
