//! gRPC-Web by hand, as a browser's client speaks it: frames made and read here (a message is
//! `0x00`, a big-endian `u32` length and the protobuf; the trailers come last in the body, in a
//! `0x80` frame of `name:value\r\n` lines), in binary or base64 (`-text`) form, over hyper's
//! HTTP/1.1 or HTTP/2 client connections, plaintext or TLS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tonic::Code;

use super::server::TestServer;

/// A request body: whole, or streamed from a channel.
pub(crate) type RequestBody = BoxBody<Bytes, Infallible>;

/// How a gRPC-Web body is written: binary or base64 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// `application/grpc-web+proto`.
    Binary,
    /// `application/grpc-web-text`, with `Accept: application/grpc-web-text`.
    Text,
}

impl Form {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Binary => "application/grpc-web+proto",
            Self::Text => "application/grpc-web-text",
        }
    }

    /// The content type of the server's answers in this form.
    pub(crate) fn answer_content_type(self) -> &'static str {
        match self {
            Self::Binary => "application/grpc-web+proto",
            Self::Text => "application/grpc-web-text+proto",
        }
    }

    /// `bytes` written in this form.
    pub(crate) fn encode(self, bytes: &[u8]) -> Bytes {
        match self {
            Self::Binary => Bytes::copy_from_slice(bytes),
            Self::Text => Bytes::from(BASE64.encode(bytes)),
        }
    }
}

/// A message frame: flag 0, the length, the payload.
pub(crate) fn message_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Decodes base64 the way gRPC-Web text is sent: each chunk the server wrote is padded on its
/// own, so the text is read four characters at a time.
fn decode_text(text: &[u8]) -> Vec<u8> {
    assert!(
        text.len().is_multiple_of(4),
        "base64 text of {} characters",
        text.len()
    );
    text.chunks(4)
        .flat_map(|quantum| {
            BASE64
                .decode(quantum)
                .unwrap_or_else(|error| panic!("bad base64 {quantum:?}: {error}"))
        })
        .collect()
}

/// What came back: the HTTP status and headers, and the body read to its end as gRPC-Web.
#[derive(Debug)]
pub(crate) struct WebAnswer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// The payloads of the message frames, in order.
    pub(crate) messages: Vec<Bytes>,
    /// The trailers frame, if the body ended with one.
    pub(crate) trailers: Option<HeaderMap>,
}

impl WebAnswer {
    /// Reads `response` to its end. A `-text` answer is decoded from base64; every frame must be
    /// whole, messages before the one trailers frame.
    pub(crate) async fn read(response: Response<Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let text = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc-web-text"));
        let body = if text {
            Bytes::from(decode_text(&body))
        } else {
            body
        };
        let (messages, trailers) = frames(body);
        Self {
            status: parts.status,
            headers: parts.headers,
            messages,
            trailers,
        }
    }

    /// The gRPC status: from the trailers frame, or from the headers of a trailers-only answer.
    pub(crate) fn grpc_status(&self) -> (Code, String) {
        let source = self.trailers.as_ref().unwrap_or(&self.headers);
        let status = tonic::Status::from_header_map(source)
            .unwrap_or_else(|| panic!("no grpc-status in {self:?}"));
        (status.code(), status.message().to_owned())
    }

    /// A header of the answer, as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// A trailer of the trailers frame, as text.
    pub(crate) fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .as_ref()?
            .get(name)
            .map(|value| value.to_str().unwrap())
    }

    /// The names of the `access-control-*` headers of the answer.
    pub(crate) fn cors_headers(&self) -> Vec<&str> {
        self.headers
            .keys()
            .map(http::HeaderName::as_str)
            .filter(|name| name.starts_with("access-control-"))
            .collect()
    }
}

/// The message payloads and the trailers of a gRPC-Web body.
fn frames(mut body: Bytes) -> (Vec<Bytes>, Option<HeaderMap>) {
    let mut messages = Vec::new();
    let mut trailers = None;
    while !body.is_empty() {
        assert!(body.len() >= 5, "a partial frame header: {body:?}");
        let flag = body[0];
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap());
        let length = usize::try_from(length).unwrap();
        assert!(body.len() >= 5 + length, "a partial frame: {body:?}");
        let payload = body.slice(5..5 + length);
        body = body.slice(5 + length..);
        assert!(
            trailers.is_none(),
            "a frame after the trailers: {payload:?}"
        );
        match flag {
            0x00 => messages.push(payload),
            0x80 => trailers = Some(trailer_block(&payload)),
            other => panic!("a frame with flag {other:#x}"),
        }
    }
    (messages, trailers)
}

/// The `name:value\r\n` lines of a trailers frame.
fn trailer_block(block: &[u8]) -> HeaderMap {
    let text = std::str::from_utf8(block).unwrap();
    let mut trailers = HeaderMap::new();
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        trailers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    trailers
}

/// A gRPC-Web call to `path` in `form` with `frames` (unencoded) as its body, plus `headers`.
pub(crate) fn web_request(
    path: &str,
    form: Form,
    frames: &[u8],
    headers: &[(&str, &str)],
) -> Request<RequestBody> {
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", form.content_type())
        .header("x-grpc-web", "1");
    if form == Form::Text {
        request = request.header("accept", "application/grpc-web-text");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(whole(form.encode(frames))).unwrap()
}

/// A whole request body.
pub(crate) fn whole(bytes: impl Into<Bytes>) -> RequestBody {
    Full::new(bytes.into()).boxed()
}

enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

/// One client connection, HTTP/1.1 or HTTP/2, plaintext or TLS.
pub(crate) struct WebClient {
    sender: Sender,
    /// `scheme://host:port`, for HTTP/2's absolute URIs.
    base: String,
    /// `host:port`, for HTTP/1.1's `Host`.
    authority: String,
    /// The protocol ALPN agreed on, if any.
    pub(crate) alpn: Option<Vec<u8>>,
    connection: JoinHandle<()>,
}

impl Drop for WebClient {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl WebClient {
    /// HTTP/1.1 over a new plaintext connection.
    pub(crate) async fn http1(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Self::over(tcp, false, "http", addr, None).await
    }

    /// HTTP/2 (prior knowledge) over a new plaintext connection.
    pub(crate) async fn http2(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Self::over(tcp, true, "http", addr, None).await
    }

    /// A new TLS connection to `server` (trusting its test CA, for `localhost`) offering `alpn`
    /// (nothing when empty); HTTP/2 if ALPN agreed on `h2`, else HTTP/1.1.
    pub(crate) async fn tls(server: &TestServer, alpn: &[&[u8]]) -> Self {
        let tls = tls_connect(server, alpn).await.unwrap();
        let agreed = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let http2 = agreed.as_deref() == Some(b"h2");
        Self::over(tls, http2, "https", server.addr, agreed).await
    }

    async fn over<IO>(
        io: IO,
        http2: bool,
        scheme: &str,
        addr: SocketAddr,
        alpn: Option<Vec<u8>>,
    ) -> Self
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let (sender, connection) = if http2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
            let connection = tokio::spawn(async move {
                let _ = connection.await;
            });
            (Sender::Http2(sender), connection)
        } else {
            let (sender, connection) = http1::handshake(io).await.unwrap();
            let connection = tokio::spawn(async move {
                let _ = connection.await;
            });
            (Sender::Http1(sender), connection)
        };
        Self {
            sender,
            base: format!("{scheme}://{addr}"),
            authority: addr.to_string(),
            alpn,
            connection,
        }
    }

    /// Sends `request` (its URI a path) on this connection.
    pub(crate) async fn send(
        &mut self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match &mut self.sender {
            Sender::Http1(sender) => {
                request
                    .headers_mut()
                    .insert("host", self.authority.parse().unwrap());
                sender.ready().await?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                let uri = format!("{}{}", self.base, request.uri());
                *request.uri_mut() = uri.parse().unwrap();
                *request.version_mut() = http::Version::HTTP_2;
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }

    /// Sends `request` and reads the answer to its end.
    pub(crate) async fn call(&mut self, request: Request<RequestBody>) -> WebAnswer {
        WebAnswer::read(self.send(request).await.unwrap()).await
    }

    /// Whether the connection has closed.
    pub(crate) fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }
}

/// A TLS connection to `server` offering `alpn`: the stream, or the handshake's error.
pub(crate) async fn tls_connect(
    server: &TestServer,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let ca = server
        .pki_dir
        .as_ref()
        .expect("a TLS server")
        .path()
        .join("ca.pem");
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}
