//! Transport limits seen from a raw HTTP/2 or TCP peer, and backpressure on a reader that never
//! reads.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Setup, TestServer, as_user, message};
use courier_client::pb::message::{ReceiveMessageRequest, SendMessageRequest};
use courier_server::Limits;
use prost::Message as _;
use tokio::io::AsyncReadExt;

fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    Bytes::from(bytes)
}

fn request(addr: SocketAddr, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

async fn h2_client(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(connection))
}

async fn server_with(limits: Limits) -> TestServer {
    TestServer::start(Setup {
        limits: Some(limits),
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn a_header_list_over_the_limit_is_refused() {
    let server = server_with(Limits {
        max_header_list_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let (client, _connection) = h2_client(server.addr).await;
    let mut client = client.ready().await.unwrap();
    let big = "x".repeat(8192);
    let request = request(server.addr, "/courier.hello.v1.SayHelloService/Hello")
        .header("x-big", big)
        .body(())
        .unwrap();
    let outcome = match client.send_request(request, true) {
        Ok((response, _)) => response.await.map(|response| response.status()),
        Err(error) => Err(error),
    };
    // hyper answers an oversized header list with 431 or a stream reset; never with a call.
    match outcome {
        Ok(status) => assert_eq!(status, http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(error) => assert!(error.is_reset() || error.is_go_away(), "{error}"),
    }
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn streams_beyond_the_per_connection_limit_are_not_served() {
    let server = server_with(Limits {
        max_concurrent_streams: 1,
        ..Limits::default()
    })
    .await;
    let (client, _connection) = h2_client(server.addr).await;
    let hello = |client: h2::client::SendRequest<Bytes>| async move {
        let mut client = client.ready().await?;
        let body = courier_client::pb::hello::HelloRequest { name: "x".into() }.encode_to_vec();
        let (response, mut send) = client.send_request(
            request(server.addr, "/courier.hello.v1.SayHelloService/Hello")
                .body(())
                .unwrap(),
            false,
        )?;
        send.send_data(grpc_frame(&body), true)?;
        response.await.map(|response| response.status())
    };
    // One full call first, so the server's SETTINGS (one stream at a time) have arrived.
    assert_eq!(hello(client.clone()).await.unwrap(), http::StatusCode::OK);
    // Hold the only stream: a SendMessage that never ends.
    let mut first = client.clone().ready().await.unwrap();
    let (_held_response, mut held) = first
        .send_request(
            request(
                server.addr,
                "/courier.message.v1.MessageService/SendMessage",
            )
            .header("from", "jack")
            .body(())
            .unwrap(),
            false,
        )
        .unwrap();
    held.send_data(Bytes::new(), false).unwrap();
    // A second stream waits for a free one (or is refused); it is never served meanwhile.
    match tokio::time::timeout(Duration::from_millis(300), hello(client.clone())).await {
        Err(_) => {}
        Ok(Err(error)) => assert_eq!(error.reason(), Some(h2::Reason::REFUSED_STREAM), "{error}"),
        Ok(Ok(status)) => panic!("a second stream was served ({status}) while the limit was one"),
    }
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_cut_off() {
    let server = TestServer::start(Setup {
        tls: true,
        limits: Some(Limits {
            tls_handshake_timeout: Duration::from_millis(500),
            ..Limits::default()
        }),
        ..Setup::default()
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0_u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buffer)).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection was not closed: {read:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(400),
        "closed too early: {elapsed:?}"
    );
    common::assert_hello_works(&server).await;
}

#[tokio::test]
async fn an_old_connection_is_closed_gracefully() {
    let server = server_with(Limits {
        max_connection_age: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let (_client, connection) = h2_client(server.addr).await;
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(closed.is_ok(), "the connection outlived its age");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_disconnected() {
    let server = server_with(Limits {
        http2_keepalive_interval: Duration::from_millis(300),
        http2_keepalive_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // A client preface and empty SETTINGS, then silence: no ACKs, no PING answers.
    use tokio::io::AsyncWriteExt;
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut sink)).await;
    assert!(
        read.is_ok(),
        "still connected after 10 s of unanswered pings"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

/// The reader that never reads gets a flow-control window's worth, not the queue: the rest stays
/// queued, and a normal reader gets it afterwards.
#[tokio::test]
async fn a_reader_that_never_reads_holds_back_only_a_window() {
    const QUEUED: usize = 5_000;
    let server = server_with(Limits {
        max_queued_per_user: QUEUED,
        ..Limits::default()
    })
    .await;
    let connection = server.connect().await;
    let content = "y".repeat(1000);
    for batch in 0..QUEUED / 500 {
        let requests: Vec<_> = (0..500)
            .map(|n| SendMessageRequest {
                message: Some(message("jack", "mike", &format!("{batch}-{n} {content}"))),
            })
            .collect();
        connection
            .messages(as_user("jack"))
            .send_message(tokio_stream::iter(requests))
            .await
            .unwrap();
    }

    let (client, _connection) = h2_client(server.addr).await;
    let mut client = client.ready().await.unwrap();
    let body = ReceiveMessageRequest {
        user: "mike".into(),
        idle_timeout: None,
        after_id: String::new(),
    };
    let (response, mut send) = client
        .send_request(
            request(
                server.addr,
                "/courier.message.v1.MessageService/ReceiveMessage",
            )
            .header("from", "mike")
            .body(())
            .unwrap(),
            false,
        )
        .unwrap();
    send.send_data(grpc_frame(&body.encode_to_vec()), true)
        .unwrap();
    let response = response.await.unwrap();
    // Never read the body; give the server time to push all it can.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(response);
    drop(client);

    let (rest, _) =
        common::receive_until_idle(&connection, "mike", "", Duration::from_millis(500)).await;
    let remaining = rest.len();
    let held = QUEUED - remaining;
    // 64 KiB of stream window and tonic's 32 KiB buffer hold about 100 messages of 1 KB.
    assert!(
        held <= 200,
        "the stuck reader took {held} of {QUEUED} messages"
    );
}

/// A raw HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HPACK header block of literal fields without indexing or Huffman coding.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

#[tokio::test]
async fn a_peer_that_makes_the_server_reset_too_many_streams_is_sent_away() {
    use tokio::io::AsyncWriteExt;
    let server = server_with(Limits {
        max_local_error_reset_streams: 5,
        ..Limits::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(h2_frame(0x4, 0, 0, &[]));
    // `connection` is forbidden in HTTP/2: each of these requests is malformed and reset.
    let malformed = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/courier.hello.v1.SayHelloService/Hello"),
        (":authority", "localhost"),
        ("connection", "close"),
    ]);
    for stream in (1..=41).step_by(2) {
        bytes.extend(h2_frame(0x1, 0x4 | 0x1, stream, &malformed));
    }
    tcp.write_all(&bytes).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the connection stayed open");
    // Walk the frames the server sent and find its GOAWAY.
    let mut goaway = None;
    let mut at = 0;
    while at + 9 <= received.len() {
        let length =
            u32::from_be_bytes([0, received[at], received[at + 1], received[at + 2]]) as usize;
        if received[at + 3] == 0x7 && at + 9 + 8 <= received.len() {
            let code = &received[at + 9 + 4..at + 9 + 8];
            goaway = Some(u32::from_be_bytes(code.try_into().unwrap()));
        }
        at += 9 + length;
    }
    assert_eq!(goaway, Some(0xb), "expected GOAWAY with ENHANCE_YOUR_CALM");
    common::assert_hello_works(&server).await;
}

/// Accepted sockets carry TCP keepalive: Linux lists their keepalive timer (timer type 2) in
/// /proc/net/tcp.
#[tokio::test]
async fn accepted_connections_have_tcp_keepalive() {
    let server = server_with(Limits::default()).await;
    let client = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let client_port = client.local_addr().unwrap().port();
    // A full call on it, so the server has certainly accepted it.
    let (h2, connection) = h2::client::handshake(client).await.unwrap();
    let _driver = tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    let body = courier_client::pb::hello::HelloRequest { name: "x".into() }.encode_to_vec();
    let (response, mut send) = h2
        .send_request(
            request(server.addr, "/courier.hello.v1.SayHelloService/Hello")
                .body(())
                .unwrap(),
            false,
        )
        .unwrap();
    send.send_data(grpc_frame(&body), true).unwrap();
    assert_eq!(response.await.unwrap().status(), http::StatusCode::OK);
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let server_side = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| {
            let port =
                |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
            port(fields[1]) == server.addr.port() && port(fields[2]) == client_port
        })
        .expect("the server's socket for this connection");
    let timer = server_side[5].split(':').next().unwrap();
    assert_eq!(
        timer, "02",
        "timer of the server's socket: {}",
        server_side[5]
    );
}
