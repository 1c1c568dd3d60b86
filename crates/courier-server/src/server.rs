//! Serving: [`run`] puts the gRPC edge, the middleware, health and reflection together on a
//! listener the caller bound, and stops them on shutdown. [`Prepared::new`] checks the whole
//! configuration (TLS files included) and opens the store before anything is announced.
//!
//! One port serves gRPC over HTTP/2 and gRPC-Web over HTTP/1.1 and HTTP/2, plaintext or TLS
//! (TLS is ours, in `server/tls.rs`, so that ALPN offers `http/1.1` too). Each request meets the layers in
//! this order:
//!
//! 1. gRPC-Web and CORS ([`WebLayer`]): a gRPC-Web call becomes a gRPC call here, so every layer
//!    below sees, limits and answers it exactly as a gRPC one, and its answer is translated
//!    back (and given CORS headers for a listed origin) on the way out. gRPC passes untouched.
//! 2. The request id: set when missing, returned in the response headers.
//! 3. The call deadline ([`CallTimeoutLayer`]), inside the translation so that a gRPC-Web
//!    client reads its answer.
//! 4. Load shedding, right after the request id and deadline, so a shed call costs next to
//!    nothing; health and reflection are never shed.
//! 5. Tracing, then the status of oversized messages (inside it, so the log has the code the
//!    client gets), the check of `grpc-timeout`, and authentication.
//!
//! The connection limit applies before all of them, to the TCP connections (TLS handshakes
//! included), whatever protocol they then speak.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::validate_request::ValidateRequestHeaderLayer;

use crate::config::{Config, TlsFiles};
use crate::domain::{MailboxError, Mailboxes};
use crate::grpc::Courier;
use crate::logging::Chain;
use crate::middleware::auth::BearerAuth;
use crate::middleware::deadline::{CallTimeoutLayer, WellFormedDeadline};
use crate::middleware::trace;
use crate::middleware::web::WebLayer;
use crate::pb;
use crate::store::{MemoryStore, RedbStore, Store, StoreError};

mod connections;
mod tls;

pub use tls::TlsConfigError;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS file could not be read.
    #[error("cannot read {}", path.display())]
    ReadTlsFile {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TLS files hold no usable certificate or key.
    #[error("the TLS configuration was refused")]
    Tls(#[source] TlsConfigError),
    /// tonic failed while serving.
    #[error("serving failed")]
    Transport(#[from] tonic::transport::Error),
    /// The reflection service could not load the descriptors.
    #[error("reflection could not load the descriptors")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The message store could not be opened.
    #[error("cannot open the message store")]
    OpenStore(#[source] StoreError),
    /// The message store could not be flushed at shutdown.
    #[error("cannot flush the message store")]
    Flush(#[source] MailboxError),
    /// Open calls did not finish within the grace period.
    #[error("open calls did not finish within {0:?} of shutdown")]
    ShutdownTimedOut(Duration),
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadTlsFile {
        path: path.to_owned(),
        source,
    })
}

fn tls_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, ServeError> {
    let cert = read(&files.cert)?;
    let key = read(&files.key)?;
    let client_ca = files.client_ca.as_deref().map(read).transpose()?;
    tls::server_config(files, &cert, &key, client_ca.as_deref()).map_err(ServeError::Tls)
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

/// A configuration checked as a whole, TLS files read and parsed, and the store opened: what is
/// left can only fail while serving. Build it before binding and announcing.
pub struct Prepared {
    config: Config,
    tls: Option<Arc<ServerConfig>>,
    store: Arc<dyn Store>,
}

impl Prepared {
    /// Checks `config` and opens its store. Nothing is created on disk before the TLS files
    /// have been read and accepted.
    pub fn new(config: Config) -> Result<Self, ServeError> {
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let store: Arc<dyn Store> = match &config.data_dir {
            Some(dir) => Arc::new(RedbStore::open(dir).map_err(ServeError::OpenStore)?),
            None => Arc::new(MemoryStore::default()),
        };
        Ok(Self { config, tls, store })
    }

    /// Serves on `listener` until `shutdown` completes; see [`run`].
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        serve(self, listener, shutdown).await
    }
}

/// Serves Courier on `listener` until `shutdown` completes: [`Prepared::new`], then
/// [`Prepared::serve`].
///
/// On shutdown, health turns NOT_SERVING and its Watch streams end, open streams end with
/// UNAVAILABLE, and in-flight calls get `config.shutdown_grace` to finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Prepared::new(config)?.serve(listener, shutdown).await
}

async fn serve(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let Prepared { config, tls, store } = prepared;
    let limits = config.limits.clone();
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

    // No `timeout`: the call deadline is a layer of ours (see the module's doc).
    let builder = Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_keepalive_interval(Some(limits.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout))
        .max_connection_age(limits.max_connection_age);
    let auth = config
        .tokens
        .clone()
        .map(|tokens| ValidateRequestHeaderLayer::custom(BearerAuth::new(tokens)));
    // The order and why: see the module's doc.
    let layers = tower::ServiceBuilder::new()
        .layer(WebLayer::new(
            &config.cors_origins,
            limits.max_header_list_bytes,
        ))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(CallTimeoutLayer::new(limits.call_timeout))
        .layer(crate::middleware::shed::ShedLayer::new(
            limits.max_calls,
            limits.max_calls_per_connection,
        ))
        .layer(trace::trace_layer())
        // Inside the trace layer, which then logs the code the client gets.
        .layer(crate::middleware::oversized::OversizedLayer)
        .layer(ValidateRequestHeaderLayer::custom(WellFormedDeadline))
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
        let mut health = health;
        async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, ending open streams");
            let services = [
                "",
                "courier.hello.v1.SayHelloService",
                "courier.message.v1.MessageService",
                "courier.chat.v1.ChatService",
            ];
            for service in services {
                health
                    .set_service_status(service, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            // A Watch stream ends once its status's sender is gone, after handing out the
            // NOT_SERVING above; clearing the statuses drops the senders. Health then answers
            // NOT_FOUND, also to a Watch that starts later, so none can hold shutdown.
            for service in services {
                health.clear_service_status(service).await;
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
    let incoming = connections::limit(incoming, limits.max_connections);
    let serve = match tls {
        Some(tls) => {
            let incoming = tls::handshakes(incoming, tls, limits.tls_handshake_timeout);
            router
                .serve_with_incoming_shutdown(incoming, on_shutdown)
                .boxed()
        }
        None => router
            .serve_with_incoming_shutdown(incoming, on_shutdown)
            .boxed(),
    };
    tokio::pin!(serve);
    let outcome = tokio::select! {
        result = &mut serve => result.map_err(ServeError::from),
        () = async { stopping.cancelled().await; tokio::time::sleep(grace).await } => {
            Err(ServeError::ShutdownTimedOut(grace))
        }
    };
    pruning.abort();
    let flushing = Arc::clone(&mailboxes);
    match tokio::task::spawn_blocking(move || flushing.flush()).await {
        Ok(flushed) => flushed.map_err(ServeError::Flush)?,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
    outcome
}

/// Removes expired messages now and then: every tenth of the retention period, at most hourly
/// and at least a second apart (a zero period would make `interval` panic).
async fn prune_periodically(mailboxes: Arc<Mailboxes>, retention: Duration) {
    let period = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60 * 60));
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        // On a blocking thread: pruning writes to the disk.
        let pruning = Arc::clone(&mailboxes);
        match tokio::task::spawn_blocking(move || pruning.prune(retention)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "pruned expired messages"),
            Ok(Err(error)) => tracing::error!(error = %Chain(&error), "pruning failed"),
            Err(error) => tracing::error!(%error, "pruning panicked"),
        }
    }
}
