//! `courier-server`: the Courier services over the generated `courier-proto` stubs.
//!
//! Layout, from the inside out:
//! - [`mailbox`]: the domain core, per-recipient queues; knows nothing of gRPC.
//! - [`store`]: where the queues live: redb on disk, or memory.
//! - [`auth`]: which user a bearer token belongs to.
//! - [`service`]: the gRPC edge; validates requests, calls the domain, builds responses.
//! - [`error`]: the one error enum and its mapping to `tonic::Status`.
//! - [`layers`]: tower layers around every RPC: request id, tracing span, authentication.
//! - [`logging`]: where log lines go, off the RPCs' path.
//! - [`dev_pki`]: throwaway certificates and tokens for the demo and tests.
//! - [`run`]: serves all of it, plus health and reflection, on a listener the caller bound.
//!
//! The `courier-server` binary only parses arguments, binds and calls [`run`].

pub mod auth;
pub mod dev_pki;
pub mod error;
pub mod layers;
pub mod logging;
pub mod mailbox;
pub mod service;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::validate_request::ValidateRequestHeaderLayer;

use crate::auth::TokenStore;
use crate::layers::BearerAuth;
use crate::mailbox::Mailboxes;
use crate::service::Courier;
use crate::store::{MemoryStore, RedbStore, Store};

/// The generated types and stubs the server speaks, under short names.
pub mod pb {
    pub use courier_proto::courier::chat::v1 as chat;
    pub use courier_proto::courier::hello::v1 as hello;
    pub use courier_proto::courier::message::v1 as message;
}

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

/// Everything [`run`] needs besides the listener.
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

/// Every bound the server puts on its clients. The defaults are the README's; each is a
/// command-line flag of `courier-server`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted or sent, in bytes, also after decompression (OUT_OF_RANGE).
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

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadTlsFile {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// tonic refused the configuration or failed while serving.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not load the descriptors.
    #[error(transparent)]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The message store could not be opened or flushed.
    #[error("message store: {0}")]
    Store(#[from] mailbox::MailboxError),
    /// Open calls did not finish within the grace period.
    #[error("open calls did not finish within {0:?} of shutdown")]
    ShutdownTimedOut(Duration),
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadTlsFile {
        path: path.display().to_string(),
        source,
    })
}

fn tls_config(
    files: &TlsFiles,
    handshake_timeout: Duration,
) -> Result<ServerTlsConfig, ServeError> {
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let mut config = ServerTlsConfig::new()
        .identity(identity)
        .timeout(handshake_timeout);
    if let Some(ca) = &files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// The well-known types the contract imports. Each generated descriptor set holds only its own
/// file, so reflection clients that resolve imports by file name would otherwise find nothing.
fn well_known_imports() -> prost_types::FileDescriptorSet {
    let pool = prost_reflect::DescriptorPool::global();
    let file = |name| {
        pool.get_file_by_name(name)
            .expect("prost-reflect's global pool holds the well-known types")
            .file_descriptor_proto()
            .clone()
    };
    prost_types::FileDescriptorSet {
        file: vec![
            file("google/protobuf/duration.proto"),
            file("google/protobuf/timestamp.proto"),
        ],
    }
}

/// Serves Courier on `listener` until `shutdown` completes.
///
/// On shutdown, health turns NOT_SERVING, open streams end with UNAVAILABLE, and in-flight
/// calls get `config.shutdown_grace` to finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = config.limits.clone();
    let store: Arc<dyn Store> = match &config.data_dir {
        Some(dir) => Arc::new(RedbStore::open(dir).map_err(mailbox::MailboxError::from)?),
        None => Arc::new(MemoryStore::default()),
    };
    let mailboxes = Arc::new(Mailboxes::new(store, limits.max_queued_per_user));
    let pruning = tokio::spawn(prune_periodically(Arc::clone(&mailboxes), config.retention));
    let streams_done = CancellationToken::new();
    let courier = Courier::new(
        Arc::clone(&mailboxes),
        streams_done.clone(),
        limits.max_open_streams,
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::hello::say_hello_service_server::SayHelloServiceServer<Courier>>()
        .await;
    health
        .set_serving::<pb::message::message_service_server::MessageServiceServer<Courier>>()
        .await;
    health
        .set_serving::<pb::chat::chat_service_server::ChatServiceServer<Courier>>()
        .await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::hello::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(pb::message::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(pb::chat::FILE_DESCRIPTOR_SET)
            .register_file_descriptor_set(well_known_imports())
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let mut builder = Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .concurrency_limit_per_connection(limits.max_calls_per_connection)
        .load_shed(true)
        .timeout(limits.call_timeout)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .max_connection_age(limits.max_connection_age);
    if let Some(files) = &config.tls {
        builder = builder.tls_config(tls_config(files, limits.tls_handshake_timeout)?)?;
    }
    let auth = config
        .tokens
        .clone()
        .map(|tokens| ValidateRequestHeaderLayer::custom(BearerAuth::new(tokens)));
    let layers = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(layers::trace_layer())
        .layer(PropagateRequestIdLayer::x_request_id())
        // Shed (RESOURCE_EXHAUSTED) rather than queue once max_calls are being handled.
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(limits.max_calls))
        .layer(ValidateRequestHeaderLayer::custom(
            layers::WellFormedDeadline,
        ))
        .option_layer(auth)
        .into_inner();

    let size = limits.max_message_bytes;
    let router = builder
        .layer(layers)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            pb::hello::say_hello_service_server::SayHelloServiceServer::new(courier.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(size)
                .max_encoding_message_size(size),
        )
        .add_service(
            pb::message::message_service_server::MessageServiceServer::new(courier.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(size)
                .max_encoding_message_size(size),
        )
        .add_service(
            pb::chat::chat_service_server::ChatServiceServer::new(courier)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(size)
                .max_encoding_message_size(size),
        );

    let grace = config.shutdown_grace;
    let stopping = CancellationToken::new();
    let on_shutdown = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, ending open streams");
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            for service in [
                "courier.hello.v1.SayHelloService",
                "courier.message.v1.MessageService",
                "courier.chat.v1.ChatService",
            ] {
                health
                    .set_service_status(service, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            streams_done.cancel();
            stopping.cancel();
        }
    };
    // Socket options go on the accepted sockets here: with our own listener, tonic's builder
    // settings for them would not apply.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(limits.tcp_keepalive));
    let serve = router.serve_with_incoming_shutdown(incoming, on_shutdown);
    tokio::pin!(serve);
    let outcome = tokio::select! {
        result = &mut serve => result.map_err(ServeError::from),
        () = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
            Err(ServeError::ShutdownTimedOut(grace))
        }
    };
    pruning.abort();
    mailboxes.flush()?;
    outcome
}

/// Removes expired messages now and then: every tenth of the retention period, at most hourly.
async fn prune_periodically(mailboxes: Arc<Mailboxes>, retention: Duration) {
    let mut ticks = tokio::time::interval((retention / 10).min(Duration::from_secs(60 * 60)));
    loop {
        ticks.tick().await;
        // On a blocking thread: pruning writes to the disk.
        let pruning = Arc::clone(&mailboxes);
        match tokio::task::spawn_blocking(move || pruning.prune(retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "pruned expired messages"),
            Ok(Err(error)) => tracing::error!(%error, "pruning failed"),
            Err(error) => tracing::error!(%error, "pruning panicked"),
        }
    }
}
