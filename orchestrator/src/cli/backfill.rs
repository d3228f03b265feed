//! `orchestrator backfill` (plan and queue a backfill) and `orchestrator backfills` (list,
//! pause, resume, cancel).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use orchestrator::{audit, commands, scheduler::parse_conf, store::BackfillRow};
use ui::views::{BackfillAction, BackfillRequest};

use super::{GlobalArgs, table};

/// Run a cron DAG over past intervals: one run per fire time from --from to --to
#[derive(Args)]
pub struct BackfillArgs {
    pub dag_id: String,
    /// First date (RFC 3339, or a date or local time in the DAG's timezone: 2026-01-01)
    #[arg(long = "from")]
    pub from_date: String,
    /// Last date, inclusive
    #[arg(long = "to")]
    pub to_date: String,
    /// Dates that already have a run: none (skip them), failed (rerun failed ones), all
    #[arg(long, default_value = "none")]
    pub reprocess: String,
    /// Runs of this backfill at once (the DAG's max_active_runs by default); the DAG's own
    /// runs are not counted against it, nor it against them
    #[arg(long)]
    pub max_active_runs: Option<u32>,
    /// JSON object overriding the DAG's params for every run
    #[arg(long)]
    pub conf: Option<String>,
    /// List the dates it would run and those it would skip, and create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start the latest dates first (oldest first by default)
    #[arg(long)]
    pub run_backwards: bool,
}

#[derive(Subcommand)]
pub enum BackfillsCommand {
    /// The backfills of a DAG, newest first, with their progress
    List { dag_id: String },
    /// Start no more runs of a backfill (those running go on)
    Pause { id: i64 },
    /// Start its runs again
    #[command(alias = "unpause")]
    Resume { id: i64 },
    /// Stop its queued runs (those running go on) and end it
    Cancel { id: i64 },
}

pub async fn backfill(global: &GlobalArgs, args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let conf = parse_conf(args.conf.as_deref()).map_err(|e| anyhow::anyhow!("--conf: {e}"))?;
    let dag = global.dag(&args.dag_id)?;
    let store = global.store().await?;
    let request = BackfillRequest {
        from_date: args.from_date,
        to_date: args.to_date,
        reprocess_behavior: Some(args.reprocess),
        max_active_runs: args.max_active_runs,
        dag_run_conf: conf,
        dry_run: args.dry_run,
        run_backwards: args.run_backwards,
    };
    let outcome = commands::backfill(&store, &dag, request, &audit::cli_actor()).await?;
    let skipped = outcome.dates.iter().filter(|d| d.skip.is_some()).count();
    let to_run = outcome.dates.len() - skipped;
    if args.dry_run {
        let rows: Vec<Vec<String>> = outcome
            .dates
            .iter()
            .map(|d| {
                vec![
                    table::time(Some(d.logical_date)),
                    match &d.skip {
                        Some(why) => format!("skip: {why}"),
                        None => "run".into(),
                    },
                ]
            })
            .collect();
        table::print(&["logical_date", "action"], &rows);
        println!(
            "Dry run: {to_run} of {} dates of {} would run, {skipped} skipped",
            outcome.dates.len(),
            dag.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(backfill) = outcome.backfill {
        println!(
            "Backfill {} of {}: {to_run} runs queued ({skipped} dates skipped), at most {} at once{}; `orchestrator serve` starts them",
            backfill.id,
            dag.id,
            backfill.max_active_runs,
            if backfill.run_backwards {
                ", latest first"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn execute(global: &GlobalArgs, command: BackfillsCommand) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    let (id, action) = match command {
        BackfillsCommand::List { dag_id } => {
            let rows: Vec<Vec<String>> = store
                .backfills_of(&dag_id)
                .await?
                .iter()
                .map(row_cells)
                .collect();
            table::print(
                &[
                    "id",
                    "from",
                    "to",
                    "reprocess",
                    "max_active",
                    "state",
                    "done",
                    "running",
                    "queued",
                    "failed",
                    "of",
                ],
                &rows,
            );
            return Ok(ExitCode::SUCCESS);
        }
        BackfillsCommand::Pause { id } => (id, BackfillAction::Pause),
        BackfillsCommand::Resume { id } => (id, BackfillAction::Unpause),
        BackfillsCommand::Cancel { id } => (id, BackfillAction::Cancel),
    };
    let backfill = commands::change_backfill(&store, id, None, action, &audit::cli_actor()).await?;
    println!(
        "Backfill {} of {} is {}",
        backfill.id,
        backfill.dag_id,
        backfill.state()
    );
    Ok(ExitCode::SUCCESS)
}

fn row_cells(backfill: &BackfillRow) -> Vec<String> {
    let p = backfill.progress;
    vec![
        backfill.id.to_string(),
        table::time(Some(backfill.from)),
        table::time(Some(backfill.to)),
        backfill.reprocess.clone(),
        backfill.max_active_runs.to_string(),
        backfill.state().into(),
        p.success.to_string(),
        p.running.to_string(),
        p.queued.to_string(),
        p.failed.to_string(),
        p.total.to_string(),
    ]
}
