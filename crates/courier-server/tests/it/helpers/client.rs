//! Calls through `courier-client`: metadata, requests, streams read to their end, and which
//! statuses a client may legitimately see when the server goes away.

use std::error::Error as _;
use std::time::Duration;

use courier_client::pb::chat::{ChatRequest, ChatResponse};
use courier_client::pb::hello::HelloRequest;
use courier_client::pb::message::{Message, ReceiveMessageRequest, SendMessageRequest};
use courier_client::{CallMetadata, Connection, ExtraMetadata};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Response, Status, Streaming};

/// The status an open stream ends with when the server shuts down (README, "Shutdown").
pub(crate) const SHUTTING_DOWN: (Code, &str) = (Code::Unavailable, "server is shutting down");

/// The code of a message over `--max-message-bytes` on the wire (README, "Limits"):
/// RESOURCE_EXHAUSTED, as other gRPC implementations answer (tonic's OUT_OF_RANGE is mapped).
pub(crate) const OVERSIZED_MESSAGE: Code = Code::ResourceExhausted;

/// Call metadata with `token` and extra `key:value` entries.
pub(crate) fn metadata(token: Option<&str>, extra: &[&str]) -> CallMetadata {
    let extra = extra
        .iter()
        .map(|entry| ExtraMetadata::parse(entry).unwrap())
        .collect();
    CallMetadata::new(token, extra).unwrap()
}

/// Metadata for acting as `user` on a server without auth (the tutorial's `from` header).
pub(crate) fn as_user(user: &str) -> CallMetadata {
    metadata(None, &[&format!("from:{user}")])
}

pub(crate) fn message(from: &str, to: &str, content: &str) -> Message {
    Message {
        from: from.into(),
        to: to.into(),
        content: content.into(),
        ..Default::default()
    }
}

/// Calls Hello with `name` and no metadata: the greeting.
pub(crate) async fn hello(connection: &Connection, name: &str) -> Result<String, Status> {
    let request = HelloRequest { name: name.into() };
    Ok(connection
        .hello(metadata(None, &[]))
        .hello(request)
        .await?
        .into_inner()
        .msg)
}

/// One SendMessage request stream carrying `messages`, in order.
pub(crate) fn sends(
    messages: &[Message],
) -> impl tokio_stream::Stream<Item = SendMessageRequest> + use<> {
    let requests: Vec<_> = messages
        .iter()
        .cloned()
        .map(|message| SendMessageRequest {
            message: Some(message),
        })
        .collect();
    tokio_stream::iter(requests)
}

/// Sends `texts` from `from` to `to` in one SendMessage call, acting as `from`: the count the
/// server answered.
pub(crate) async fn send_texts(
    connection: &Connection,
    from: &str,
    to: &str,
    texts: &[String],
) -> Result<i64, Status> {
    let messages: Vec<_> = texts.iter().map(|text| message(from, to, text)).collect();
    Ok(connection
        .messages(as_user(from))
        .send_message(sends(&messages))
        .await?
        .into_inner()
        .count)
}

/// A ReceiveMessage request for `user`; resumes after `after_id` unless it is empty.
pub(crate) fn receive_request(
    user: &str,
    after_id: &str,
    idle: Option<Duration>,
) -> ReceiveMessageRequest {
    ReceiveMessageRequest {
        user: user.into(),
        idle_timeout: idle.map(Into::into),
        after_id: after_id.into(),
    }
}

/// A ReceiveMessage response stream.
pub(crate) type Receiving = Streaming<courier_client::pb::message::ReceiveMessageResponse>;

/// Opens a ReceiveMessage stream for `user`, acting as `user` (see [`receive_request`]).
pub(crate) async fn open_receive(
    connection: &Connection,
    user: &str,
    after_id: &str,
    idle: Option<Duration>,
) -> Receiving {
    connection
        .messages(as_user(user))
        .receive_message(receive_request(user, after_id, idle))
        .await
        .unwrap()
        .into_inner()
}

/// Reads a stream to its OK end: the messages, and the `x-message-count` trailer.
pub(crate) async fn drain(mut stream: Receiving) -> (Vec<Message>, String) {
    let mut messages = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        messages.push(response.message.unwrap());
    }
    let trailers = stream.trailers().await.unwrap().unwrap();
    let count = trailers
        .get("x-message-count")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (messages, count)
}

/// Receives until `idle` passes without a message (see [`open_receive`] and [`drain`]).
pub(crate) async fn receive_until_idle(
    connection: &Connection,
    user: &str,
    after_id: &str,
    idle: Duration,
) -> (Vec<Message>, String) {
    drain(open_receive(connection, user, after_id, Some(idle)).await).await
}

/// The contents of `messages`, in order.
pub(crate) fn contents(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message.content.clone())
        .collect()
}

/// A chat line from `from` to `to`.
pub(crate) fn chat_line(from: &str, to: &str, text: &str) -> ChatRequest {
    ChatRequest {
        message: Some(message(from, to, text)),
    }
}

/// Opens a Chat stream with `metadata`: where to send lines (drop it to half-close), and the
/// response, whose body is what comes back.
pub(crate) async fn open_chat(
    connection: &Connection,
    metadata: CallMetadata,
) -> Result<(mpsc::Sender<ChatRequest>, Response<Streaming<ChatResponse>>), Status> {
    let (outbound, requests) = mpsc::channel(16);
    let response = connection
        .chat(metadata)
        .chat(ReceiverStream::new(requests))
        .await?;
    Ok((outbound, response))
}

/// Whether `status` was made on the client's side from a transport error (the connection
/// failed or dropped) rather than sent by the server: tonic keeps the transport error as the
/// status's source, and a status read from the server's trailers has none.
pub(crate) fn is_transport_error(status: &Status) -> bool {
    status.source().is_some()
}

/// Whether `status` is a legitimate end of a call that was open when the server was told to
/// stop: the server's own [`SHUTTING_DOWN`], or a transport error if the connection dropped
/// before that answer arrived. Anything else the server sent (UNKNOWN, INTERNAL, ...) is a bug.
pub(crate) fn ended_by_shutdown(status: &Status) -> bool {
    (status.code(), status.message()) == SHUTTING_DOWN || is_transport_error(status)
}

/// Starts a SendMessage that is still sending, so its handler holds a place in the limits; the
/// call is over once the sender is dropped.
pub(crate) async fn busy_call(
    connection: &Connection,
) -> (
    mpsc::Sender<SendMessageRequest>,
    tokio::task::JoinHandle<Result<i64, tonic::Status>>,
) {
    let (outbound, requests) = mpsc::channel(1);
    let mut client = connection.messages(as_user("jack"));
    let call = tokio::spawn(async move {
        Ok(client
            .send_message(ReceiverStream::new(requests))
            .await?
            .into_inner()
            .count)
    });
    outbound
        .send(SendMessageRequest {
            message: Some(message("jack", "mike", "hold")),
        })
        .await
        .unwrap();
    (outbound, call)
}

/// Calls Hello until it is shed, as it must be once the busy call has reached the server.
pub(crate) async fn shed_hello(connection: &Connection) -> tonic::Status {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match hello(connection, "shed").await {
            Err(status) => return status,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(_) => panic!("Hello was never shed while the limit was taken"),
        }
    }
}
