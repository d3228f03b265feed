//! `orchestrator pools set | list | delete`: slots shared by the tasks of every DAG.

use std::process::ExitCode;

use super::{GlobalArgs, table};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum PoolsCommand {
    /// Create a pool or change its slots (a task names it with `pool = "NAME"`)
    Set {
        name: String,
        #[arg(long)]
        slots: u32,
        #[arg(long)]
        description: Option<String>,
    },
    /// Every pool: slots, slots of running and queued tasks
    List,
    /// Delete a pool (its tasks then wait until it exists again); not `default_pool`
    Delete { name: String },
}

pub async fn execute(global: &GlobalArgs, command: PoolsCommand) -> anyhow::Result<ExitCode> {
    let store = global.store().await?;
    match command {
        PoolsCommand::Set {
            name,
            slots,
            description,
        } => {
            orchestrator::dag::check_name(&name)
                .map_err(|m| anyhow::anyhow!("pool {name:?}: {m}"))?;
            store
                .set_pool(&name, i64::from(slots), description.as_deref())
                .await?;
            println!("Pool {name} has {slots} slots");
        }
        PoolsCommand::List => {
            let rows: Vec<Vec<String>> = store
                .pools()
                .await?
                .into_iter()
                .map(|p| {
                    vec![
                        p.name,
                        p.slots.to_string(),
                        p.running_slots.to_string(),
                        p.queued_slots.to_string(),
                        (p.slots - p.running_slots).max(0).to_string(),
                        p.description,
                    ]
                })
                .collect();
            table::print(
                &["pool", "slots", "running", "queued", "open", "description"],
                &rows,
            );
        }
        PoolsCommand::Delete { name } => {
            let actor = orchestrator::audit::cli_actor();
            orchestrator::commands::delete_pool(&store, &name, &actor).await?;
            println!("Pool {name} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
