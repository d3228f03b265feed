use clap::Subcommand;

use super::GlobalArgs;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Create or upgrade the metadata database schema
    Migrate,
}

pub async fn execute(
    global: &GlobalArgs,
    command: DbCommand,
) -> anyhow::Result<std::process::ExitCode> {
    match command {
        DbCommand::Migrate => {
            let store = global.store().await?;
            store.migrate().await?;
            println!("The metadata database schema is up to date");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
