//! Transport limits seen from a raw HTTP/2 or TCP peer, and backpressure on a reader that never
//! reads.

use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_client::pb::hello::HelloRequest;
use courier_server::Limits;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::helpers::client::{receive_request, receive_until_idle, send_texts};
use crate::helpers::raw::{
    self, END_HEADERS, END_STREAM, HEADERS, HELLO, RECEIVE, SEND, client_preface, goaway_code,
    h2_frame, header_block, honest_frame,
};
use crate::helpers::server::{Setup, TestServer};

/// A Hello request body.
fn hello_body() -> Bytes {
    honest_frame(&HelloRequest { name: "x".into() }.encode_to_vec())
}

#[tokio::test]
async fn a_header_list_over_the_limit_is_refused() {
    let server = TestServer::with_limits(Limits {
        max_header_list_bytes: 4096,
        ..Limits::default()
    })
    .await;
    let (client, _connection) = raw::connect(server.addr).await;
    let mut client = client.ready().await.unwrap();
    let big = "x".repeat(8192);
    let request = raw::request(server.addr, HELLO, &[("x-big", big.as_bytes())]);
    let (response, _) = client.send_request(request, true).unwrap();
    // The server's HTTP/2 answers 431 and then resets the stream (REFUSED_STREAM); the client
    // reads the 431 first. Never a call.
    let response = response.await.unwrap();
    assert_eq!(
        response.status(),
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    server.assert_hello_works().await;
}

#[tokio::test]
async fn streams_beyond_the_per_connection_limit_are_not_served() {
    let server = TestServer::with_limits(Limits {
        max_concurrent_streams: 1,
        ..Limits::default()
    })
    .await;
    let (client, _connection) = raw::connect(server.addr).await;
    let hello = |client: h2::client::SendRequest<Bytes>| async move {
        let request = raw::request(server.addr, HELLO, &[]);
        let (response, _stream) = raw::start(client, request, hello_body(), true).await?;
        raw::answer(response).await
    };
    // One full call first, so the server's SETTINGS (one stream at a time) have arrived.
    let answer = hello(client.clone()).await.unwrap();
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
    // Hold the only stream: a SendMessage that never ends.
    let held = raw::start(
        client.clone(),
        raw::request(server.addr, SEND, &[("from", b"jack")]),
        Bytes::new(),
        false,
    )
    .await
    .unwrap();
    // A second stream waits for a free one: the h2 client honours the server's limit, so it is
    // neither sent nor refused, and never served meanwhile.
    let mut second = tokio::spawn(hello(client.clone()));
    if let Ok(outcome) = tokio::time::timeout(Duration::from_millis(300), &mut second).await {
        panic!("a second stream ended ({outcome:?}) while the limit was one and taken");
    }
    // Resetting the held stream frees the slot, and the waiting call is served.
    drop(held);
    let answer = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("served once the slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
    server.assert_hello_works().await;
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
    server.assert_hello_works().await;
}

#[tokio::test]
async fn an_old_connection_is_closed_gracefully() {
    let server = TestServer::with_limits(Limits {
        max_connection_age: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let (_client, connection) = raw::connect(server.addr).await;
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the connection outlived its age")
        .unwrap();
    // Gracefully: a GOAWAY without an error, not a reset or a dropped socket.
    closed.expect("closed with GOAWAY(NO_ERROR)");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_disconnected() {
    let server = TestServer::with_limits(Limits {
        http2_keepalive_interval: Duration::from_millis(300),
        http2_keepalive_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // A client preface and empty SETTINGS, then silence: no ACKs, no PING answers.
    tcp.write_all(&client_preface()).await.unwrap();
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
    let server = TestServer::with_limits(Limits {
        max_queued_per_user: QUEUED,
        ..Limits::default()
    })
    .await;
    let connection = server.connect().await;
    let content = "y".repeat(1000);
    for batch in 0..QUEUED / 500 {
        let texts: Vec<String> = (0..500).map(|n| format!("{batch}-{n} {content}")).collect();
        assert_eq!(
            send_texts(&connection, "jack", "mike", &texts)
                .await
                .unwrap(),
            500
        );
    }

    let (client, _connection) = raw::connect(server.addr).await;
    let request = raw::request(server.addr, RECEIVE, &[("from", b"mike")]);
    let body = honest_frame(&receive_request("mike", "", None).encode_to_vec());
    let (response, _stream) = raw::start(client, request, body, true).await.unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    // Never read the body; give the server time to push all it can.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(response);

    let (rest, _) = receive_until_idle(&connection, "mike", "", Duration::from_millis(500)).await;
    let held = QUEUED - rest.len();
    // 64 KiB of stream window and tonic's 32 KiB buffer hold about 100 messages of 1 KB.
    assert!(
        held <= 200,
        "the stuck reader took {held} of {QUEUED} messages"
    );
}

#[tokio::test]
async fn a_peer_that_makes_the_server_reset_too_many_streams_is_sent_away() {
    let server = TestServer::with_limits(Limits {
        max_local_error_reset_streams: 5,
        ..Limits::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut bytes = client_preface();
    // `connection` is forbidden in HTTP/2: each of these requests is malformed and reset.
    let malformed = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", HELLO),
        (":authority", "localhost"),
        ("connection", "close"),
    ]);
    for stream in (1..=41).step_by(2) {
        bytes.extend(h2_frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            stream,
            &malformed,
        ));
    }
    tcp.write_all(&bytes).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert_eq!(
        goaway_code(&received),
        Some(h2::Reason::ENHANCE_YOUR_CALM.into()),
        "expected GOAWAY with ENHANCE_YOUR_CALM"
    );
    server.assert_hello_works().await;
}

/// Accepted sockets carry TCP keepalive: Linux lists their keepalive timer (timer type 2) in
/// /proc/net/tcp.
#[tokio::test]
async fn accepted_connections_have_tcp_keepalive() {
    let server = TestServer::with_limits(Limits::default()).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    // A full call on it, so the server has certainly accepted it.
    let (client, _connection) = raw::handshake(tcp).await;
    let request = raw::request(server.addr, HELLO, &[]);
    let (response, _stream) = raw::start(client, request, hello_body(), true)
        .await
        .unwrap();
    let answer = raw::answer(response).await.unwrap();
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
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
