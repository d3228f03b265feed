//! The `orchestrator` command line: one Subcommand enum, one module per verb group.

mod backfill;
mod dags;
mod db;
mod fake_randomuser;
mod pools;
mod run;
mod runs;
mod serve;
mod table;
mod tasks;
mod users;
mod worker;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use orchestrator::{
    dag::DagBag,
    logs::{LogHub, Secrets},
    store::Store,
};

#[derive(Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Updraft: run DAGs of batch and stream tasks on schedules"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after any verb.
#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Folder of DAG files (*.toml)
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_DAGS_FOLDER",
        default_value = "dags"
    )]
    pub dags_folder: PathBuf,
    /// Metadata database: sqlite://<file> or postgres://user@host:port/db
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_DB",
        default_value = "sqlite://updraft.db"
    )]
    pub db: String,
    /// Root folder of task logs
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_LOGS_FOLDER",
        default_value = "logs"
    )]
    pub logs_folder: PathBuf,
    /// Kafka brokers of tasks that do not name theirs (host:port,...)
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_brokers: String,
    /// MongoDB connection string of tasks that do not name theirs
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_MONGO_URI",
        default_value = "mongodb://127.0.0.1:27017"
    )]
    pub mongo_uri: String,
    /// PostgreSQL URL of SQL sinks that do not name theirs
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_POSTGRES_URL",
        default_value = "postgres://127.0.0.1:5432/updraft"
    )]
    pub postgres_url: String,
    /// MySQL or MariaDB URL of SQL sinks that do not name theirs
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_MYSQL_URL",
        default_value = "mysql://127.0.0.1:3306/updraft"
    )]
    pub mysql_url: String,
    /// Variables of this process every shell task gets, besides PATH, HOME, LANG and the
    /// others it always gets (comma-separated names; UPDRAFT_* names are refused)
    #[arg(
        long,
        global = true,
        env = "UPDRAFT_ENV_PASSTHROUGH",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    pub env_passthrough: Vec<String>,
    /// How this process writes its own log to stderr: text, or JSON lines
    #[arg(long, global = true, env = "UPDRAFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The format of the orchestrator's own log (not the task logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the scheduler, the executor and the web UI until SIGINT/SIGTERM
    Serve(serve::ServeArgs),
    /// Run one DAG run now in the foreground, streaming task logs; exit 0 only on success
    Run(run::RunArgs),
    /// Queue runs of a cron DAG over past intervals (started by `orchestrator serve`)
    Backfill(backfill::BackfillArgs),
    /// List, pause, resume and cancel backfills
    #[command(subcommand)]
    Backfills(backfill::BackfillsCommand),
    /// Set, list and delete pools: slots shared by the tasks of every DAG
    #[command(subcommand)]
    Pools(pools::PoolsCommand),
    /// List, show, validate, trigger, pause and unpause DAGs
    #[command(subcommand)]
    Dags(dags::DagsCommand),
    /// List and show DAG runs
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Read task logs and test single tasks
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Metadata database maintenance
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Manage the users of the web UI and API
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Manage API bearer tokens
    #[command(subcommand)]
    Tokens(users::TokensCommand),
    /// Run task instances of some queues from a shared (PostgreSQL) metadata database
    Worker(worker::WorkerArgs),
    /// List the workers of a shared metadata database
    #[command(subcommand)]
    Workers(worker::WorkersCommand),
    /// Serve an offline copy of the randomuser.me 1.4 API (for the demo, tests and benchmarks)
    FakeRandomuser(fake_randomuser::FakeRandomUserArgs),
}

impl GlobalArgs {
    /// Where tasks connect when their config does not say.
    pub fn connections(&self) -> ::tasks::Connections {
        ::tasks::Connections {
            kafka_brokers: self.kafka_brokers.clone(),
            mongo_uri: self.mongo_uri.clone(),
            postgres_url: self.postgres_url.clone(),
            mysql_url: self.mysql_url.clone(),
        }
    }

    pub async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&self.db).await?)
    }

    pub fn dag_bag(&self) -> anyhow::Result<DagBag> {
        DagBag::load(&self.dags_folder).context("loading DAG files")
    }

    /// `--env-passthrough`, checked: no `UPDRAFT_*` name.
    pub fn env_passthrough(&self) -> anyhow::Result<std::sync::Arc<[String]>> {
        let names: Vec<String> = self
            .env_passthrough
            .iter()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect();
        ::tasks::shell::check_passthrough(&names)
            .map_err(|message| anyhow::anyhow!("--env-passthrough: {message}"))?;
        Ok(names.into())
    }

    /// The task logs, with the secrets this process knows masked in them: the passwords of
    /// the metadata database's and the sinks' URLs, the first admin's password and the
    /// metrics token.
    pub fn log_hub(&self) -> LogHub {
        let urls = [
            self.db.as_str(),
            &self.mongo_uri,
            &self.postgres_url,
            &self.mysql_url,
        ];
        let values = ["UPDRAFT_ADMIN_PASSWORD", "UPDRAFT_METRICS_TOKEN"]
            .into_iter()
            .filter_map(|name| std::env::var(name).ok());
        LogHub::new(&self.logs_folder).masking(Secrets::of(&urls, values))
    }

    /// The DAG `dag_id` of the folder, or an error naming the import error of its file.
    pub fn dag(&self, dag_id: &str) -> anyhow::Result<std::sync::Arc<orchestrator::dag::Dag>> {
        let bag = self.dag_bag()?;
        if let Some(dag) = bag.get(dag_id) {
            return Ok(dag);
        }
        let known: Vec<&str> = bag.dags.keys().map(String::as_str).collect();
        let mut message = format!(
            "no DAG {dag_id:?} in {} (known: {})",
            self.dags_folder.display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        );
        for error in &bag.errors {
            message.push_str(&format!("\nimport error: {error}"));
        }
        anyhow::bail!(message)
    }
}

/// Runs the command; the exit code.
pub async fn execute(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Serve(args) => serve::serve(&global, args).await,
        Command::Run(args) => run::run(&global, args).await,
        Command::Dags(command) => dags::execute(&global, command).await,
        Command::Backfill(args) => backfill::backfill(&global, args).await,
        Command::Backfills(command) => backfill::execute(&global, command).await,
        Command::Pools(command) => pools::execute(&global, command).await,
        Command::Runs(command) => runs::execute(&global, command).await,
        Command::Tasks(command) => tasks::execute(&global, command).await,
        Command::Db(command) => db::execute(&global, command).await,
        Command::Users(command) => users::users(&global, command).await,
        Command::Tokens(command) => users::tokens(&global, command).await,
        Command::Worker(args) => worker::worker(&global, args).await,
        Command::Workers(command) => worker::workers(&global, command).await,
        Command::FakeRandomuser(args) => fake_randomuser::serve(args).await,
    }
}
