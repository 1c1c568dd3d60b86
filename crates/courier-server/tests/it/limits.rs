//! Each limit answers with its status code, and the server keeps serving afterwards.

use std::time::Duration;

use courier_client::Connection;
use courier_client::pb::hello::HelloRequest;
use courier_client::pb::hello::say_hello_service_client::SayHelloServiceClient;
use courier_client::pb::message::SendMessageRequest;
use courier_server::Limits;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::helpers::client::{
    OVERSIZED_MESSAGE, as_user, busy_call, contents, hello, receive_request, receive_until_idle,
    send_texts, shed_hello,
};
use crate::helpers::server::TestServer;

/// How a call shed by the server's concurrency limit is answered.
const SHED_BY_SERVER: (Code, &str) = (
    Code::ResourceExhausted,
    courier_server::middleware::shed::SERVER_BUSY,
);

/// How a call shed by its connection's concurrency limit is answered.
const SHED_BY_CONNECTION: (Code, &str) = (
    Code::ResourceExhausted,
    courier_server::middleware::shed::CONNECTION_BUSY,
);

/// How tonic answers a call cut off by the server's call timeout or the client's `grpc-timeout`
/// (README, "Limits": CANCELLED "Timeout expired").
const TIMED_OUT: (Code, &str) = (Code::Cancelled, "Timeout expired");

async fn server_with(limits: Limits) -> (TestServer, Connection) {
    let server = TestServer::with_limits(limits).await;
    let connection = server.connect().await;
    (server, connection)
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_server_goes_on() {
    let (_server, connection) = server_with(Limits {
        max_message_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let status = hello(&connection, &"x".repeat(2000)).await.unwrap_err();
    assert_eq!(status.code(), OVERSIZED_MESSAGE, "{status:?}");
    assert!(
        status.message().contains("the limit is: 1024 bytes"),
        "{}",
        status.message()
    );
    assert_eq!(
        hello(&connection, "small").await.unwrap(),
        "hello world! small"
    );
}

#[tokio::test]
async fn a_full_queue_is_resource_exhausted_and_keeps_what_it_accepted() {
    let (_server, connection) = server_with(Limits {
        max_queued_per_user: 3,
        ..Limits::default()
    })
    .await;
    let texts: Vec<String> = (1..=5).map(|n| format!("m{n}")).collect();
    let status = send_texts(&connection, "jack", "mike", &texts)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "the queue of mike is full (3 messages) (3 earlier messages of this stream were queued)"
    );
    assert_eq!(status.metadata().get("x-message-count").unwrap(), "3");
    let (kept, _) = receive_until_idle(&connection, "mike", "", Duration::from_millis(300)).await;
    assert_eq!(contents(&kept), ["m1", "m2", "m3"]);
}

#[tokio::test]
async fn too_many_open_streams_are_resource_exhausted_until_one_ends() {
    let (_server, connection) = server_with(Limits {
        max_open_streams: 1,
        ..Limits::default()
    })
    .await;
    let open = |idle: Option<Duration>| {
        let mut client = connection.messages(as_user("mike"));
        async move {
            client
                .receive_message(receive_request("mike", "", idle))
                .await
        }
    };
    let mut first = open(Some(Duration::from_millis(300)))
        .await
        .unwrap()
        .into_inner();
    let status = open(None).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::ResourceExhausted,
            "too many open streams; retry later"
        )
    );
    assert!(
        first.message().await.unwrap().is_none(),
        "the first ends by idle timeout"
    );
    open(None).await.expect("a stream slot is free again");
}

#[tokio::test]
async fn calls_beyond_the_global_limit_are_shed() {
    let (_server, connection) = server_with(Limits {
        max_calls: 1,
        ..Limits::default()
    })
    .await;
    let (finish, call) = busy_call(&connection).await;
    let status = shed_hello(&connection).await;
    assert_eq!(
        (status.code(), status.message()),
        SHED_BY_SERVER,
        "{status:?}"
    );
    assert!(
        status.metadata().get("x-request-id").is_some(),
        "a shed answer carries the request id like every other: {status:?}"
    );
    drop(finish);
    assert_eq!(call.await.unwrap().unwrap(), 1);
    assert_eq!(
        hello(&connection, "again").await.unwrap(),
        "hello world! again"
    );
}

#[tokio::test]
async fn calls_beyond_the_per_connection_limit_are_shed() {
    let (server, connection) = server_with(Limits {
        max_calls_per_connection: 1,
        ..Limits::default()
    })
    .await;
    let (finish, call) = busy_call(&connection).await;
    let status = shed_hello(&connection).await;
    assert_eq!(
        (status.code(), status.message()),
        SHED_BY_CONNECTION,
        "{status:?}"
    );
    // Another connection has its own budget.
    let other = server.connect().await;
    assert_eq!(hello(&other, "other").await.unwrap(), "hello world! other");
    drop(finish);
    assert_eq!(call.await.unwrap().unwrap(), 1);
}

#[tokio::test]
async fn a_call_that_takes_too_long_is_cut_off_and_grpc_timeout_is_honoured() {
    let (_server, connection) = server_with(Limits {
        call_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let (finish, call) = busy_call(&connection).await;
    let status = call.await.unwrap().unwrap_err();
    assert_eq!((status.code(), status.message()), TIMED_OUT, "{status:?}");
    drop(finish);

    // A client deadline shorter than the server's wins.
    let (outbound, requests) = mpsc::channel::<SendMessageRequest>(1);
    let mut request = tonic::Request::new(ReceiverStream::new(requests));
    request.set_timeout(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let status = connection
        .messages(as_user("jack"))
        .send_message(request)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((status.code(), status.message()), TIMED_OUT, "{status:?}");
    drop(outbound);
}

/// Calls Hello over a new connection made by tonic itself (lazily, so that what the client sees
/// is the call's status, whenever the connection fails).
async fn hello_on_a_new_connection(server: &TestServer) -> Result<String, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_lazy();
    let mut client = SayHelloServiceClient::new(channel);
    let call = client.hello(HelloRequest { name: "new".into() });
    let reply = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("answered or refused at once, never left hanging")?;
    Ok(reply.into_inner().msg)
}

#[tokio::test]
async fn a_connection_over_the_limit_is_refused_with_unavailable_until_one_closes() {
    let server = TestServer::with_limits(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let first = server.connect().await;
    let second = server.connect().await;
    hello(&first, "first").await.unwrap();
    hello(&second, "second").await.unwrap();

    // A third is accepted and reset before HTTP/2 (README, "Limits"): the call is UNAVAILABLE.
    let status = hello_on_a_new_connection(&server).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // The refusal took nothing from the two that are open.
    hello(&first, "first again").await.unwrap();
    hello(&second, "second again").await.unwrap();

    // Once the server has seen one close, a new connection is served.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match hello_on_a_new_connection(&server).await {
            Ok(reply) => {
                assert_eq!(reply, "hello world! new");
                break;
            }
            Err(status) if tokio::time::Instant::now() < deadline => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("no connection was served after one closed: {status:?}"),
        }
    }
    hello(&second, "second still").await.unwrap();
}
