//! The `orchestrator` binary.

mod cli;

use std::{io::IsTerminal as _, process::ExitCode};

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: parsing and freeing a JSON tree per record is allocation-bound (BENCHMARKS.md).
/// Built with `no_thp`: its transparent huge pages added ~21 MB to idle RSS for no measured
/// speed. [`orchestrator::alloc::set_up`] sets it up.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    orchestrator::alloc::set_up();
    let cli = cli::Cli::parse();
    match runtime_for(&cli.command) {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `orchestrator run` drives one run on this thread alone: its driver, state writer and
/// runners hand work to each other without waking another thread (per hand-off of a noop
/// chain: 0.34 -> 0.23 ms on a 2-core guest, BENCHMARKS.md). Operators do their heavy work
/// on threads of their own (routing, file reads, record generation, child processes).
/// Everything else gets a worker per core.
fn runtime_for(command: &cli::Command) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match command {
        cli::Command::Run(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

async fn run(cli: cli::Cli) -> ExitCode {
    let default_level = if matches!(
        cli.command,
        cli::Command::Serve(_) | cli::Command::Worker(_)
    ) {
        "info"
    } else {
        "warn"
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr);
    match cli.global.log_format {
        // One JSON object per line, fields flattened: for log shippers.
        cli::LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        // Colour codes only on a terminal: `serve 2> file` gets plain text.
        cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match cli::execute(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
