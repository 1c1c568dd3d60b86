//! What a server is configured with: [`Config`] and the [`Limits`] it puts on clients. The
//! binary fills it from its flags; tests and the benchmark build it directly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::middleware::auth::TokenStore;

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Everything a server needs besides its listener.
#[derive(Clone, Debug)]
pub struct Config {
    /// TLS, or plaintext when `None`.
    pub tls: Option<TlsFiles>,
    /// Bearer tokens, or no authentication when `None`.
    pub tokens: Option<Arc<TokenStore>>,
    /// How long open calls get to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Bounds on what clients may use; see [`Limits`].
    pub limits: Limits,
    /// Directory of the durable message store; in memory (lost on restart) when `None`.
    pub data_dir: Option<PathBuf>,
    /// How long messages are kept, delivered or not, so clients can resume.
    pub retention: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tls: None,
            tokens: None,
            shutdown_grace: Duration::from_secs(10),
            limits: Limits::default(),
            data_dir: None,
            retention: DEFAULT_RETENTION,
        }
    }
}

/// Messages are kept a week by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The default of [`Limits::max_connections`]: 1,000.
///
/// Every other limit is per call or per connection, so without this one a client could hold any
/// number of idle connections, each costing a file descriptor and HTTP/2 (and TLS) buffers. 1,000
/// stays under the soft open-file limit most systems start a process with (1,024), with room left
/// for the store's and the log's descriptors: the server refuses a connection itself instead of
/// `accept` failing with "too many open files" for everyone. gRPC clients multiplex their calls
/// over one connection (up to `max_concurrent_streams` each), so 1,000 connections carry far more
/// calls than `max_calls` lets run. Raise it together with `ulimit -n`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_000;

/// Every bound the server puts on its clients. The defaults are the README's; each is a
/// command-line flag of `courier-server`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, TLS handshakes included; see [`DEFAULT_MAX_CONNECTIONS`] for the
    /// default and why. A connection over it is accepted and closed at once with a TCP reset,
    /// before any byte of HTTP/2: a gRPC client sees UNAVAILABLE. The count goes down when a
    /// connection's socket is closed.
    pub max_connections: usize,
    /// Largest message accepted or sent, in bytes, also after decompression.
    pub max_message_bytes: usize,
    /// Concurrent HTTP/2 streams per connection (tonic's default is unlimited).
    pub max_concurrent_streams: u32,
    /// Streams a connection may make the server reset before it is closed (tonic's default is
    /// unlimited; this is the rapid-reset defence).
    pub max_local_error_reset_streams: usize,
    /// Largest request header list, in bytes.
    pub max_header_list_bytes: u32,
    /// Calls being handled at once per connection; more are shed with RESOURCE_EXHAUSTED.
    pub max_calls_per_connection: usize,
    /// Calls being handled at once across the server; more are shed with RESOURCE_EXHAUSTED.
    pub max_calls: usize,
    /// Open ReceiveMessage and Chat streams across the server; more get RESOURCE_EXHAUSTED.
    pub max_open_streams: usize,
    /// Messages waiting for one user; a full queue answers RESOURCE_EXHAUSTED.
    pub max_queued_per_user: usize,
    /// Longest a handler may take to answer; tonic then answers CANCELLED ("Timeout expired").
    /// A shorter `grpc-timeout` from the client wins. Streams only need to start within it.
    pub call_timeout: Duration,
    /// Interval of HTTP/2 pings on idle connections.
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// TCP keepalive on accepted sockets.
    pub tcp_keepalive: Duration,
    /// Longest a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Connections are gracefully closed (GOAWAY) after this age, so clients rebalance.
    pub max_connection_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 256,
            max_local_error_reset_streams: 1024,
            max_header_list_bytes: 16 * 1024,
            max_calls_per_connection: 256,
            max_calls: 4096,
            max_open_streams: 10_000,
            max_queued_per_user: 10_000,
            call_timeout: Duration::from_secs(30),
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(60 * 60),
        }
    }
}
