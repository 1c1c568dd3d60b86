//! `courier-client`: a client library and CLI for the Courier services over `courier-proto`.
//!
//! - [`Connection`] opens a channel (plaintext, TLS or mutual TLS) and wraps every call in
//!   [`CallMetadata`], the interceptor that adds the bearer token, a request id and any extra
//!   metadata to each request.
//! - [`demo`] plays the original tutorial's scenarios against any server of the contract and
//!   checks every answer.
//! - [`ClientError`] and [`RpcError`] keep what caused them as their
//!   [`source`](std::error::Error::source), for [`courier_common::Chain`] to show them all.
//!
//! The names Courier shares with its server (generated types, metadata keys, the user-name
//! rule) come from `courier-common`. The `courier-client` binary only parses arguments and
//! calls into this library.

pub mod demo;

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

use courier_common::metadata;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// The generated types and stubs, as `courier-common` names them; re-exported for the
/// programs built on this client (the bench harness, the server's tests).
pub use courier_common::pb;

/// Where and how to connect.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `http://host:port` or `https://host:port`.
    pub addr: String,
    /// CA to trust for the server's certificate (PEM); implies TLS.
    pub ca: Option<PathBuf>,
    /// Name to verify the server's certificate against, when not the host in `addr`.
    pub domain: Option<String>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Why a connection could not be made or a metadata entry not be used. Each variant that has a
/// cause keeps it as its [`source`](std::error::Error::source) rather than in its message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A PEM file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The address is not a URI tonic can connect to.
    #[error("invalid address {addr:?}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// Why tonic refused it.
        #[source]
        source: tonic::transport::Error,
    },
    /// The TLS settings were refused.
    #[error("invalid TLS settings for {addr}")]
    Tls {
        /// The address they were for.
        addr: String,
        /// Why tonic refused them.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server could not be reached, or the TLS handshake with it failed.
    #[error("cannot connect to {addr}")]
    Transport {
        /// The address connected to.
        addr: String,
        /// What went wrong, down to the OS error when there is one.
        #[source]
        source: tonic::transport::Error,
    },
    /// A `-H key:value` entry is not valid gRPC metadata.
    #[error("invalid metadata {0:?}: {1}")]
    Metadata(String, &'static str),
}

/// A failed call, shown as `Code: message`. Its [`source`](std::error::Error::source) is what
/// the status itself was made from, when tonic kept it (a transport error, say).
#[derive(Debug)]
pub struct RpcError(pub Status);

impl From<Status> for RpcError {
    fn from(status: Status) -> Self {
        Self(status)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_status(f, &self.0)
    }
}

impl StdError for RpcError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// Writes `status` as `Code: message` (or `Code` alone when the message is empty). Not
/// `Status`'s own `Display`, which also prints the cause: here the cause is a `source`.
pub(crate) fn write_status(f: &mut fmt::Formatter<'_>, status: &Status) -> fmt::Result {
    write!(f, "{:?}", status.code())?;
    if !status.message().is_empty() {
        write!(f, ": {}", status.message())?;
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::ReadFile {
        path: path.display().to_string(),
        source,
    })
}

/// One extra metadata entry for every call, text or binary (`-bin` keys).
#[derive(Clone, Debug)]
pub enum ExtraMetadata {
    /// A text entry.
    Ascii(AsciiMetadataKey, AsciiMetadataValue),
    /// A binary entry; its key ends in `-bin`.
    Binary(BinaryMetadataKey, Vec<u8>),
}

impl ExtraMetadata {
    /// Parses `key:value`; for a `-bin` key the value is base64 (as grpcurl takes it).
    pub fn parse(entry: &str) -> Result<Self, ClientError> {
        use base64::Engine as _;
        let invalid = |reason| ClientError::Metadata(entry.to_owned(), reason);
        let (key, value) = entry
            .split_once(':')
            .ok_or_else(|| invalid("expected key:value"))?;
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        if key.ends_with("-bin") {
            let key =
                BinaryMetadataKey::from_bytes(key.as_bytes()).map_err(|_| invalid("bad key"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value)
                .map_err(|_| invalid("a -bin value must be base64"))?;
            Ok(Self::Binary(key, bytes))
        } else {
            let key =
                AsciiMetadataKey::from_bytes(key.as_bytes()).map_err(|_| invalid("bad key"))?;
            let value = value
                .parse()
                .map_err(|_| invalid("value must be printable ASCII"))?;
            Ok(Self::Ascii(key, value))
        }
    }

    /// The [`from`](courier_common::metadata::FROM) entry naming the caller, which servers
    /// without authentication (the original tutorial's) go by.
    pub fn caller(user: &str) -> Result<Self, ClientError> {
        let value = user.parse().map_err(|_| {
            ClientError::Metadata(
                format!("{}:{user}", metadata::FROM),
                "not a valid metadata value",
            )
        })?;
        Ok(Self::Ascii(
            AsciiMetadataKey::from_static(metadata::FROM),
            value,
        ))
    }
}

/// Adds the bearer token, a fresh request id (unless one is set) and extra metadata to every
/// call, whatever its kind.
#[derive(Clone, Debug, Default)]
pub struct CallMetadata {
    authorization: Option<AsciiMetadataValue>,
    extra: Vec<ExtraMetadata>,
}

impl CallMetadata {
    /// Metadata carrying `token` (if any) and `extra`.
    pub fn new(token: Option<&str>, extra: Vec<ExtraMetadata>) -> Result<Self, ClientError> {
        let authorization = token
            .map(|token| {
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ClientError::Metadata("token".into(), "must be printable ASCII"))
            })
            .transpose()?;
        Ok(Self {
            authorization,
            extra,
        })
    }
}

impl tonic::service::Interceptor for CallMetadata {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let entries = request.metadata_mut();
        for entry in &self.extra {
            match entry {
                ExtraMetadata::Ascii(key, value) => {
                    entries.insert(key.clone(), value.clone());
                }
                ExtraMetadata::Binary(key, bytes) => {
                    entries.insert_bin(key.clone(), MetadataValue::from_bytes(bytes));
                }
            }
        }
        if let Some(authorization) = &self.authorization {
            entries.insert("authorization", authorization.clone());
        }
        if !entries.contains_key(metadata::REQUEST_ID) {
            let id = uuid::Uuid::new_v4().to_string();
            entries.insert(metadata::REQUEST_ID, id.parse().expect("a uuid is ASCII"));
        }
        Ok(request)
    }
}

/// A channel whose calls all go through [`CallMetadata`].
pub type AuthedChannel = InterceptedService<Channel, CallMetadata>;

/// An open channel to a Courier server.
#[derive(Clone, Debug)]
pub struct Connection {
    channel: Channel,
}

impl Connection {
    /// Connects as `options` say (TLS when a CA is given or the address is `https://`).
    pub async fn open(options: &ConnectOptions) -> Result<Self, ClientError> {
        let addr = &options.addr;
        let mut endpoint =
            Endpoint::from_shared(addr.clone()).map_err(|source| ClientError::InvalidAddress {
                addr: addr.clone(),
                source,
            })?;
        if options.ca.is_some() || addr.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &options.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some(domain) = &options.domain {
                tls = tls.domain_name(domain.clone());
            }
            if let Some((cert, key)) = &options.identity {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|source| ClientError::Tls {
                    addr: addr.clone(),
                    source,
                })?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Transport {
                addr: addr.clone(),
                source,
            })?;
        Ok(Self { channel })
    }

    /// The channel with `metadata` added to every call.
    pub fn with(&self, metadata: CallMetadata) -> AuthedChannel {
        InterceptedService::new(self.channel.clone(), metadata)
    }

    /// A SayHelloService client.
    pub fn hello(
        &self,
        metadata: CallMetadata,
    ) -> pb::hello::say_hello_service_client::SayHelloServiceClient<AuthedChannel> {
        pb::hello::say_hello_service_client::SayHelloServiceClient::new(self.with(metadata))
    }

    /// A MessageService client.
    pub fn messages(
        &self,
        metadata: CallMetadata,
    ) -> pb::message::message_service_client::MessageServiceClient<AuthedChannel> {
        pb::message::message_service_client::MessageServiceClient::new(self.with(metadata))
    }

    /// A ChatService client.
    pub fn chat(
        &self,
        metadata: CallMetadata,
    ) -> pb::chat::chat_service_client::ChatServiceClient<AuthedChannel> {
        pb::chat::chat_service_client::ChatServiceClient::new(self.with(metadata))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor as _;

    #[tokio::test]
    async fn a_refused_connection_keeps_its_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = Connection::open(&ConnectOptions {
            addr: addr.clone(),
            ..ConnectOptions::default()
        })
        .await
        .unwrap_err();
        assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
        assert_eq!(error.to_string(), format!("cannot connect to {addr}"));
        let chain = courier_common::Chain(&error).to_string();
        assert!(chain.contains("Connection refused"), "{chain}");
    }

    #[test]
    fn a_failed_call_shows_code_and_message() {
        let error = RpcError::from(Status::not_found("no such user"));
        assert_eq!(error.to_string(), "NotFound: no such user");
        assert_eq!(
            RpcError::from(Status::cancelled("")).to_string(),
            "Cancelled"
        );
    }

    #[test]
    fn the_caller_entry_is_from() {
        match ExtraMetadata::caller("jack").unwrap() {
            ExtraMetadata::Ascii(key, value) => {
                assert_eq!((key.as_str(), value.to_str().unwrap()), ("from", "jack"))
            }
            other => panic!("{other:?}"),
        }
        assert!(ExtraMetadata::caller("ja\nck").is_err());
    }

    #[test]
    fn metadata_entries_parse_text_and_binary() {
        match ExtraMetadata::parse("X-Trace: abc").unwrap() {
            ExtraMetadata::Ascii(key, value) => {
                assert_eq!((key.as_str(), value.to_str().unwrap()), ("x-trace", "abc"))
            }
            other => panic!("{other:?}"),
        }
        match ExtraMetadata::parse("x-blob-bin:AAH/").unwrap() {
            ExtraMetadata::Binary(key, bytes) => {
                assert_eq!((key.as_str(), bytes), ("x-blob-bin", vec![0, 1, 255]))
            }
            other => panic!("{other:?}"),
        }
        assert!(ExtraMetadata::parse("no-colon").is_err());
        assert!(ExtraMetadata::parse("x-blob-bin:not base64!").is_err());
    }

    #[test]
    fn every_call_gets_token_and_a_request_id() {
        let mut interceptor = CallMetadata::new(Some("secret"), vec![]).unwrap();
        let first = interceptor.call(Request::new(())).unwrap();
        let second = interceptor.call(Request::new(())).unwrap();
        assert_eq!(
            first.metadata().get("authorization").unwrap(),
            "Bearer secret"
        );
        assert_ne!(
            first.metadata().get(metadata::REQUEST_ID),
            second.metadata().get(metadata::REQUEST_ID)
        );
        let mut given = Request::new(());
        given
            .metadata_mut()
            .insert(metadata::REQUEST_ID, "mine".parse().unwrap());
        assert_eq!(
            interceptor
                .call(given)
                .unwrap()
                .metadata()
                .get(metadata::REQUEST_ID)
                .unwrap(),
            "mine"
        );
    }
}
