//! Raw HTTP/2 and gRPC framing, for input that must be wrong in exactly one way: gRPC calls
//! over the `h2` client with hand-made frames, and HTTP/2 frames written straight to TCP.

use std::net::SocketAddr;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tonic::Code;

pub(crate) const HELLO: &str = "/courier.hello.v1.SayHelloService/Hello";
pub(crate) const SEND: &str = "/courier.message.v1.MessageService/SendMessage";
pub(crate) const RECEIVE: &str = "/courier.message.v1.MessageService/ReceiveMessage";

// === gRPC over the h2 client ===

/// A gRPC frame: compressed flag, big-endian length, payload. The length may lie.
pub(crate) fn grpc_frame(compressed: bool, length: u32, payload: &[u8]) -> Bytes {
    let mut bytes = vec![u8::from(compressed)];
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(payload);
    Bytes::from(bytes)
}

/// An uncompressed gRPC frame whose length is the payload's.
pub(crate) fn honest_frame(payload: &[u8]) -> Bytes {
    grpc_frame(false, payload.len().try_into().unwrap(), payload)
}

/// An HTTP/2 client over `tcp`, its connection driven by a task; the task ends when the
/// connection does.
pub(crate) async fn handshake(
    tcp: TcpStream,
) -> (SendRequest<Bytes>, JoinHandle<Result<(), h2::Error>>) {
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(connection))
}

/// An HTTP/2 client on a new connection to `addr` (see [`handshake`]).
pub(crate) async fn connect(
    addr: SocketAddr,
) -> (SendRequest<Bytes>, JoinHandle<Result<(), h2::Error>>) {
    handshake(TcpStream::connect(addr).await.unwrap()).await
}

/// A gRPC request for `path` with the required headers, plus `headers`.
pub(crate) fn request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &[u8])],
) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (key, value) in headers {
        request = request.header(*key, http::HeaderValue::from_bytes(value).unwrap());
    }
    request.body(()).unwrap()
}

/// Starts `request` on `client` once it may open a stream, and sends `body`, ending the request
/// stream with it when `end`. Errors are the stream's or the connection's (a refused stream, say).
pub(crate) async fn start(
    client: SendRequest<Bytes>,
    request: http::Request<()>,
    body: Bytes,
    end: bool,
) -> Result<(ResponseFuture, SendStream<Bytes>), h2::Error> {
    let mut client = client.ready().await?;
    let (response, mut stream) = client.send_request(request, false)?;
    stream.send_data(body, end)?;
    Ok((response, stream))
}

/// What came back: the gRPC status code and message, from a trailers-only response or the
/// trailers.
#[derive(Debug, PartialEq)]
pub(crate) struct Answer {
    pub(crate) code: Code,
    pub(crate) message: String,
}

impl Answer {
    fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        tonic::Status::from_header_map(headers).map(|status| Self {
            code: status.code(),
            message: status.message().to_owned(),
        })
    }
}

/// Reads the response to its end, discarding any messages: its gRPC status.
pub(crate) async fn answer(response: ResponseFuture) -> Result<Answer, h2::Error> {
    let (parts, mut body): (_, RecvStream) = response.await?.into_parts();
    assert_eq!(parts.status, http::StatusCode::OK, "{parts:?}");
    if let Some(answer) = Answer::from_headers(&parts.headers) {
        return Ok(answer);
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
    }
    let trailers = body.trailers().await?.expect("trailers");
    Ok(Answer::from_headers(&trailers).expect("grpc-status in the trailers"))
}

/// Sends one request over a new HTTP/2 connection with `headers` and `body`: the answer.
pub(crate) async fn call(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &[u8])],
    body: Bytes,
) -> Answer {
    let (client, _connection) = connect(addr).await;
    let (response, _stream) = start(client, request(addr, path, headers), body, true)
        .await
        .unwrap();
    answer(response).await.unwrap()
}

// === HTTP/2 frames on TCP ===

/// The client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

/// An HTTP/2 frame: length, type, flags, stream id, payload.
pub(crate) fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap();
    let mut frame = length.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The preface and an empty SETTINGS frame: the least a client must send.
pub(crate) fn client_preface() -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(h2_frame(SETTINGS, 0, 0, &[]));
    bytes
}

/// An HPACK header block of literal fields without indexing or Huffman coding.
pub(crate) fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        block.push(name.len().try_into().unwrap());
        block.extend_from_slice(name.as_bytes());
        block.push(value.len().try_into().unwrap());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// The error code of the last GOAWAY frame among the frames in `received`.
pub(crate) fn goaway_code(received: &[u8]) -> Option<u32> {
    let mut code = None;
    let mut at = 0;
    while at + 9 <= received.len() {
        let length = u32::from_be_bytes([0, received[at], received[at + 1], received[at + 2]]);
        let length = usize::try_from(length).unwrap();
        // GOAWAY's payload: last stream id (4 bytes), error code (4 bytes), debug data.
        if received[at + 3] == GOAWAY && at + 9 + 8 <= received.len() {
            let bytes = &received[at + 9 + 4..at + 9 + 8];
            code = Some(u32::from_be_bytes(bytes.try_into().unwrap()));
        }
        at += 9 + length;
    }
    code
}
