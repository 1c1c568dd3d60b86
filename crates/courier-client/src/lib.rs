//! `courier-client`: a client library and CLI for the Courier services over `courier-proto`.
//!
//! - [`Connection`] opens a channel (plaintext, TLS or mutual TLS) and wraps every call in
//!   [`CallMetadata`], the interceptor that adds the bearer token, a request id and any extra
//!   metadata to each request.
//! - [`demo`] plays the original tutorial's scenarios against any server of the contract and
//!   checks every answer.
//!
//! The `courier-client` binary only parses arguments and calls into this library.

pub mod demo;

use std::path::PathBuf;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// The generated types and stubs the client speaks, under short names.
pub mod pb {
    pub use courier_proto::courier::chat::v1 as chat;
    pub use courier_proto::courier::hello::v1 as hello;
    pub use courier_proto::courier::message::v1 as message;
}

/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

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

/// Why a connection could not be made or a metadata entry not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The address or TLS settings were refused, or the server could not be reached.
    #[error("cannot connect: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A `-H key:value` entry is not valid gRPC metadata.
    #[error("invalid metadata {0:?}: {1}")]
    Metadata(String, &'static str),
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
        let metadata = request.metadata_mut();
        for entry in &self.extra {
            match entry {
                ExtraMetadata::Ascii(key, value) => {
                    metadata.insert(key.clone(), value.clone());
                }
                ExtraMetadata::Binary(key, bytes) => {
                    metadata.insert_bin(key.clone(), MetadataValue::from_bytes(bytes));
                }
            }
        }
        if let Some(authorization) = &self.authorization {
            metadata.insert("authorization", authorization.clone());
        }
        if !metadata.contains_key(REQUEST_ID_HEADER) {
            let id = uuid::Uuid::new_v4().to_string();
            metadata.insert(REQUEST_ID_HEADER, id.parse().expect("a uuid is ASCII"));
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
        let mut endpoint = Endpoint::from_shared(options.addr.clone())?;
        if options.ca.is_some() || options.addr.starts_with("https://") {
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
            endpoint = endpoint.tls_config(tls)?;
        }
        Ok(Self {
            channel: endpoint.connect().await?,
        })
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
            first.metadata().get(REQUEST_ID_HEADER),
            second.metadata().get(REQUEST_ID_HEADER)
        );
        let mut given = Request::new(());
        given
            .metadata_mut()
            .insert(REQUEST_ID_HEADER, "mine".parse().unwrap());
        assert_eq!(
            interceptor
                .call(given)
                .unwrap()
                .metadata()
                .get(REQUEST_ID_HEADER)
                .unwrap(),
            "mine"
        );
    }
}
