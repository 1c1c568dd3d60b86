//! TLS on accepted connections, done here rather than by tonic: tonic's server offers only
//! `h2` in ALPN, and rustls refuses a client that offers only `http/1.1` (RFC 7301's
//! `no_application_protocol`), so gRPC-Web over HTTP/1.1 with TLS would fail for every such
//! client (`curl --http1.1`, most HTTP libraries forced to HTTP/1.1). Here ALPN offers `h2`
//! first, then `http/1.1`; hyper serves whichever was agreed (or sniffs the first bytes when the
//! client used no ALPN).
//!
//! Otherwise this does what tonic did (tonic 0.14.9, `transport/server/io_stream.rs` and
//! `service/tls.rs`): the same rustls with ring, TLS 1.2 and 1.3, the certificate chain and key
//! from PEM, client certificates checked against `--client-ca` when given (mutual TLS), each
//! handshake in a task of its own, cut off after `--tls-handshake-timeout`, and a failed one
//! logged at debug and dropped. tonic still sees a [`TlsStream`] of a TCP socket and puts the
//! same `TlsConnectInfo` (addresses and peer certificates) into every request.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::TlsFiles;

/// The protocols ALPN offers, in the server's order of preference.
pub(crate) const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// At most this many accepted connections are taken at once before the handshakes that ended
/// are handed on, so that a flood of connections cannot hold them back.
const ACCEPT_BATCH: usize = 32;

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A certificate file holds no PEM certificate, or a malformed one.
    #[error("{} holds no PEM certificate", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[error("{} holds no PEM private key", path.display())]
    Key {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate chain and key (a key it cannot parse, or one that is not
    /// the certificate's).
    #[error("rustls cannot use {} with {}", key.display(), cert.display())]
    Identity {
        /// The certificate chain's file.
        cert: PathBuf,
        /// The key's file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the protocol versions (it never should).
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// The client CA cannot verify client certificates.
    #[error("the client CA cannot be used")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// The certificates in the PEM `pem` read from `path`.
fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsConfigError::Certificate {
            path: path.to_owned(),
        })?;
    if certificates.is_empty() {
        return Err(TlsConfigError::Certificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// The rustls configuration, ALPN included, for the PEM contents of `files`: the certificate
/// chain `cert`, the private key `key` and the client CA `client_ca`.
pub(crate) fn server_config(
    files: &TlsFiles,
    cert: &[u8],
    key: &[u8],
    client_ca: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match (client_ca, &files.client_ca) {
        (Some(ca), Some(path)) => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(certificates(ca, path)?);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let chain = certificates(cert, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsConfigError::Key {
        path: files.key.clone(),
    })?;
    let mut config =
        builder
            .with_single_cert(chain, key)
            .map_err(|source| TlsConfigError::Identity {
                cert: files.cert.clone(),
                key: files.key.clone(),
                source,
            })?;
    config.alpn_protocols = ALPN_PROTOCOLS
        .iter()
        .map(|protocol| protocol.to_vec())
        .collect();
    Ok(Arc::new(config))
}

/// The connections of `incoming` once their TLS handshakes under `config` succeed, each within
/// `timeout`; see the [module](self).
pub(crate) fn handshakes<S, IO>(
    incoming: S,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Handshakes<S, IO> {
    Handshakes {
        incoming: Some(incoming),
        acceptor: TlsAcceptor::from(config),
        timeout,
        pending: JoinSet::new(),
    }
}

/// The stream [`handshakes`] makes.
pub(crate) struct Handshakes<S, IO> {
    /// The accepted connections; none once they have ended.
    incoming: Option<S>,
    acceptor: TlsAcceptor,
    timeout: Duration,
    pending: JoinSet<io::Result<TlsStream<IO>>>,
}

impl<S, IO> Handshakes<S, IO>
where
    S: Stream<Item = io::Result<IO>> + Unpin,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Starts a handshake for each connection accepted, up to [`ACCEPT_BATCH`]; an error of
    /// the accepting side is handed on as it came.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let Some(incoming) = &mut self.incoming else {
            return None;
        };
        for _ in 0..ACCEPT_BATCH {
            match Pin::new(&mut *incoming).poll_next(cx) {
                Poll::Ready(Some(Ok(io))) => {
                    let accept = self.acceptor.accept(io);
                    let timeout = self.timeout;
                    self.pending.spawn(async move {
                        tokio::time::timeout(timeout, accept)
                            .await
                            .unwrap_or_else(|_| {
                                Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    "TLS handshake timed out",
                                ))
                            })
                    });
                }
                Poll::Ready(Some(Err(error))) => return Some(error),
                Poll::Ready(None) => {
                    self.incoming = None;
                    return None;
                }
                Poll::Pending => return None,
            }
        }
        // More may be waiting: come back once the handshakes that ended are handed on.
        cx.waker().wake_by_ref();
        None
    }
}

impl<S, IO> Stream for Handshakes<S, IO>
where
    S: Stream<Item = io::Result<IO>> + Unpin,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Item = io::Result<TlsStream<IO>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(error) = this.poll_accept(cx) {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            match this.pending.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Ok(tls)))) => return Poll::Ready(Some(Ok(tls))),
                Poll::Ready(Some(Ok(Err(error)))) => {
                    tracing::debug!(%error, "TLS handshake failed");
                }
                Poll::Ready(Some(Err(error))) => {
                    if error.is_panic() {
                        std::panic::resume_unwind(error.into_panic());
                    }
                }
                Poll::Ready(None) if this.incoming.is_none() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
