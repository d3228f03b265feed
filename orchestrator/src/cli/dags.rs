use std::process::ExitCode;

use clap::Subcommand;
use orchestrator::{audit, commands, dag::DagBag, scheduler::parse_conf};

use super::{GlobalArgs, table};

#[derive(Subcommand)]
pub enum DagsCommand {
    /// List the DAGs of the folder, and its import errors
    List,
    /// Show one DAG: schedule, params and tasks
    Show {
        dag_id: String,
        /// Print this stored version of the DAG file instead (see the versions listed)
        #[arg(long)]
        version: Option<i64>,
    },
    /// Check every DAG file; exit 1 if any has a problem
    Validate,
    /// Queue a manual run (started by `orchestrator serve`)
    Trigger {
        dag_id: String,
        /// JSON object overriding the DAG's params
        #[arg(long)]
        conf: Option<String>,
    },
    /// Stop scheduling a DAG (a @continuous DAG's run is stopped)
    Pause { dag_id: String },
    /// Resume scheduling a DAG
    Unpause { dag_id: String },
    /// Run one DAG run now in the foreground (same as `orchestrator run`)
    Test(super::run::RunArgs),
}

pub async fn execute(global: &GlobalArgs, command: DagsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DagsCommand::List => list(global).await,
        DagsCommand::Show {
            dag_id,
            version: Some(number),
        } => show_version(global, &dag_id, number).await,
        DagsCommand::Show { dag_id, .. } => show(global, &dag_id).await,
        DagsCommand::Validate => validate(global),
        DagsCommand::Trigger { dag_id, conf } => trigger(global, &dag_id, conf.as_deref()).await,
        DagsCommand::Pause { dag_id } => set_paused(global, &dag_id, true).await,
        DagsCommand::Unpause { dag_id } => set_paused(global, &dag_id, false).await,
        DagsCommand::Test(args) => super::run::run(global, args).await,
    }
}

async fn list(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let bag = global.dag_bag()?;
    let paused = global.store().await?.paused_dags().await?;
    let rows: Vec<Vec<String>> = bag
        .dags
        .values()
        .map(|d| {
            let schedule = d.schedule.as_text();
            vec![
                d.id.clone(),
                if schedule.is_empty() {
                    "-".into()
                } else {
                    schedule
                },
                paused.contains(&d.id).to_string(),
                d.tasks.len().to_string(),
                d.file.display().to_string(),
            ]
        })
        .collect();
    table::print(&["dag_id", "schedule", "paused", "tasks", "file"], &rows);
    print_import_errors(&bag);
    Ok(ExitCode::SUCCESS)
}

fn print_import_errors(bag: &DagBag) {
    if !bag.errors.is_empty() {
        eprintln!("\nImport errors ({} files):", bag.errors.len());
        for error in &bag.errors {
            eprintln!("{error}");
        }
    }
}

/// The stored versions of the DAG's file and which is the file now (`dags show --version N`
/// prints one).
async fn versions_line(global: &GlobalArgs, dag: &orchestrator::dag::Dag) -> String {
    let versions = match global.store().await {
        Ok(store) => store.dag_versions(&dag.id).await,
        Err(error) => return format!("unknown ({error})"),
    };
    match versions {
        Ok(versions) if versions.is_empty() => {
            "none stored yet (serve stores each new text)".into()
        }
        Ok(versions) => {
            let current = versions
                .iter()
                .find(|v| v.source_hash == dag.source_hash)
                .map_or("the file now is not stored yet".to_string(), |v| {
                    format!("the file now is v{}", v.version_number)
                });
            let numbers: Vec<String> = versions
                .iter()
                .map(|v| v.version_number.to_string())
                .collect();
            format!("{} ({current})", numbers.join(", "))
        }
        Err(error) => format!("unknown ({error})"),
    }
}

/// The text of version `number` of a DAG's file, as stored.
async fn show_version(global: &GlobalArgs, dag_id: &str, number: i64) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    let Some((_, source)) = store.dag_version_source(dag_id, number).await? else {
        let known: Vec<String> = store
            .dag_versions(dag_id)
            .await?
            .iter()
            .map(|v| v.version_number.to_string())
            .collect();
        anyhow::bail!(
            "DAG {dag_id:?} has no version {number} (versions: {})",
            if known.is_empty() {
                "none yet".into()
            } else {
                known.join(", ")
            }
        );
    };
    print!("{source}");
    Ok(ExitCode::SUCCESS)
}

async fn show(global: &GlobalArgs, dag_id: &str) -> anyhow::Result<ExitCode> {
    let dag = global.dag(dag_id)?;
    println!("dag_id:           {}", dag.id);
    println!("file:             {}", dag.file.display());
    if let Some(description) = &dag.description {
        println!("description:      {description}");
    }
    println!(
        "schedule:         {}",
        if dag.schedule.as_text().is_empty() {
            "none (manual)".into()
        } else {
            dag.schedule.as_text()
        }
    );
    println!("timezone:         {}", dag.timezone.name());
    println!("start_date:       {}", table::time(dag.start_date));
    println!("end_date:         {}", table::time(dag.end_date));
    println!("catchup:          {}", dag.catchup);
    println!("max_active_runs:  {}", dag.max_active_runs);
    println!("max_active_tasks: {}", dag.max_active_tasks);
    println!("tags:             {}", dag.tags.join(", "));
    println!(
        "params:           {}",
        serde_json::Value::Object(dag.params.clone())
    );
    println!("versions:         {}", versions_line(global, &dag).await);
    println!();
    let rows: Vec<Vec<String>> = dag
        .tasks
        .iter()
        .map(|t| {
            let timeout = t
                .timeout
                .map(|d| humantime::format_duration(d).to_string())
                .unwrap_or_else(|| "-".into());
            vec![
                t.id.clone(),
                t.operator.to_string(),
                t.upstream.join(","),
                format!("{:?}", t.trigger_rule),
                t.retry.retries.to_string(),
                timeout,
            ]
        })
        .collect();
    table::print(
        &[
            "task_id",
            "operator",
            "upstream",
            "trigger_rule",
            "retries",
            "timeout",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

fn validate(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let bag = global.dag_bag()?;
    println!(
        "{} DAGs loaded from {}",
        bag.dags.len(),
        global.dags_folder.display()
    );
    if bag.errors.is_empty() {
        println!("No problems found");
        return Ok(ExitCode::SUCCESS);
    }
    print_import_errors(&bag);
    Ok(ExitCode::FAILURE)
}

async fn trigger(
    global: &GlobalArgs,
    dag_id: &str,
    conf: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let conf = parse_conf(conf).map_err(|e| anyhow::anyhow!("--conf: {e}"))?;
    let dag = global.dag(dag_id)?;
    let store = global.store().await?;
    let run = commands::trigger(&store, &dag, conf, &audit::cli_actor()).await?;
    println!("Queued run {} of {}", run.run_id, dag.id);
    Ok(ExitCode::SUCCESS)
}

async fn set_paused(global: &GlobalArgs, dag_id: &str, paused: bool) -> anyhow::Result<ExitCode> {
    let dag = global.dag(dag_id)?;
    let store = global.store().await?;
    commands::set_paused(&store, &dag, paused, &audit::cli_actor()).await?;
    println!(
        "{} is {}",
        dag.id,
        if paused { "paused" } else { "unpaused" }
    );
    Ok(ExitCode::SUCCESS)
}
