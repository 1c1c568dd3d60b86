//! The `courier-server` binary: parses arguments, checks the whole configuration and opens the
//! store ([`Prepared::new`]), binds, announces, and serves ([`Prepared::serve`]).
//!
//! Durations are written as humantime (`30s`, `5m`, `1h 30m`, `7days`); a value that does not
//! parse is a usage error naming its flag.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use clap::builder::RangedU64ValueParser;
use courier_server::config::CorsOrigin;
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
    /// How long open calls get to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", default_value_t = Config::default().shutdown_grace.into())]
    shutdown_grace: humantime::Duration,
    /// Directory of the durable message store (redb), created if missing.
    #[arg(long, default_value = "courier-data", conflicts_with = "in_memory")]
    data_dir: PathBuf,
    /// Keep messages in memory only: they are lost when the server stops.
    #[arg(long)]
    in_memory: bool,
    /// How long messages are kept, delivered or not, so that clients can resume.
    #[arg(long, value_name = "DURATION", value_parser = positive,
          default_value_t = courier_server::DEFAULT_RETENTION.into())]
    retention: humantime::Duration,
    /// Write the bound address to this file once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// A web origin (scheme://host[:port]) whose pages may call the server with gRPC-Web
    /// (CORS); repeat for more. None by default: only a page the server serves itself may.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<CorsOrigin>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The smallest `--max-message-bytes`: a stored message (4,096 bytes of content, two 64-byte
/// names, its id and time, framing) must fit in a response, or it would be taken for delivery
/// and then fail to encode.
const MIN_MESSAGE_BYTES: u64 = 8 * 1024;

/// The flags of [`Limits`]; each defaults to `Limits::default()`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits")]
struct LimitArgs {
    /// Connections open at once; one more is reset at once (clients see UNAVAILABLE).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..),
          default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Largest message accepted or sent, in bytes, also after decompression; at least 8 KiB, so
    /// that every message the server stores can also be sent.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(MIN_MESSAGE_BYTES..),
          default_value_t = Limits::default().max_message_bytes)]
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
    /// How long a handler may take to answer; a shorter grpc-timeout wins.
    #[arg(long, value_name = "DURATION", value_parser = positive,
          default_value_t = Limits::default().call_timeout.into())]
    call_timeout: humantime::Duration,
    /// Time between HTTP/2 keepalive pings.
    #[arg(long, value_name = "DURATION", value_parser = positive,
          default_value_t = Limits::default().http2_keepalive_interval.into())]
    http2_keepalive_interval: humantime::Duration,
    /// How long a keepalive ping may go unanswered.
    #[arg(long, value_name = "DURATION", value_parser = positive,
          default_value_t = Limits::default().http2_keepalive_timeout.into())]
    http2_keepalive_timeout: humantime::Duration,
    /// Idle time before TCP keepalive probes.
    #[arg(long, value_name = "DURATION", value_parser = positive,
          default_value_t = Limits::default().tcp_keepalive.into())]
    tcp_keepalive: humantime::Duration,
    /// How long a TLS handshake may take.
    #[arg(long, value_name = "DURATION", value_parser = positive,
          default_value_t = Limits::default().tls_handshake_timeout.into())]
    tls_handshake_timeout: humantime::Duration,
    /// Age after which a connection is gracefully closed (GOAWAY).
    #[arg(long, value_name = "DURATION", value_parser = positive,
          default_value_t = Limits::default().max_connection_age.into())]
    max_connection_age: humantime::Duration,
}

impl From<LimitArgs> for Limits {
    fn from(args: LimitArgs) -> Self {
        Self {
            max_connections: args.max_connections,
            max_message_bytes: args.max_message_bytes,
            max_concurrent_streams: args.max_concurrent_streams,
            max_local_error_reset_streams: args.max_local_error_reset_streams,
            max_header_list_bytes: args.max_header_list_bytes,
            max_calls_per_connection: args.max_calls_per_connection,
            max_calls: args.max_calls,
            max_open_streams: args.max_open_streams,
            max_queued_per_user: args.max_queued_per_user,
            call_timeout: args.call_timeout.into(),
            http2_keepalive_interval: args.http2_keepalive_interval.into(),
            http2_keepalive_timeout: args.http2_keepalive_timeout.into(),
            tcp_keepalive: args.tcp_keepalive.into(),
            tls_handshake_timeout: args.tls_handshake_timeout.into(),
            max_connection_age: args.max_connection_age.into(),
        }
    }
}

/// A duration flag's value that must be longer than zero.
fn positive(value: &str) -> Result<humantime::Duration, String> {
    match value.parse::<humantime::Duration>() {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".into()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
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
        shutdown_grace: args.shutdown_grace.into(),
        limits: args.limits.into(),
        data_dir: (!args.in_memory).then_some(args.data_dir),
        retention: args.retention.into(),
        cors_origins: args.cors_origins,
    };

    // The flags (clap), the listen address rule and the tokens file are checked above; here
    // the TLS files, and only then is the store opened (which creates the data directory).
    // Binding comes after, and the server is announced last.
    let prepared = Prepared::new(config.clone())?;
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, addr.to_string())?;
    }
    tracing::info!(
        %addr,
        tls = config.tls.is_some(),
        auth = config.tokens.is_some(),
        data_dir = ?config.data_dir,
        max_connections = config.limits.max_connections,
        cors_origins = ?config.cors_origins.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "listening"
    );
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_flags_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn each_duration_flag_sets_its_own_field() {
        let args = Args::try_parse_from([
            "courier-server",
            "--shutdown-grace",
            "1s",
            "--retention",
            "2days",
            "--call-timeout",
            "3s",
            "--http2-keepalive-interval",
            "4s",
            "--http2-keepalive-timeout",
            "5s",
            "--tcp-keepalive",
            "6m",
            "--tls-handshake-timeout",
            "7s",
            "--max-connection-age",
            "8h",
            "--max-connections",
            "9",
        ])
        .unwrap();
        assert_eq!(*args.shutdown_grace, Duration::from_secs(1));
        assert_eq!(*args.retention, Duration::from_secs(2 * 24 * 3600));
        let limits = Limits::from(args.limits);
        assert_eq!(
            limits,
            Limits {
                max_connections: 9,
                call_timeout: Duration::from_secs(3),
                http2_keepalive_interval: Duration::from_secs(4),
                http2_keepalive_timeout: Duration::from_secs(5),
                tcp_keepalive: Duration::from_secs(6 * 60),
                tls_handshake_timeout: Duration::from_secs(7),
                max_connection_age: Duration::from_secs(8 * 3600),
                ..Limits::default()
            }
        );
    }

    #[test]
    fn the_defaults_are_the_librarys() {
        let args = Args::try_parse_from(["courier-server"]).unwrap();
        assert_eq!(*args.shutdown_grace, Config::default().shutdown_grace);
        assert_eq!(*args.retention, courier_server::DEFAULT_RETENTION);
        assert_eq!(Limits::from(args.limits), Limits::default());
    }

    #[test]
    fn a_message_limit_too_small_for_a_stored_message_is_refused() {
        let error =
            Args::try_parse_from(["courier-server", "--max-message-bytes", "4096"]).unwrap_err();
        assert!(error.to_string().contains("--max-message-bytes"), "{error}");
        let args = Args::try_parse_from(["courier-server", "--max-message-bytes", "8192"]).unwrap();
        assert_eq!(Limits::from(args.limits).max_message_bytes, 8192);
    }

    #[test]
    fn cors_origins_are_repeatable_checked_and_none_by_default() {
        let args = Args::try_parse_from(["courier-server"]).unwrap();
        assert!(args.cors_origins.is_empty());
        let args = Args::try_parse_from([
            "courier-server",
            "--cors-origin",
            "https://chat.example.com",
            "--cors-origin",
            "HTTP://LOCALHOST:8080",
        ])
        .unwrap();
        let origins: Vec<String> = args.cors_origins.iter().map(ToString::to_string).collect();
        assert_eq!(
            origins,
            ["https://chat.example.com", "http://localhost:8080"]
        );
        let error = Args::try_parse_from(["courier-server", "--cors-origin", "https://a.example/"])
            .unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        let message = error.to_string();
        assert!(message.contains("--cors-origin"), "{message}");
        assert!(message.contains("scheme://host[:port]"), "{message}");
    }

    #[test]
    fn a_zero_duration_is_refused_where_it_makes_no_sense() {
        for flag in [
            "--retention",
            "--call-timeout",
            "--http2-keepalive-interval",
            "--http2-keepalive-timeout",
            "--tcp-keepalive",
            "--tls-handshake-timeout",
            "--max-connection-age",
        ] {
            let error = Args::try_parse_from(["courier-server", flag, "0s"]).unwrap_err();
            assert!(
                error.to_string().contains("must be longer than zero"),
                "{flag}: {error}"
            );
        }
        // No grace at all is a choice: stop at once.
        let args = Args::try_parse_from(["courier-server", "--shutdown-grace", "0s"]).unwrap();
        assert!(args.shutdown_grace.is_zero());
    }
}
