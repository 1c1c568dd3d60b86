//! PostMessage: one message per call, once per sender and idempotency key. A retry answers the
//! first result and queues nothing, within the retention period and across restarts; the same
//! key for another message is FAILED_PRECONDITION; the message is checked like SendMessage's.

use std::time::{Duration, Instant, SystemTime};

use courier_client::Connection;
use courier_client::pb::message::{Message, PostMessageRequest};
use courier_server::Limits;
use tonic::{Code, Status};

use crate::helpers::client::{
    as_user, message, metadata, receive_request, receive_until_idle, send_texts,
};
use crate::helpers::process::ServerProcess;
use crate::helpers::server::{JACK_TOKEN, MIKE_TOKEN, Setup, TestServer};

const IDLE: Duration = Duration::from_millis(300);

/// A UUID, as a browser would send.
const KEY: &str = "0b6f4f8e-5a3c-4c1e-9f7d-2a1b3c4d5e6f";

fn request(from: &str, to: &str, content: &str, key: &str) -> PostMessageRequest {
    PostMessageRequest {
        message: Some(message(from, to, content)),
        idempotency_key: key.into(),
    }
}

/// Posts `content` from `from` to `to` under `key`, acting as `from`: the message answered.
async fn post(
    connection: &Connection,
    from: &str,
    to: &str,
    content: &str,
    key: &str,
) -> Result<Message, Status> {
    let response = connection
        .messages(as_user(from))
        .post_message(request(from, to, content, key))
        .await?;
    Ok(response.into_inner().message.expect("a posted message"))
}

/// Every message queued for `user` now, in order (the stream ends after [`IDLE`] without one).
async fn received(connection: &Connection, user: &str) -> Vec<Message> {
    receive_until_idle(connection, user, "", IDLE).await.0
}

fn code_and_message(status: &Status) -> (Code, &str) {
    (status.code(), status.message())
}

/// What a post of another message under a used key is told.
fn reused(key: &str, from: &str, id: &str) -> String {
    format!(
        "idempotency key {key:?} was used by {from} for a different message (id {id}); use a new \
         key for a new message"
    )
}

#[tokio::test]
async fn a_post_answers_the_queued_message_which_is_received_as_answered() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let before = SystemTime::now();
    let response = connection
        .messages(metadata(None, &["from:jack", "x-echo-case:post"]))
        .post_message(request("jack", "mike", "hi mike", KEY))
        .await
        .unwrap();
    assert_eq!(
        response.metadata().get("x-echo-case").unwrap(),
        "post",
        "metadata is echoed as for every RPC"
    );
    assert!(response.metadata().get("x-request-id").is_some());
    let posted = response.into_inner().message.unwrap();
    assert_eq!(
        (
            posted.from.as_str(),
            posted.to.as_str(),
            posted.content.as_str()
        ),
        ("jack", "mike", "hi mike")
    );
    assert!(posted.id.parse::<u64>().unwrap() > 0, "{posted:?}");
    let sent_at = SystemTime::try_from(posted.sent_at.unwrap()).unwrap();
    assert!(
        before <= sent_at && sent_at <= SystemTime::now(),
        "{sent_at:?}"
    );
    assert_eq!(received(&connection, "mike").await, [posted]);
}

#[tokio::test]
async fn a_retry_with_the_same_key_answers_the_first_result_and_queues_nothing() {
    for durable in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(Setup {
            data_dir: durable.then(|| dir.path().to_path_buf()),
            ..Setup::default()
        })
        .await;
        let connection = server.connect().await;
        // A receiver is waiting when the post arrives: it gets the message once.
        let waiting = tokio::spawn({
            let connection = connection.clone();
            async move { received(&connection, "mike").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let first = post(&connection, "jack", "mike", "once", KEY)
            .await
            .unwrap();
        for _ in 0..3 {
            let retry = post(&connection, "jack", "mike", "once", KEY)
                .await
                .unwrap();
            assert_eq!(retry, first, "durable store: {durable}");
        }
        assert_eq!(
            waiting.await.unwrap(),
            std::slice::from_ref(&first),
            "durable store: {durable}"
        );
        assert_eq!(
            received(&connection, "mike").await,
            [],
            "durable: {durable}"
        );
        // Resuming from the start finds it once too: the retries appended nothing.
        let all = receive_until_idle(&connection, "mike", "0", IDLE).await.0;
        assert_eq!(all, [first], "durable store: {durable}");
    }
}

#[tokio::test]
async fn the_same_key_for_a_different_message_is_failed_precondition() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let first = post(&connection, "jack", "mike", "hello", KEY)
        .await
        .unwrap();
    for (to, content) in [("mike", "goodbye"), ("nina", "hello"), ("mike", "Hello")] {
        let status = post(&connection, "jack", to, content, KEY)
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&status),
            (
                Code::FailedPrecondition,
                reused(KEY, "jack", &first.id).as_str()
            ),
            "to {to}: {content}"
        );
    }
    assert_eq!(received(&connection, "mike").await, [first]);
    assert_eq!(received(&connection, "nina").await, []);
}

#[tokio::test]
async fn the_same_key_from_another_sender_posts_another_message() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let jacks = post(&connection, "jack", "mike", "hi", KEY).await.unwrap();
    let ninas = post(&connection, "nina", "mike", "hi", KEY).await.unwrap();
    assert_ne!(jacks.id, ninas.id);
    assert_eq!(ninas.from, "nina");
    // Each sender's retry answers its own first result.
    assert_eq!(
        post(&connection, "jack", "mike", "hi", KEY).await.unwrap(),
        jacks
    );
    assert_eq!(
        post(&connection, "nina", "mike", "hi", KEY).await.unwrap(),
        ninas
    );
    assert_eq!(received(&connection, "mike").await, [jacks, ninas]);
}

#[tokio::test]
async fn concurrent_posts_with_one_key_queue_one_message() {
    for durable in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(Setup {
            data_dir: durable.then(|| dir.path().to_path_buf()),
            ..Setup::default()
        })
        .await;
        let connection = server.connect().await;
        let posts: Vec<_> = (0..20)
            .map(|_| {
                let connection = connection.clone();
                tokio::spawn(async move {
                    post(&connection, "jack", "mike", "raced", KEY)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut answers = Vec::new();
        for posting in posts {
            answers.push(posting.await.unwrap());
        }
        assert!(
            answers.iter().all(|answer| *answer == answers[0]),
            "durable store: {durable}: {answers:?}"
        );
        assert_eq!(
            received(&connection, "mike").await,
            answers[..1],
            "durable store: {durable}"
        );
    }
}

#[tokio::test]
async fn a_retry_after_a_restart_answers_the_first_result() {
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let mut server = ServerProcess::start(&data, &addr_file, &[]);
    let first = post(&server.connect().await, "jack", "mike", "one", "k-1")
        .await
        .unwrap();
    // A graceful stop, then a restart on the same data directory.
    server.terminate();
    assert!(server.exit_within(Duration::from_secs(10)).await.success());
    drop(server);
    let server = ServerProcess::start(&data, &addr_file, &[]);
    let connection = server.connect().await;
    assert_eq!(
        post(&connection, "jack", "mike", "one", "k-1")
            .await
            .unwrap(),
        first
    );
    let second = post(&connection, "jack", "mike", "two", "k-2")
        .await
        .unwrap();
    // SIGKILL right after the answer: the answer meant the message and its key were committed.
    server.kill();
    let server = ServerProcess::start(&data, &addr_file, &[]);
    let connection = server.connect().await;
    assert_eq!(
        post(&connection, "jack", "mike", "one", "k-1")
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        post(&connection, "jack", "mike", "two", "k-2")
            .await
            .unwrap(),
        second
    );
    let status = post(&connection, "jack", "mike", "other", "k-2")
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&status),
        (
            Code::FailedPrecondition,
            reused("k-2", "jack", &second.id).as_str()
        )
    );
    assert_eq!(received(&connection, "mike").await, [first, second]);
}

#[tokio::test]
async fn a_key_is_kept_for_the_retention_period_and_then_posts_anew() {
    const RETENTION: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let server = ServerProcess::start(&data, &addr_file, &["--retention", "2s"]);
    let connection = server.connect().await;
    let posted_at = Instant::now();
    let first = post(&connection, "jack", "mike", "hi", KEY).await.unwrap();
    // Retried until the server has forgotten the key: every retry before that answers the
    // first result, and that does not happen within the retention period.
    let again = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let retry = post(&connection, "jack", "mike", "hi", KEY).await.unwrap();
        if retry != first {
            break retry;
        }
        assert!(
            posted_at.elapsed() < Duration::from_secs(15),
            "the key was never forgotten"
        );
    };
    assert!(
        posted_at.elapsed() >= RETENTION,
        "{:?}",
        posted_at.elapsed()
    );
    assert!(again.id.parse::<u64>().unwrap() > first.id.parse::<u64>().unwrap());
    // The first message expired with its key; the new one is queued.
    assert_eq!(received(&connection, "mike").await, [again]);
}

#[tokio::test]
async fn bad_idempotency_keys_are_invalid_argument_and_queue_nothing() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let visible = "idempotency_key: must be visible ASCII characters (\"!\" to \"~\", no \
                   spaces), such as a UUID";
    let long = "k".repeat(129);
    let cases = [
        (
            "",
            "idempotency_key: is required (a new one, such as a UUID, for each new message)",
        ),
        (long.as_str(), "idempotency_key: is longer than 128 bytes"),
        ("two words", visible),
        ("tab\there", visible),
        ("clé", visible),
        ("nul\0", visible),
    ];
    for (key, expected) in cases {
        let status = post(&connection, "jack", "mike", "hi", key)
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&status),
            (Code::InvalidArgument, expected),
            "{key:?}"
        );
    }
    let longest = "k".repeat(128);
    let posted = post(&connection, "jack", "mike", "hi", &longest)
        .await
        .unwrap();
    let odd = post(&connection, "jack", "mike", "hi", "!~{}")
        .await
        .unwrap();
    assert_eq!(received(&connection, "mike").await, [posted, odd]);
}

#[tokio::test]
async fn a_posted_message_is_checked_like_a_sent_one() {
    let server = TestServer::start(Setup::default()).await;
    let connection = server.connect().await;
    let with = |edit: fn(&mut Message)| {
        let mut message = message("jack", "mike", "hi");
        edit(&mut message);
        PostMessageRequest {
            message: Some(message),
            idempotency_key: KEY.into(),
        }
    };
    let cases = [
        (
            PostMessageRequest {
                message: None,
                idempotency_key: KEY.into(),
            },
            Code::InvalidArgument,
            "message: is required".to_owned(),
        ),
        (
            with(|m| m.id = "7".into()),
            Code::InvalidArgument,
            "message.id: is assigned by the server; leave it empty".to_owned(),
        ),
        (
            with(|m| m.sent_at = Some(SystemTime::now().into())),
            Code::InvalidArgument,
            "message.sent_at: is assigned by the server; leave it unset".to_owned(),
        ),
        (
            with(|m| m.content = String::new()),
            Code::InvalidArgument,
            "message.content: is required".to_owned(),
        ),
        (
            with(|m| m.content = "x".repeat(4097)),
            Code::InvalidArgument,
            "message.content: is longer than 4096 bytes".to_owned(),
        ),
        (
            with(|m| m.to = "mi ke".into()),
            Code::InvalidArgument,
            "message.to: may hold only letters, digits, '.', '_' and '-'".to_owned(),
        ),
        // The message is checked before the key.
        (
            PostMessageRequest {
                message: Some(message("", "mike", "hi")),
                idempotency_key: String::new(),
            },
            Code::InvalidArgument,
            "message.from: is required".to_owned(),
        ),
    ];
    for (request, code, expected) in cases {
        let status = connection
            .messages(as_user("jack"))
            .post_message(request.clone())
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&status),
            (code, expected.as_str()),
            "{request:?}"
        );
    }
    // With authentication off, the `from` metadata names the caller.
    let status = connection
        .messages(as_user("nina"))
        .post_message(request("jack", "mike", "hi", KEY))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&status),
        (
            Code::PermissionDenied,
            "message.from is \"jack\" but the caller is \"nina\""
        )
    );
    // Nothing refused took the key.
    let posted = post(&connection, "jack", "mike", "hi", KEY).await.unwrap();
    assert_eq!(received(&connection, "mike").await, [posted]);
}

#[tokio::test]
async fn a_post_needs_a_token_and_may_not_speak_for_another_user() {
    let server = TestServer::start(Setup {
        auth: true,
        ..Setup::default()
    })
    .await;
    let connection = server.connect().await;
    let status = connection
        .messages(metadata(None, &[]))
        .post_message(request("jack", "mike", "hi", KEY))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&status),
        (Code::Unauthenticated, "missing authorization metadata")
    );
    let status = connection
        .messages(metadata(Some("not-a-token"), &[]))
        .post_message(request("jack", "mike", "hi", KEY))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&status),
        (Code::Unauthenticated, "unknown token")
    );
    // mike's token, claiming to be jack in the message and in the `from` metadata.
    let status = connection
        .messages(metadata(Some(MIKE_TOKEN), &["from:jack"]))
        .post_message(request("jack", "mike", "hi", KEY))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&status),
        (
            Code::PermissionDenied,
            "message.from is \"jack\" but the caller is \"mike\""
        )
    );
    let posted = connection
        .messages(metadata(Some(JACK_TOKEN), &[]))
        .post_message(request("jack", "mike", "hi", KEY))
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    let mut stream = connection
        .messages(metadata(Some(MIKE_TOKEN), &[]))
        .receive_message(receive_request("mike", "", Some(IDLE)))
        .await
        .unwrap()
        .into_inner();
    let mut delivered = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        delivered.push(response.message.unwrap());
    }
    assert_eq!(delivered, [posted]);
}

#[tokio::test]
async fn a_retry_is_answered_even_when_the_recipients_queue_is_full() {
    let server = TestServer::with_limits(Limits {
        max_queued_per_user: 2,
        ..Limits::default()
    })
    .await;
    let connection = server.connect().await;
    let first = post(&connection, "jack", "mike", "one", "k-1")
        .await
        .unwrap();
    assert_eq!(
        send_texts(&connection, "jack", "mike", &["two".into()])
            .await
            .unwrap(),
        1
    );
    let status = post(&connection, "jack", "mike", "three", "k-2")
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&status),
        (
            Code::ResourceExhausted,
            "the queue of mike is full (2 messages)"
        )
    );
    assert_eq!(
        post(&connection, "jack", "mike", "one", "k-1")
            .await
            .unwrap(),
        first
    );
    let contents: Vec<String> = received(&connection, "mike")
        .await
        .into_iter()
        .map(|message| message.content)
        .collect();
    assert_eq!(contents, ["one", "two"]);
    // The refused post did not take its key: once there is room, its retry queues it.
    let third = post(&connection, "jack", "mike", "three", "k-2")
        .await
        .unwrap();
    assert_eq!(received(&connection, "mike").await, [third]);
}
