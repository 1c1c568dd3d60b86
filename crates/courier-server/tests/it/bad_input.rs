//! Bad input on the wire, sent as raw HTTP/2 so it can be wrong in exactly one way. Each case
//! gets the status the README promises (README, "Bad input"), and the server keeps serving
//! afterwards.

use std::io::Write as _;
use std::time::Duration;

use courier_client::pb::hello::HelloRequest;
use courier_client::pb::message::SendMessageRequest;
use courier_server::Limits;
use prost::Message as _;
use tonic::Code;

use crate::helpers::client::{OVERSIZED_MESSAGE, contents, message, receive_until_idle};
use crate::helpers::raw::{self, Answer, HELLO, SEND, call, grpc_frame, honest_frame};
use crate::helpers::server::{Setup, TestServer};

fn hello_request(name: &str) -> Vec<u8> {
    HelloRequest { name: name.into() }.encode_to_vec()
}

fn answer(code: Code, message: &str) -> Answer {
    Answer {
        code,
        message: message.into(),
    }
}

#[tokio::test]
async fn garbage_bytes_in_a_frame_are_internal() {
    let server = TestServer::start(Setup::default()).await;
    let garbage = honest_frame(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let answer = call(server.addr, HELLO, &[], garbage).await;
    assert_eq!(answer.code, Code::Internal, "{answer:?}");
    assert!(answer.message.contains("failed to decode"), "{answer:?}");
    server.assert_hello_works().await;
}

#[tokio::test]
async fn a_length_prefix_that_lies_is_internal() {
    let server = TestServer::start(Setup::default()).await;
    let body = grpc_frame(false, 100, &hello_request("short"));
    assert_eq!(
        call(server.addr, HELLO, &[], body).await,
        answer(Code::Internal, "Unexpected EOF decoding stream.")
    );
    server.assert_hello_works().await;
}

#[tokio::test]
async fn the_compressed_flag_without_an_encoding_is_internal() {
    let server = TestServer::start(Setup::default()).await;
    let payload = hello_request("x");
    let body = grpc_frame(true, payload.len().try_into().unwrap(), &payload);
    let answer = call(server.addr, HELLO, &[], body).await;
    assert_eq!(answer.code, Code::Internal, "{answer:?}");
    assert!(answer.message.contains("grpc-encoding"), "{answer:?}");
    server.assert_hello_works().await;
}

#[tokio::test]
async fn a_message_oversized_after_decompression_is_resource_exhausted() {
    let server = TestServer::with_limits(Limits {
        max_message_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    // 1 MiB of one repeated letter compresses to about a kilobyte: small on the wire.
    let payload = hello_request(&"a".repeat(1024 * 1024));
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&payload).unwrap();
    let compressed = gzip.finish().unwrap();
    assert!(compressed.len() < 64 * 1024);
    let body = grpc_frame(true, compressed.len().try_into().unwrap(), &compressed);
    assert_eq!(
        call(server.addr, HELLO, &[("grpc-encoding", b"gzip")], body).await,
        answer(
            Code::ResourceExhausted,
            "Error decompressing: size limit, of 65536 bytes, exceeded while decompressing message"
        )
    );
    server.assert_hello_works().await;
}

#[tokio::test]
async fn an_oversized_message_on_the_wire_is_refused() {
    let server = TestServer::with_limits(Limits {
        max_message_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let body = honest_frame(&hello_request(&"b".repeat(4096)));
    let answer = call(server.addr, HELLO, &[], body).await;
    assert_eq!(answer.code, OVERSIZED_MESSAGE, "{answer:?}");
    assert!(
        answer.message.contains("the limit is: 1024 bytes"),
        "{answer:?}"
    );
    server.assert_hello_works().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_string_field_is_internal() {
    let server = TestServer::start(Setup::default()).await;
    // Field 1 (name), wire type 2, length 2, bytes that are not UTF-8.
    let body = honest_frame(&[0x0a, 0x02, 0xc3, 0x28]);
    let answer = call(server.addr, HELLO, &[], body).await;
    assert_eq!(answer.code, Code::Internal, "{answer:?}");
    assert!(answer.message.contains("UTF-8"), "{answer:?}");
    server.assert_hello_works().await;
}

#[tokio::test]
async fn unknown_services_and_methods_are_unimplemented() {
    let server = TestServer::start(Setup::default()).await;
    for path in [
        "/courier.nothing.v1.Nope/Call",
        "/courier.hello.v1.SayHelloService/Goodbye",
    ] {
        let answer = call(server.addr, path, &[], honest_frame(&[])).await;
        assert_eq!(answer.code, Code::Unimplemented, "{path}: {answer:?}");
    }
    server.assert_hello_works().await;
}

#[tokio::test]
async fn invalid_metadata_gets_a_clear_answer() {
    let server = TestServer::start(Setup::default()).await;
    let body = honest_frame(&hello_request("x"));
    // A deadline that is not one.
    assert_eq!(
        call(
            server.addr,
            HELLO,
            &[("grpc-timeout", b"soon")],
            body.clone()
        )
        .await,
        answer(
            Code::InvalidArgument,
            "grpc-timeout: expected 1 to 8 digits and a unit (H, M, S, m, u, n)"
        )
    );
    // A caller name that is not a user name, and one that is not text.
    assert_eq!(
        call(server.addr, SEND, &[("from", b"not a user!")], body.clone()).await,
        answer(
            Code::InvalidArgument,
            "metadata from: may hold only letters, digits, '.', '_' and '-'"
        )
    );
    assert_eq!(
        call(server.addr, SEND, &[("from", b"j\xe4ck")], body).await,
        answer(Code::InvalidArgument, "metadata from: is not valid text")
    );
    server.assert_hello_works().await;
}

#[tokio::test]
async fn a_client_that_vanishes_mid_stream_takes_nothing_with_it() {
    let server = TestServer::start(Setup::default()).await;
    // Half a SendMessage stream, then the connection is dropped.
    {
        let (client, driver) = raw::connect(server.addr).await;
        let first = SendMessageRequest {
            message: Some(message("jack", "mike", "before the cut")),
        };
        let request = raw::request(server.addr, SEND, &[("from", b"jack")]);
        let body = honest_frame(&first.encode_to_vec());
        let (_response, mut stream) = raw::start(client, request, body, false).await.unwrap();
        // Half of the next frame, then gone.
        stream
            .send_data(grpc_frame(false, 50, b"partial"), false)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        driver.abort();
    }
    // What was accepted before the cut stays queued.
    let connection = server.connect().await;
    let (received, _) =
        receive_until_idle(&connection, "mike", "", Duration::from_millis(300)).await;
    assert_eq!(contents(&received), ["before the cut"]);
    server.assert_hello_works().await;
}
