//! Pools: slots shared by the tasks of every DAG, in the shape of Airflow's `Pool`.

use serde::{Deserialize, Serialize};

/// A pool and how its slots are taken (Airflow's `Pool` fields).
#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    pub name: String,
    pub slots: i64,
    pub occupied_slots: i64,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
    pub deferred_slots: i64,
    pub open_slots: i64,
    pub description: String,
    pub include_deferred: bool,
}

/// `GET /api/v1/pools`.
#[derive(Debug, Clone, Serialize)]
pub struct PoolList {
    pub pools: Vec<PoolView>,
    pub total_entries: usize,
}

/// `POST /api/v1/pools` and `PATCH /api/v1/pools/{name}`: a pool's fields (the name is the
/// path's on a PATCH).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolForm {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slots: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    /// Airflow's field; Updraft has no deferred tasks.
    #[serde(default)]
    pub include_deferred: Option<bool>,
}
