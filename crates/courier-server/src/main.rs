//! The `courier-server` binary: parses arguments, binds, and hands over to [`courier_server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use courier_server::auth::TokenStore;
use courier_server::{Config, TlsFiles};
use tracing_subscriber::EnvFilter;

/// Serves the Courier gRPC services (hello, message queue, chat) with health and reflection.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Server certificate chain (PEM); enables TLS together with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to: enables mutual TLS.
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Tokens file (`<user> sha256:<hex>` per line); without it authentication is off.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Allow a non-loopback address without TLS and tokens.
    #[arg(long)]
    insecure: bool,
    /// Seconds open calls get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Write the bound address to this file once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("COURIER_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let secure = args.tls_cert.is_some() && args.tokens.is_some();
    if !args.listen.ip().is_loopback() && !secure && !args.insecure {
        return Err(format!(
            "refusing to serve {} without TLS and tokens; pass --tls-cert, --tls-key and --tokens, or --insecure",
            args.listen
        )
        .into());
    }
    let tokens = args
        .tokens
        .as_deref()
        .map(TokenStore::load)
        .transpose()?
        .map(Arc::new);
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca: args.client_ca,
        }),
        _ => None,
    };
    let config = Config {
        tls,
        tokens,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
    };

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = config.tls.is_some(), auth = config.tokens.is_some(), "listening");
    if let Some(path) = &args.addr_file {
        std::fs::write(path, addr.to_string())?;
    }
    courier_server::run(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
