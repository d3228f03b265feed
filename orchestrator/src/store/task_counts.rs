//! Task instances counted by DAG and state (`/metrics`' `updraft_task_instances`) without
//! reading every task instance ever stored: an ended run's counts are kept as it ends
//! (`run_task_counts`) and summed by DAG (`dag_task_counts`); only the task instances of
//! unended runs are counted at each read.
//!
//! A finished run's task instances move only by a user's command (clear, mark), and each
//! command takes the run's kept counts back out and keeps them again after its moves, in the
//! same transaction ([`recount_ended_run`]). What is taken out is what was kept, not a new
//! count, so the sums stay the sums of the runs' kept counts.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use super::{Result, RunKey, Store};

/// Keeps a run's counts of task instances by state, as they are now.
const KEEP_RUN: &str = "INSERT INTO run_task_counts (dag_id, run_id, state, n)
     SELECT dag_id, run_id, state, COUNT(*) FROM task_instances
     WHERE dag_id = $1 AND run_id = $2 GROUP BY dag_id, run_id, state
     RETURNING state, n";

/// Takes the counts kept for `run` (if any) out of its DAG's sums, and, when the run is `ended`
/// (it ends now, or a command left it finished), keeps its counts as its task instances are
/// now and adds them. Inside the transaction that moves the run, after its task instances'
/// moves.
pub(super) async fn recount_ended_run(
    conn: &mut AnyConnection,
    run: &RunKey,
    ended: bool,
) -> Result<()> {
    let (dag_id, run_id) = (run.dag_id.as_str(), run.run_id.as_str());
    let taken_out: Vec<(String, i64)> = sqlx::query_as(
        "DELETE FROM run_task_counts WHERE dag_id = $1 AND run_id = $2 RETURNING state, n",
    )
    .bind(dag_id)
    .bind(run_id)
    .fetch_all(&mut *conn)
    .await?;
    let kept: Vec<(String, i64)> = if ended {
        sqlx::query_as(KEEP_RUN)
            .bind(dag_id)
            .bind(run_id)
            .fetch_all(&mut *conn)
            .await?
    } else {
        Vec::new()
    };
    // By state: two transactions moving one DAG's sums on PostgreSQL lock its rows in the same
    // order, so they wait for each other but never deadlock.
    let mut moves: BTreeMap<String, i64> = BTreeMap::new();
    for (state, n) in taken_out {
        *moves.entry(state).or_default() -= n;
    }
    for (state, n) in kept {
        *moves.entry(state).or_default() += n;
    }
    for (state, n) in moves.into_iter().filter(|(_, n)| *n != 0) {
        sqlx::query(
            "INSERT INTO dag_task_counts (dag_id, state, n) VALUES ($1, $2, $3)
             ON CONFLICT (dag_id, state) DO UPDATE SET n = dag_task_counts.n + excluded.n",
        )
        .bind(dag_id)
        .bind(state)
        .bind(n)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// (dag_id, state, count) of every DAG's task instances, the states with none left out:
    /// the sums kept for ended runs plus the task instances of unended runs counted now.
    pub async fn task_instance_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let parts: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT dag_id, state, n FROM dag_task_counts WHERE n <> 0
             UNION ALL
             SELECT t.dag_id, t.state, COUNT(*) FROM dag_runs r
             JOIN task_instances t ON t.dag_id = r.dag_id AND t.run_id = r.run_id
             WHERE r.state IN ('queued', 'running') GROUP BY t.dag_id, t.state",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (dag_id, state, n) in parts {
            *counts.entry((dag_id, state)).or_default() += n;
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|((dag_id, state), n)| (dag_id, state, n))
            .collect())
    }
}
