//! Bad input on the wire, sent as raw HTTP/2 so it can be wrong in exactly one way. Each case
//! gets a clear status, and the server keeps serving afterwards.

mod common;

use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use common::{Setup, TestServer, message};
use courier_client::pb::hello::HelloRequest;
use courier_server::Limits;
use prost::Message as _;
use tonic::Code;

const HELLO: &str = "/courier.hello.v1.SayHelloService/Hello";
const SEND: &str = "/courier.message.v1.MessageService/SendMessage";

/// What came back: the gRPC status code and message, from the trailers or a trailers-only
/// response.
#[derive(Debug)]
struct Answer {
    code: Code,
    message: String,
}

/// A gRPC frame: compressed flag, big-endian length, payload.
fn frame(compressed: bool, length: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![u8::from(compressed)];
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

fn honest_frame(payload: &[u8]) -> Vec<u8> {
    frame(false, payload.len() as u32, payload)
}

/// Sends one request over a fresh HTTP/2 connection with `headers` and `body`, and reads the answer.
async fn call(addr: SocketAddr, path: &str, headers: &[(&str, &[u8])], body: Vec<u8>) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (key, value) in headers {
        request = request.header(*key, http::HeaderValue::from_bytes(value).unwrap());
    }
    let (response, mut stream) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    stream.send_data(Bytes::from(body), true).unwrap();
    let response = response.await.unwrap();
    let (parts, mut body) = response.into_parts();
    let status_from = |headers: &http::HeaderMap| {
        tonic::Status::from_header_map(headers).map(|status| Answer {
            code: status.code(),
            message: status.message().to_owned(),
        })
    };
    if let Some(answer) = status_from(&parts.headers) {
        return answer;
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    status_from(&trailers).expect("grpc-status in the trailers")
}

#[tokio::test]
async fn garbage_bytes_in_a_frame_are_internal() {
    let server = TestServer::start(Setup::default()).await;
    let answer = call(
        server.addr,
        HELLO,
        &[],
        honest_frame(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
    )
    .await;
    assert_eq!(answer.code, Code::Internal, "{answer:?}");
    assert!(answer.message.contains("failed to decode"), "{answer:?}");
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn a_length_prefix_that_lies_is_internal() {
    let server = TestServer::start(Setup::default()).await;
    let payload = HelloRequest {
        name: "short".into(),
    }
    .encode_to_vec();
    let answer = call(server.addr, HELLO, &[], frame(false, 100, &payload)).await;
    assert_eq!(answer.code, Code::Internal, "{answer:?}");
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn the_compressed_flag_without_an_encoding_is_internal() {
    let server = TestServer::start(Setup::default()).await;
    let payload = HelloRequest { name: "x".into() }.encode_to_vec();
    let answer = call(
        server.addr,
        HELLO,
        &[],
        frame(true, payload.len() as u32, &payload),
    )
    .await;
    assert_eq!(answer.code, Code::Internal, "{answer:?}");
    assert!(answer.message.contains("grpc-encoding"), "{answer:?}");
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn a_message_oversized_after_decompression_is_resource_exhausted() {
    let server = TestServer::start(Setup {
        limits: Some(Limits {
            max_message_bytes: 64 * 1024,
            ..Limits::default()
        }),
        ..Setup::default()
    })
    .await;
    // 1 MiB of one repeated letter compresses to about a kilobyte: small on the wire.
    let payload = HelloRequest {
        name: "a".repeat(1024 * 1024),
    }
    .encode_to_vec();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&payload).unwrap();
    let compressed = gzip.finish().unwrap();
    assert!(compressed.len() < 64 * 1024);
    let answer = call(
        server.addr,
        HELLO,
        &[("grpc-encoding", b"gzip")],
        frame(true, compressed.len() as u32, &compressed),
    )
    .await;
    assert_eq!(
        (answer.code, answer.message.as_str()),
        (
            Code::ResourceExhausted,
            "Error decompressing: size limit, of 65536 bytes, exceeded while decompressing message"
        )
    );
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn an_oversized_message_on_the_wire_is_out_of_range() {
    let server = TestServer::start(Setup {
        limits: Some(Limits {
            max_message_bytes: 1024,
            ..Limits::default()
        }),
        ..Setup::default()
    })
    .await;
    let payload = HelloRequest {
        name: "b".repeat(4096),
    }
    .encode_to_vec();
    let answer = call(server.addr, HELLO, &[], honest_frame(&payload)).await;
    assert_eq!(answer.code, Code::OutOfRange, "{answer:?}");
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_string_field_is_internal() {
    let server = TestServer::start(Setup::default()).await;
    // Field 1 (name), wire type 2, length 2, bytes that are not UTF-8.
    let answer = call(
        server.addr,
        HELLO,
        &[],
        honest_frame(&[0x0a, 0x02, 0xc3, 0x28]),
    )
    .await;
    assert_eq!(answer.code, Code::Internal, "{answer:?}");
    assert!(answer.message.contains("UTF-8"), "{answer:?}");
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn unknown_services_and_methods_are_unimplemented() {
    let server = TestServer::start(Setup::default()).await;
    let body = honest_frame(&[]);
    for path in [
        "/courier.nothing.v1.Nope/Call",
        "/courier.hello.v1.SayHelloService/Goodbye",
    ] {
        let answer = call(server.addr, path, &[], body.clone()).await;
        assert_eq!(answer.code, Code::Unimplemented, "{path}: {answer:?}");
    }
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn invalid_metadata_gets_a_clear_answer() {
    let server = TestServer::start(Setup::default()).await;
    let body = honest_frame(&HelloRequest { name: "x".into() }.encode_to_vec());
    // A deadline that is not one.
    let answer = call(
        server.addr,
        HELLO,
        &[("grpc-timeout", b"soon")],
        body.clone(),
    )
    .await;
    assert_ne!(answer.code, Code::Ok, "{answer:?}");
    // A caller name that is not a user name, and one that is not text.
    let answer = call(server.addr, SEND, &[("from", b"not a user!")], body.clone()).await;
    assert_eq!(
        (answer.code, answer.message.as_str()),
        (
            Code::InvalidArgument,
            "metadata from: may hold only letters, digits, '.', '_' and '-'"
        )
    );
    let answer = call(server.addr, SEND, &[("from", b"j\xe4ck")], body).await;
    assert_eq!(
        (answer.code, answer.message.as_str()),
        (Code::InvalidArgument, "metadata from: is not valid text")
    );
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn a_client_that_vanishes_mid_stream_takes_nothing_with_it() {
    let server = TestServer::start(Setup::default()).await;
    // Half a SendMessage stream, then the connection is dropped.
    {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{SEND}", server.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("from", "jack")
            .body(())
            .unwrap();
        let (_response, mut stream) = client.send_request(request, false).unwrap();
        let first = courier_client::pb::message::SendMessageRequest {
            message: Some(message("jack", "mike", "before the cut")),
        };
        stream
            .send_data(Bytes::from(honest_frame(&first.encode_to_vec())), false)
            .unwrap();
        // Half of the next frame, then gone.
        stream
            .send_data(Bytes::from(frame(false, 50, b"partial")), false)
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        driver.abort();
    }
    // What was accepted before the cut stays queued.
    let connection = server.connect().await;
    let (received, _) = common::receive_until_idle(
        &connection,
        "mike",
        "",
        std::time::Duration::from_millis(300),
    )
    .await;
    assert_eq!(common::contents(&received), ["before the cut"]);
    common::assert_hello_works(&server).await;
}
