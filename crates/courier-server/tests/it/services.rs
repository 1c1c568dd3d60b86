//! Every RPC kind against a real server on loopback: answers, ordering, metadata both ways,
//! validation, idle timeout, chat, shutdown, and what competing receivers get.

use std::time::Duration;

use courier_client::pb::hello::HelloRequest;
use courier_client::pb::message::{ReceiveMessageRequest, SendMessageRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_client::HealthClient};

use crate::helpers::client::{
    SHUTTING_DOWN, as_user, chat_line, contents, drain, message, metadata, open_chat, open_receive,
    receive_request, receive_until_idle, send_texts, sends,
};
use crate::helpers::server::{Setup, TestServer};

const IDLE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn hello_greets_by_name_and_carries_a_request_id() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let response = connection
        .hello(metadata(None, &["x-request-id:req-42"]))
        .hello(HelloRequest {
            name: "mike".into(),
        })
        .await
        .unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "req-42");
    assert_eq!(response.into_inner().msg, "hello world! mike");

    // A client that sends no id gets a fresh one.
    let mut raw =
        courier_client::pb::hello::say_hello_service_client::SayHelloServiceClient::connect(
            server.options().addr,
        )
        .await
        .unwrap();
    let response = raw
        .hello(HelloRequest {
            name: "jack".into(),
        })
        .await
        .unwrap();
    let id = response
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

#[tokio::test]
async fn handlers_read_metadata_and_binary_values_round_trip() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    // AAH/gA== is [0, 1, 255, 128]: not valid UTF-8, so only a -bin key can carry it.
    let extra = [
        "x-echo-note:hi there",
        "x-echo-blob-bin:AAH/gA==",
        "x-other:not echoed",
    ];
    let response = connection
        .hello(metadata(None, &extra))
        .hello(HelloRequest {
            name: "mike".into(),
        })
        .await
        .unwrap();
    let headers = response.metadata();
    assert_eq!(headers.get("x-echo-note").unwrap(), "hi there");
    assert_eq!(
        headers
            .get_bin("x-echo-blob-bin")
            .unwrap()
            .to_bytes()
            .unwrap()
            .as_ref(),
        [0, 1, 255, 128]
    );
    assert!(headers.get("x-other").is_none());
}

#[tokio::test]
async fn streaming_calls_echo_metadata_in_their_headers() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let response = connection
        .messages(metadata(
            None,
            &["from:mike", "x-echo-blob-bin:AAH/gA==", "x-request-id:r-7"],
        ))
        .receive_message(receive_request("mike", "", Some(IDLE)))
        .await
        .unwrap();
    let headers = response.metadata();
    assert_eq!(headers.get("x-request-id").unwrap(), "r-7");
    assert_eq!(
        headers
            .get_bin("x-echo-blob-bin")
            .unwrap()
            .to_bytes()
            .unwrap()
            .as_ref(),
        [0, 1, 255, 128]
    );
}

#[tokio::test]
async fn sent_messages_are_counted_exactly_and_received_in_order_with_trailers() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let texts = ["one", "two", "three", "four", "five"];
    let messages: Vec<_> = texts
        .iter()
        .map(|text| message("jack", "mike", text))
        .collect();
    let response = connection
        .messages(as_user("jack"))
        .send_message(sends(&messages))
        .await
        .unwrap();
    assert!(response.metadata().contains_key("x-request-id"));
    assert_eq!(response.into_inner().count, 5);

    let response = connection
        .messages(as_user("mike"))
        .receive_message(receive_request("mike", "", Some(IDLE)))
        .await
        .unwrap();
    assert!(response.metadata().contains_key("x-request-id"));
    let (received, count) = drain(response.into_inner()).await;
    assert_eq!(contents(&received), texts);
    assert!(
        received
            .iter()
            .all(|m| m.from == "jack" && m.to == "mike" && m.sent_at.is_some())
    );
    let ids: Vec<u64> = received.iter().map(|m| m.id.parse().unwrap()).collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids increase: {ids:?}"
    );
    assert_eq!(count, "5");

    // Each message is delivered once.
    let (again, count) = receive_until_idle(&connection, "mike", "", IDLE).await;
    assert!(again.is_empty());
    assert_eq!(count, "0");
}

#[tokio::test]
async fn receive_pushes_messages_as_they_arrive() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let mut stream = open_receive(&connection, "mike", "", None).await;
    for text in ["first", "second"] {
        let count = send_texts(&connection, "jack", "mike", &[text.to_owned()])
            .await
            .unwrap();
        assert_eq!(count, 1);
        let got = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.unwrap().message.unwrap().content, text);
    }
}

#[tokio::test]
async fn a_bad_message_ends_the_stream_but_what_was_accepted_stays() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let messages = [
        message("jack", "mike", "kept 1"),
        message("jack", "mike", "kept 2"),
        message("jack", "", "bad"),
    ];
    let status = connection
        .messages(as_user("jack"))
        .send_message(sends(&messages))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "message.to: is required (2 earlier messages of this stream were queued)"
    );
    assert_eq!(status.metadata().get("x-message-count").unwrap(), "2");

    let (kept, _) = receive_until_idle(&connection, "mike", "", IDLE).await;
    assert_eq!(contents(&kept), ["kept 1", "kept 2"]);
}

#[tokio::test]
async fn malformed_requests_get_invalid_argument_naming_the_field() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let status = connection
        .hello(as_user("jack"))
        .hello(HelloRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "name: is required")
    );
    let status = connection
        .hello(as_user("jack"))
        .hello(HelloRequest {
            name: "n".repeat(257),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "name: is longer than 256 bytes")
    );

    let status = connection
        .messages(as_user("mike"))
        .receive_message(receive_request("", "", None))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "user: is required")
    );

    let zero = ReceiveMessageRequest {
        idle_timeout: Some(courier_wkt::Duration {
            seconds: 0,
            nanos: 0,
        }),
        ..receive_request("mike", "", None)
    };
    let status = connection
        .messages(as_user("mike"))
        .receive_message(zero)
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "idle_timeout: must be a positive duration"
        )
    );

    let mut with_id = message("jack", "mike", "hi");
    with_id.id = "99".into();
    let status = connection
        .messages(as_user("jack"))
        .send_message(sends(&[with_id]))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "message.id: is assigned by the server; leave it empty (0 earlier messages of this stream were queued)"
        )
    );
}

/// The README's "Input rules" not covered above: each is INVALID_ARGUMENT naming the field.
#[tokio::test]
async fn each_input_rule_is_invalid_argument_naming_the_field() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let mut with_sent_at = message("jack", "mike", "hi");
    with_sent_at.sent_at = Some(courier_wkt::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    let user_rule = "may hold only letters, digits, '.', '_' and '-'";
    let cases = [
        (
            message("ja ck", "mike", "hi"),
            format!("message.from: {user_rule}"),
        ),
        (
            message("jack", "mi/ke", "hi"),
            format!("message.to: {user_rule}"),
        ),
        (
            message("jack", &"m".repeat(65), "hi"),
            "message.to: is longer than 64 bytes".to_owned(),
        ),
        (
            message("jack", "mike", ""),
            "message.content: is required".to_owned(),
        ),
        (
            message("jack", "mike", &"c".repeat(4097)),
            "message.content: is longer than 4096 bytes".to_owned(),
        ),
        (
            with_sent_at,
            "message.sent_at: is assigned by the server; leave it unset".to_owned(),
        ),
    ];
    for (bad, reason) in cases {
        // Without `from` metadata any sender is accepted, so only the rule can refuse it.
        let status = connection
            .messages(metadata(None, &[]))
            .send_message(sends(&[bad]))
            .await
            .unwrap_err();
        let expected = format!("{reason} (0 earlier messages of this stream were queued)");
        assert_eq!(
            (status.code(), status.message()),
            (Code::InvalidArgument, expected.as_str())
        );
    }

    let a_day_and_a_second = ReceiveMessageRequest {
        idle_timeout: Some(courier_wkt::Duration {
            seconds: 24 * 60 * 60 + 1,
            nanos: 0,
        }),
        ..receive_request("mike", "", None)
    };
    let cases = [
        (
            receive_request("mi ke", "", None),
            format!("user: {user_rule}"),
        ),
        (
            a_day_and_a_second,
            "idle_timeout: must be at most 24h".to_owned(),
        ),
    ];
    for (request, reason) in cases {
        let status = connection
            .messages(metadata(None, &[]))
            .receive_message(request)
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::InvalidArgument, reason.as_str())
        );
    }

    let too_long = format!("from:{}", "j".repeat(65));
    let status = connection
        .messages(metadata(None, &[&too_long]))
        .send_message(sends(&[message("jack", "mike", "hi")]))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "metadata from: is longer than 64 bytes"
        )
    );
}

#[tokio::test]
async fn a_spoofed_sender_is_denied_when_the_caller_is_known() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let status = connection
        .messages(as_user("mike"))
        .send_message(sends(&[message("jack", "mike", "not really jack")]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "message.from is \"jack\" but the caller is \"mike\" (0 earlier messages of this stream were queued)"
    );
}

#[tokio::test]
async fn idle_timeout_ends_an_empty_stream_with_ok() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let started = std::time::Instant::now();
    let (received, count) = receive_until_idle(&connection, "nobody", "", IDLE).await;
    assert!(received.is_empty());
    assert!(started.elapsed() >= IDLE);
    assert_eq!(count, "0");
}

#[tokio::test]
async fn a_cancelled_receiver_takes_nothing_with_it() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    drop(open_receive(&connection, "mike", "", None).await);
    let count = send_texts(&connection, "jack", "mike", &["after the cancel".into()])
        .await
        .unwrap();
    assert_eq!(count, 1);
    let (received, _) = receive_until_idle(&connection, "mike", "", IDLE).await;
    assert_eq!(contents(&received), ["after the cancel"]);
}

/// Two receivers of one user compete for its queue: each message goes to exactly one of them.
#[tokio::test]
async fn two_receivers_of_one_user_share_the_messages_without_duplicates() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let idle = Some(Duration::from_millis(500));
    let (left, right) = (
        open_receive(&connection, "mike", "", idle).await,
        open_receive(&connection, "mike", "", idle).await,
    );
    let texts: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    assert_eq!(
        send_texts(&connection, "jack", "mike", &texts)
            .await
            .unwrap(),
        20
    );
    let ((from_left, _), (from_right, _)) = tokio::join!(drain(left), drain(right));
    for got in [&from_left, &from_right] {
        let positions: Vec<_> = got
            .iter()
            .map(|m| texts.iter().position(|t| *t == m.content).unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "each receiver sees queue order: {positions:?}"
        );
    }
    let mut all: Vec<_> = from_left
        .into_iter()
        .chain(from_right)
        .map(|m| m.content)
        .collect();
    all.sort_by_key(|text| text[1..].parse::<u32>().unwrap());
    assert_eq!(
        all, texts,
        "every message exactly once across both receivers"
    );
}

#[tokio::test]
async fn chat_relays_both_ways_and_ends_cleanly_on_half_close() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let open = |user: &'static str| {
        let connection = connection.clone();
        async move {
            let (outbound, response) = open_chat(&connection, as_user(user)).await.unwrap();
            assert!(response.metadata().contains_key("x-request-id"));
            (outbound, response.into_inner())
        }
    };
    let ((jack_out, mut jack_in), (mike_out, mut mike_in)) =
        tokio::join!(open("jack"), open("mike"));
    for n in 1..=3 {
        jack_out
            .send(chat_line("jack", "mike", &format!("jack {n}")))
            .await
            .unwrap();
        mike_out
            .send(chat_line("mike", "jack", &format!("mike {n}")))
            .await
            .unwrap();
    }
    for (inbound, from) in [(&mut jack_in, "mike"), (&mut mike_in, "jack")] {
        for n in 1..=3 {
            let got = inbound.message().await.unwrap().unwrap().message.unwrap();
            assert_eq!(
                (got.from.as_str(), got.content),
                (from, format!("{from} {n}"))
            );
        }
    }
    drop(jack_out);
    drop(mike_out);
    for inbound in [&mut jack_in, &mut mike_in] {
        assert!(
            inbound.message().await.unwrap().is_none(),
            "ends with OK after half-close"
        );
        assert_eq!(
            inbound
                .trailers()
                .await
                .unwrap()
                .unwrap()
                .get("x-message-count")
                .unwrap(),
            "3"
        );
    }
}

#[tokio::test]
async fn chat_messages_to_an_absent_user_wait_in_its_queue() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let (outbound, response) = open_chat(&connection, as_user("jack")).await.unwrap();
    let mut jack_in = response.into_inner();
    outbound
        .send(chat_line("jack", "mike", "are you there?"))
        .await
        .unwrap();
    drop(outbound);
    assert!(jack_in.message().await.unwrap().is_none());

    let (received, _) = receive_until_idle(&connection, "mike", "", IDLE).await;
    assert_eq!(contents(&received), ["are you there?"]);
}

#[tokio::test]
async fn chat_needs_a_caller_and_refuses_spoofed_senders() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let status = open_chat(&connection, metadata(None, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::InvalidArgument,
            "metadata from: is required when authentication is off"
        )
    );

    let (outbound, response) = open_chat(&connection, as_user("mike")).await.unwrap();
    let mut inbound = response.into_inner();
    outbound
        .send(chat_line("jack", "mike", "spoof"))
        .await
        .unwrap();
    let status = inbound.message().await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::PermissionDenied,
            "message.from is \"jack\" but the caller is \"mike\""
        )
    );
    assert_eq!(
        status.metadata().get("x-message-count"),
        Some(&MetadataValue::from_static("0"))
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable_and_returns() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let mut stream = open_receive(&connection, "mike", "", None).await;
    let stopping = tokio::spawn(server.stop());
    let status = stream.message().await.unwrap_err();
    assert_eq!((status.code(), status.message()), SHUTTING_DOWN);
    assert_eq!(status.metadata().get("x-message-count").unwrap(), "0");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_ends_its_watchers() {
    const GRACE: Duration = Duration::from_secs(5);
    let server = TestServer::start(Setup {
        grace: Some(GRACE),
        ..Setup::default()
    })
    .await;
    let connection = server.connect().await;
    let mut health = HealthClient::new(connection.with(metadata(None, &[])));
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let status = |update: Option<HealthCheckResponse>| update.unwrap().status;
    assert_eq!(
        status(watch.message().await.unwrap()),
        ServingStatus::Serving as i32
    );
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(server.stop());
    assert_eq!(
        status(watch.message().await.unwrap()),
        ServingStatus::NotServing as i32
    );
    // Then the Watch stream ends with OK, so a watcher does not hold shutdown: the server
    // stops cleanly, well within its grace period.
    let end = tokio::time::timeout(GRACE, watch.message())
        .await
        .expect("the Watch ends within the grace period");
    assert!(end.unwrap().is_none(), "the Watch ends with OK");
    tokio::time::timeout(GRACE, stopping)
        .await
        .expect("stops within the grace period")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < GRACE / 2, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_call_in_flight_when_shutdown_starts_still_gets_its_answer() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let (outbound, requests) = mpsc::channel(4);
    let mut client = connection.messages(as_user("jack"));
    let call =
        tokio::spawn(async move { client.send_message(ReceiverStream::new(requests)).await });
    outbound
        .send(SendMessageRequest {
            message: Some(message("jack", "mike", "before")),
        })
        .await
        .unwrap();
    let stopping = tokio::spawn(server.stop());
    // The call goes on after shutdown began, and is answered in full.
    tokio::time::sleep(Duration::from_millis(100)).await;
    outbound
        .send(SendMessageRequest {
            message: Some(message("jack", "mike", "during")),
        })
        .await
        .unwrap();
    drop(outbound);
    assert_eq!(call.await.unwrap().unwrap().into_inner().count, 2);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
