//! The `courier-server` binary: parses arguments, binds, and hands over to [`courier_server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use courier_server::logging::Chain;
use courier_server::middleware::auth::TokenStore;
use courier_server::{Config, Limits, Prepared, TlsFiles};

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
    /// Directory of the durable message store (redb), created if missing.
    #[arg(long, default_value = "courier-data", conflicts_with = "in_memory")]
    data_dir: PathBuf,
    /// Keep messages in memory only: they are lost when the server stops.
    #[arg(long)]
    in_memory: bool,
    /// Seconds messages are kept, delivered or not, so that clients can resume.
    #[arg(long, default_value_t = courier_server::DEFAULT_RETENTION.as_secs())]
    retention_secs: u64,
    /// Write the bound address to this file once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The flags of [`Limits`]; each defaults to `Limits::default()`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// Largest message accepted or sent, in bytes, also after decompression.
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, default_value_t = Limits::default().max_concurrent_streams)]
    max_concurrent_streams: u32,
    /// Streams a connection may make the server reset before it is closed.
    #[arg(long, default_value_t = Limits::default().max_local_error_reset_streams)]
    max_local_error_reset_streams: usize,
    /// Largest request header list, in bytes.
    #[arg(long, default_value_t = Limits::default().max_header_list_bytes)]
    max_header_list_bytes: u32,
    /// Calls handled at once per connection; more are shed (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = Limits::default().max_calls_per_connection)]
    max_calls_per_connection: usize,
    /// Calls handled at once by the server; more are shed (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = Limits::default().max_calls)]
    max_calls: usize,
    /// Open ReceiveMessage and Chat streams; more get RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = Limits::default().max_open_streams)]
    max_open_streams: usize,
    /// Messages waiting for one user; a full queue answers RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = Limits::default().max_queued_per_user)]
    max_queued_per_user: usize,
    /// Seconds a handler may take to answer; a shorter grpc-timeout wins.
    #[arg(long, default_value_t = Limits::default().call_timeout.as_secs())]
    call_timeout_secs: u64,
    /// Seconds between HTTP/2 keepalive pings.
    #[arg(long, default_value_t = Limits::default().http2_keepalive_interval.as_secs())]
    http2_keepalive_interval_secs: u64,
    /// Seconds a keepalive ping may go unanswered.
    #[arg(long, default_value_t = Limits::default().http2_keepalive_timeout.as_secs())]
    http2_keepalive_timeout_secs: u64,
    /// Seconds of TCP keepalive.
    #[arg(long, default_value_t = Limits::default().tcp_keepalive.as_secs())]
    tcp_keepalive_secs: u64,
    /// Seconds a TLS handshake may take.
    #[arg(long, default_value_t = Limits::default().tls_handshake_timeout.as_secs())]
    tls_handshake_timeout_secs: u64,
    /// Seconds after which a connection is gracefully closed.
    #[arg(long, default_value_t = Limits::default().max_connection_age.as_secs())]
    max_connection_age_secs: u64,
}

impl From<LimitArgs> for Limits {
    fn from(args: LimitArgs) -> Self {
        Self {
            max_message_bytes: args.max_message_bytes,
            max_concurrent_streams: args.max_concurrent_streams,
            max_local_error_reset_streams: args.max_local_error_reset_streams,
            max_header_list_bytes: args.max_header_list_bytes,
            max_calls_per_connection: args.max_calls_per_connection,
            max_calls: args.max_calls,
            max_open_streams: args.max_open_streams,
            max_queued_per_user: args.max_queued_per_user,
            call_timeout: Duration::from_secs(args.call_timeout_secs),
            http2_keepalive_interval: Duration::from_secs(args.http2_keepalive_interval_secs),
            http2_keepalive_timeout: Duration::from_secs(args.http2_keepalive_timeout_secs),
            tcp_keepalive: Duration::from_secs(args.tcp_keepalive_secs),
            tls_handshake_timeout: Duration::from_secs(args.tls_handshake_timeout_secs),
            max_connection_age: Duration::from_secs(args.max_connection_age_secs),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", Chain(&*error));
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let _log_writer = courier_server::logging::init();

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
        limits: args.limits.into(),
        data_dir: (!args.in_memory).then_some(args.data_dir),
        retention: Duration::from_secs(args.retention_secs),
    };

    // The whole configuration is checked and the store opened before binding; only then is
    // the server announced.
    let prepared = Prepared::new(config.clone())?;
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        tls = config.tls.is_some(),
        auth = config.tokens.is_some(),
        data_dir = ?config.data_dir,
        "listening"
    );
    if let Some(path) = &args.addr_file {
        std::fs::write(path, addr.to_string())?;
    }
    prepared.serve(listener, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are registered here, before the server is
/// announced, so a signal sent as soon as the address is known is never the default (fatal) one.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
