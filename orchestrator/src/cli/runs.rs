use std::{collections::HashMap, process::ExitCode};

use clap::Subcommand;
use orchestrator::{
    audit, commands,
    dag::Dag,
    store::{DagRunRow, RunFilter, RunKey, RunState, Store, TaskInstanceRow, TiFilter, TiState},
};

use super::{GlobalArgs, table};

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List DAG runs, newest first
    List {
        /// Only this DAG's runs
        #[arg(long)]
        dag: Option<String>,
        /// Only runs in this state (queued, running, success, failed, stopped)
        #[arg(long, value_parser = |s: &str| s.parse::<RunState>())]
        state: Option<RunState>,
        /// At most this many runs
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one run and its task instances
    Show {
        run_id: String,
        /// The DAG, when several have a run with this id
        #[arg(long)]
        dag: Option<String>,
    },
    /// Stop a queued run (a running one is stopped from the UI or API of the `serve` driving it)
    Stop {
        run_id: String,
        /// The DAG, when several have a run with this id
        #[arg(long)]
        dag: Option<String>,
    },
}

pub async fn execute(global: &GlobalArgs, command: RunsCommand) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    match command {
        RunsCommand::List { dag, state, limit } => {
            let runs = store
                .list_runs(&RunFilter {
                    dag_id: dag,
                    states: state.into_iter().collect(),
                    limit: Some(limit),
                    ..RunFilter::default()
                })
                .await?;
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.dag_id.clone(),
                        r.run_id.clone(),
                        r.state.to_string(),
                        r.run_type.to_string(),
                        table::time(Some(r.logical_date)),
                        table::time(r.start),
                        table::time(r.end),
                    ]
                })
                .collect();
            table::print(
                &[
                    "dag_id",
                    "run_id",
                    "state",
                    "type",
                    "logical_date",
                    "start",
                    "end",
                ],
                &rows,
            );
        }
        RunsCommand::Stop { run_id, dag } => {
            let run = find_run(&store, &run_id, dag).await?;
            let key = RunKey {
                dag_id: run.dag_id,
                run_id: run.run_id,
            };
            // A running run's tries stop where they run (streams flush and commit first).
            let wait = std::time::Duration::from_secs(30);
            let run = commands::stop(&store, None, &key, wait, &audit::cli_actor()).await?;
            println!("Run {} of {} is {}", run.run_id, run.dag_id, run.state);
        }
        RunsCommand::Show { run_id, dag } => {
            let run = find_run(&store, &run_id, dag).await?;
            println!(
                "dag_id:       {}\nrun_id:       {}\nstate:        {}\ntype:         {}\nlogical_date: {}\nconf:         {}\nstart:        {}\nend:          {}\n",
                run.dag_id,
                run.run_id,
                run.state,
                run.run_type,
                table::time(Some(run.logical_date)),
                serde_json::Value::Object(run.conf.clone()),
                table::time(run.start),
                table::time(run.end)
            );
            let dag = global.dag_bag().ok().and_then(|bag| bag.get(&run.dag_id));
            print_task_instances(&store, &run.key(), dag.as_deref()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The run with this id (in `dag` when given).
async fn find_run(store: &Store, run_id: &str, dag: Option<String>) -> anyhow::Result<DagRunRow> {
    let mut runs = store.find_runs(run_id).await?;
    runs.retain(|r| dag.as_ref().is_none_or(|d| *d == r.dag_id));
    match runs.len() {
        0 => anyhow::bail!(
            "no run {run_id:?}{}: see `orchestrator runs list`",
            dag.map(|d| format!(" in DAG {d:?}")).unwrap_or_default()
        ),
        1 => Ok(runs.remove(0)),
        _ => anyhow::bail!("several DAGs have a run {run_id:?}: add --dag <dag_id>"),
    }
}

/// A run's task instances, in the DAG's task order when it is known. Each row is kept as
/// its printed cells as it arrives: a 20,000-task run's whole rows held at once (and looked
/// up by a scan per task) were the peak of `orchestrator run`.
pub async fn print_task_instances(
    store: &Store,
    run: &RunKey,
    dag: Option<&Dag>,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    store
        .for_each_task_instance(&run.dag_id, &run.run_id, |ti| rows.push(cells(&ti)))
        .await?;
    if let Some(dag) = dag {
        // By the task id in each row's first cell.
        let mut by_id: HashMap<String, Vec<String>> =
            rows.into_iter().map(|row| (row[0].clone(), row)).collect();
        rows = dag
            .tasks
            .iter()
            .flat_map(|t| t.instance_ids())
            .filter_map(|id| by_id.remove(&id))
            .collect();
    }
    print_rows(&rows);
    Ok(())
}

/// The most task instances `orchestrator run` lists one by one when its run ends.
const LISTED_AT_END: usize = 100;

/// The task instances of a run that has just ended, as `orchestrator run` shows them: every
/// one when there are at most [`LISTED_AT_END`]; else those that did not succeed (at most as
/// many), then how many ended in each state. A table of 20,000 rows, each saying `success`,
/// said less and took ~70 ms to read and print.
pub async fn print_ended_run(store: &Store, run: &RunKey, dag: &Dag) -> anyhow::Result<()> {
    let counts = store
        .run_task_instance_counts(&run.dag_id, &run.run_id)
        .await?;
    let instances: i64 = counts.iter().map(|(_, n)| n).sum();
    if instances <= LISTED_AT_END as i64 {
        return print_task_instances(store, run, Some(dag)).await;
    }
    let not_succeeded: Vec<TiState> = counts
        .iter()
        .map(|(state, _)| *state)
        .filter(|state| *state != TiState::Success)
        .collect();
    if !not_succeeded.is_empty() {
        let filter = TiFilter {
            dag_ids: vec![run.dag_id.clone()],
            run_ids: vec![run.run_id.clone()],
            states: not_succeeded,
            limit: LISTED_AT_END as i64,
            ..Default::default()
        };
        let (found, total) = store.find_task_instances(&filter).await?;
        let rows: Vec<Vec<String>> = found.iter().map(|(ti, _)| cells(ti)).collect();
        print_rows(&rows);
        if total > rows.len() as u64 {
            println!(
                "... and {} more that did not succeed",
                total - rows.len() as u64
            );
        }
    }
    let by_state: Vec<String> = counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    println!(
        "{instances} task instances: {}. All of them: orchestrator runs show {} --dag {}",
        by_state.join(", "),
        run.run_id,
        run.dag_id
    );
    Ok(())
}

/// A task instance as the cells of its row.
fn cells(ti: &TaskInstanceRow) -> Vec<String> {
    vec![
        ti.task_id.clone(),
        ti.state.to_string(),
        format!("{}/{}", ti.try_number, ti.max_tries),
        table::time(ti.start),
        ti.duration_ms
            .map(|d| format!("{d} ms"))
            .unwrap_or_else(|| "-".into()),
        ti.hostname.clone().unwrap_or_else(|| "-".into()),
        ti.error.clone().unwrap_or_default(),
    ]
}

fn print_rows(rows: &[Vec<String>]) {
    table::print(
        &[
            "task_id", "state", "try", "start", "duration", "hostname", "error",
        ],
        rows,
    );
}
