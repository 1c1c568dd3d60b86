//! What the middleware answers on the wire: health and reflection while calls are being shed,
//! shed calls counted in the log, and RESOURCE_EXHAUSTED for a message over
//! `--max-message-bytes` in either direction, on every kind of call.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_client::Connection;
use courier_server::Limits;
use tonic::Code;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::client::{
    as_user, busy_call, chat_line, hello, message, metadata, open_chat, open_receive, send_texts,
    sends, shed_hello,
};
use crate::helpers::server::TestServer;

async fn health_check(connection: &Connection) -> Result<i32, tonic::Status> {
    let mut health = HealthClient::new(connection.with(metadata(None, &[])));
    let request = HealthCheckRequest {
        service: "courier.hello.v1.SayHelloService".into(),
    };
    Ok(health.check(request).await?.into_inner().status)
}

async fn reflected_services(connection: &Connection) -> Result<Vec<String>, tonic::Status> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(connection.with(metadata(None, &[])));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    match answers
        .message()
        .await?
        .and_then(|answer| answer.message_response)
    {
        Some(MessageResponse::ListServicesResponse(list)) => Ok(list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect()),
        other => panic!("expected a list of services, got {other:?}"),
    }
}

#[tokio::test]
async fn health_and_reflection_answer_while_calls_are_shed() {
    let by_server = Limits {
        max_calls: 1,
        ..Limits::default()
    };
    let by_connection = Limits {
        max_calls_per_connection: 1,
        ..Limits::default()
    };
    for (limits, shed_message) in [
        (by_server, courier_server::middleware::shed::SERVER_BUSY),
        (
            by_connection,
            courier_server::middleware::shed::CONNECTION_BUSY,
        ),
    ] {
        let server = TestServer::with_limits(limits).await;
        let connection = server.connect().await;
        let (finish, call) = busy_call(&connection).await;
        let status = shed_hello(&connection).await;
        assert_eq!(
            (status.code(), status.message()),
            (Code::ResourceExhausted, shed_message)
        );
        for _ in 0..3 {
            let health = health_check(&connection).await.expect(shed_message);
            assert_eq!(health, ServingStatus::Serving as i32);
            let services = reflected_services(&connection).await.expect(shed_message);
            assert!(
                services.contains(&"courier.chat.v1.ChatService".to_owned()),
                "{services:?}"
            );
        }
        drop(finish);
        assert_eq!(call.await.unwrap().unwrap(), 1);
        server.assert_hello_works().await;
    }
}

/// Log lines written on this thread, as the server formats them (without colours).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

// On this test's single thread, the server runs under the subscriber set here.
#[tokio::test(flavor = "current_thread")]
async fn shed_calls_are_counted_in_the_log() {
    // With a single dispatcher registered, tracing asks the default of whichever thread reaches
    // a call site first whether it is of interest, for all threads: another test's thread,
    // without a subscriber, would switch the report off for this one. A second one prevents it.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let log = Log::default();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish(),
    );
    let server = TestServer::with_limits(Limits {
        max_calls: 1,
        ..Limits::default()
    })
    .await;
    let connection = server.connect().await;
    let (finish, _call) = busy_call(&connection).await;
    shed_hello(&connection).await;
    for _ in 0..4 {
        hello(&connection, "shed").await.unwrap_err();
    }
    drop(finish);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !log.text().contains("calls since the last report") {
        assert!(tokio::time::Instant::now() < deadline, "{}", log.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reports come at most once a second: wait for the one after the first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reports: Vec<_> = log
        .text()
        .lines()
        .filter(|line| line.contains("calls since the last report"))
        .map(str::to_owned)
        .collect();
    let total: u64 = reports
        .iter()
        .map(|line| {
            let count = line
                .split("shed ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            count.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(total, 5, "{reports:#?}");
    assert!(
        reports.iter().all(|line| line.contains(" INFO ")),
        "{reports:#?}"
    );
    assert!(
        reports.last().unwrap().contains("(total 5)"),
        "{reports:#?}"
    );
}

/// A server refusing messages over 1024 bytes, and a connection to it.
async fn small_messages(max_message_bytes: usize) -> (TestServer, Connection) {
    let server = TestServer::with_limits(Limits {
        max_message_bytes,
        ..Limits::default()
    })
    .await;
    let connection = server.connect().await;
    (server, connection)
}

fn assert_oversized(status: &tonic::Status, limit: usize) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("the limit is: {limit} bytes")),
        "{status:?}"
    );
}

#[tokio::test]
async fn an_oversized_hello_is_resource_exhausted() {
    let (server, connection) = small_messages(1024).await;
    let status = hello(&connection, &"x".repeat(2000)).await.unwrap_err();
    assert_oversized(&status, 1024);
    server.assert_hello_works().await;
}

#[tokio::test]
async fn an_oversized_message_sent_is_resource_exhausted() {
    let (server, connection) = small_messages(1024).await;
    let messages = [
        message("jack", "mike", "fits"),
        message("jack", "mike", &"x".repeat(2000)),
    ];
    let status = connection
        .messages(as_user("jack"))
        .send_message(sends(&messages))
        .await
        .unwrap_err();
    assert_oversized(&status, 1024);
    // Like any other refusal mid-stream: what came before stays queued, and says so.
    assert_eq!(status.metadata().get("x-message-count").unwrap(), "1");
    assert!(
        status
            .message()
            .ends_with("(1 earlier messages of this stream were queued)"),
        "{status:?}"
    );
    server.assert_hello_works().await;
}

#[tokio::test]
async fn an_oversized_chat_message_ends_the_chat_with_resource_exhausted_and_the_count() {
    let (server, connection) = small_messages(1024).await;
    send_texts(&connection, "mike", "jack", &["waiting for jack".into()])
        .await
        .unwrap();
    let (outbound, response) = open_chat(&connection, as_user("jack")).await.unwrap();
    let mut inbound = response.into_inner();
    let first = inbound.message().await.unwrap().unwrap().message.unwrap();
    assert_eq!(first.content, "waiting for jack");
    outbound
        .send(chat_line("jack", "mike", &"x".repeat(2000)))
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), inbound.message())
        .await
        .expect("the chat ends")
        .expect_err("the chat ends with the oversized message's status");
    assert_oversized(&status, 1024);
    assert_eq!(status.metadata().get("x-message-count").unwrap(), "1");
    server.assert_hello_works().await;
}

#[tokio::test]
async fn an_oversized_response_is_resource_exhausted() {
    // A 92-byte request whose 105-byte answer is over the limit.
    let (server, connection) = small_messages(100).await;
    let status = hello(&connection, &"n".repeat(90)).await.unwrap_err();
    assert_oversized(&status, 100);

    // A 198-byte message sent, which the id and timestamp the server adds take over the limit.
    let (server_200, connection) = small_messages(200).await;
    send_texts(&connection, "jack", "mike", &["y".repeat(180)])
        .await
        .unwrap();
    let mut receiving = open_receive(&connection, "mike", "", None).await;
    let status = receiving.message().await.unwrap_err();
    assert_oversized(&status, 200);
    drop((server, server_200));
}
