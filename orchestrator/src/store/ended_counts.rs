//! Runs and task instances counted by DAG and state (`/metrics`' `updraft_dag_runs` and
//! `updraft_task_instances`) without reading every row ever stored: ended runs are counted as
//! they end, and so are their task instances (`run_task_counts`, summed by DAG in
//! `dag_task_counts`); only unended runs and their task instances are counted at each read.
//!
//! Every run's move goes through `apply_run_change`, which moves the ended runs' counts
//! ([`count_run_move`]) and keeps the task instances' counts of a run as it ends. A finished
//! run's task instances move only by a user's command (clear, mark), and each command takes
//! the run's kept counts back out and keeps them again after its moves, in the same
//! transaction ([`recount_ended_run`]). What is taken out is what was kept, not a new count,
//! so the sums stay the sums of the runs' kept counts.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use super::{Result, RunKey, RunState, Store};

/// The states of runs counted at each read, and of the runs whose task instances are.
const UNENDED: &str = "('queued', 'running')";

/// Moves the counts of ended runs of `dag_id` by one run's move from `from` to `to` (a run
/// that ends, is reopened or is marked).
pub(super) async fn count_run_move(
    conn: &mut AnyConnection,
    dag_id: &str,
    from: RunState,
    to: RunState,
) -> Result<()> {
    let mut moves = BTreeMap::new();
    if from.is_finished() {
        *moves.entry(from.as_str().to_owned()).or_default() -= 1;
    }
    if to.is_finished() {
        *moves.entry(to.as_str().to_owned()).or_default() += 1;
    }
    add_to_sums(conn, "dag_run_counts", dag_id, moves).await
}

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
    let mut moves: BTreeMap<String, i64> = BTreeMap::new();
    for (state, n) in taken_out {
        *moves.entry(state).or_default() -= n;
    }
    for (state, n) in kept {
        *moves.entry(state).or_default() += n;
    }
    add_to_sums(conn, "dag_task_counts", dag_id, moves).await
}

/// Adds `moves` (by state) to a DAG's sums in `table`, in the order of the states: two
/// transactions moving one DAG's sums on PostgreSQL lock its rows in the same order, so they
/// wait for each other but never deadlock.
async fn add_to_sums(
    conn: &mut AnyConnection,
    table: &'static str,
    dag_id: &str,
    moves: BTreeMap<String, i64>,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {table} (dag_id, state, n) VALUES ($1, $2, $3)
         ON CONFLICT (dag_id, state) DO UPDATE SET n = {table}.n + excluded.n"
    );
    for (state, n) in moves.into_iter().filter(|(_, n)| *n != 0) {
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(dag_id)
            .bind(state)
            .bind(n)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// (dag_id, state, count) of every DAG's runs, the states with none left out.
    pub async fn run_counts(&self) -> Result<Vec<(String, String, i64)>> {
        self.sums_and_unended(&format!(
            "SELECT dag_id, state, n FROM dag_run_counts WHERE n <> 0
             UNION ALL
             SELECT dag_id, state, COUNT(*) FROM dag_runs WHERE state IN {UNENDED}
             GROUP BY dag_id, state"
        ))
        .await
    }

    /// (dag_id, state, count) of every DAG's task instances, the states with none left out.
    pub async fn task_instance_counts(&self) -> Result<Vec<(String, String, i64)>> {
        self.sums_and_unended(&format!(
            "SELECT dag_id, state, n FROM dag_task_counts WHERE n <> 0
             UNION ALL
             SELECT t.dag_id, t.state, COUNT(*) FROM dag_runs r
             JOIN task_instances t ON t.dag_id = r.dag_id AND t.run_id = r.run_id
             WHERE r.state IN {UNENDED} GROUP BY t.dag_id, t.state"
        ))
        .await
    }

    /// The rows of `sql` ((dag_id, state, count): the sums kept for ended runs, then what
    /// unended runs count now) added up by DAG and state, in that order.
    async fn sums_and_unended(&self, sql: &str) -> Result<Vec<(String, String, i64)>> {
        let parts: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
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
