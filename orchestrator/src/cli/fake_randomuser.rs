use std::{net::SocketAddr, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub struct FakeRandomUserArgs {
    /// Address to serve the API on (http://<bind>/api/?results=N&seed=S)
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
}

/// Serves the offline randomuser.me API until SIGINT/SIGTERM.
pub async fn serve(args: FakeRandomUserArgs) -> anyhow::Result<ExitCode> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    super::serve::cancel_on_signal(&shutdown)?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener.local_addr()?;
    println!("Fake randomuser.me API on http://{address}/api/?results=10");
    axum::serve(listener, ::fake_randomuser::router())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(ExitCode::SUCCESS)
}
