//! The gRPC edge: converts and validates requests into domain calls on [`Mailboxes`] and turns
//! the results into responses. Every failure is a [`CourierError`], mapped to a status in one
//! place (`error.rs`).
//!
//! Streams are `ReceiverStream`s fed by a spawned task that stops as soon as the client is gone.
//! Streaming responses end with the trailer `x-message-count` (messages sent on that stream), also
//! when they end with an error.
//!
//! A stream that hits a bad message ends with that error; every message accepted before it stays
//! queued (SendMessage's error says how many, and carries `x-message-count`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{KeyAndValueRef, MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::error::CourierError;
use crate::mailbox::{Envelope, Mailboxes, Receipt, Taken};
use crate::pb::chat::chat_service_server::ChatService;
use crate::pb::chat::{ChatRequest, ChatResponse};
use crate::pb::hello::say_hello_service_server::SayHelloService;
use crate::pb::hello::{HelloRequest, HelloResponse};
use crate::pb::message::message_service_server::MessageService;
use crate::pb::message::{
    Message, ReceiveMessageRequest, ReceiveMessageResponse, SendMessageRequest, SendMessageResponse,
};
use crate::store::NewMessage;
use futures_util::FutureExt as _;

/// Longest user name accepted, in bytes.
pub const MAX_USER_LEN: usize = 64;
/// Longest message content accepted, in bytes.
pub const MAX_CONTENT_LEN: usize = 4096;
/// Longest name accepted by Hello, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest `idle_timeout` accepted.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Trailer carrying how many messages a streaming response sent.
pub const MESSAGE_COUNT_TRAILER: &str = "x-message-count";
/// Metadata naming the caller when authentication is off (as in the original tutorial).
pub const FROM_METADATA: &str = "from";
/// Request metadata whose key starts with this is echoed back in the response headers.
pub const ECHO_PREFIX: &str = "x-echo-";

/// The user a request was authenticated as; put into request extensions by the auth layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser(pub String);

/// The Courier services over one set of mailboxes.
#[derive(Clone)]
pub struct Courier {
    mailboxes: Arc<Mailboxes>,
    shutdown: CancellationToken,
    /// One permit per open ReceiveMessage or Chat stream, held by the task feeding it.
    open_streams: Arc<Semaphore>,
}

impl Courier {
    /// Services over `mailboxes`; their open streams end when `shutdown` is cancelled, and at
    /// most `max_open_streams` are open at once.
    pub fn new(
        mailboxes: Arc<Mailboxes>,
        shutdown: CancellationToken,
        max_open_streams: usize,
    ) -> Self {
        Self {
            mailboxes,
            shutdown,
            open_streams: Arc::new(Semaphore::new(max_open_streams)),
        }
    }

    fn stream_permit(&self) -> Result<OwnedSemaphorePermit, CourierError> {
        Arc::clone(&self.open_streams)
            .try_acquire_owned()
            .map_err(|_| {
                CourierError::ResourceExhausted("too many open streams; retry later".into())
            })
    }
}

// === identity and validation ===

/// Who is calling: the authenticated user, else the `from` metadata (authentication off).
fn caller<T>(request: &Request<T>) -> Result<Option<String>, CourierError> {
    if let Some(AuthenticatedUser(user)) = request.extensions().get::<AuthenticatedUser>() {
        return Ok(Some(user.clone()));
    }
    match request.metadata().get(FROM_METADATA) {
        None => Ok(None),
        Some(value) => {
            let user = value
                .to_str()
                .map_err(|_| CourierError::invalid("metadata from", "is not valid text"))?;
            validate_user("metadata from", user)?;
            Ok(Some(user.to_owned()))
        }
    }
}

fn validate_user(field: &str, user: &str) -> Result<(), CourierError> {
    if user.is_empty() {
        return Err(CourierError::invalid(field, "is required"));
    }
    if user.len() > MAX_USER_LEN {
        return Err(CourierError::invalid(
            field,
            format!("is longer than {MAX_USER_LEN} bytes"),
        ));
    }
    if !user
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(CourierError::invalid(
            field,
            "may hold only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// A message a client asked to send, validated: the store's [`NewMessage`].
fn validate_message(
    message: Option<Message>,
    caller: Option<&str>,
) -> Result<NewMessage, CourierError> {
    let message = message.ok_or_else(|| CourierError::invalid("message", "is required"))?;
    validate_user("message.from", &message.from)?;
    validate_user("message.to", &message.to)?;
    if message.content.is_empty() {
        return Err(CourierError::invalid("message.content", "is required"));
    }
    if message.content.len() > MAX_CONTENT_LEN {
        return Err(CourierError::invalid(
            "message.content",
            format!("is longer than {MAX_CONTENT_LEN} bytes"),
        ));
    }
    if !message.id.is_empty() {
        return Err(CourierError::invalid(
            "message.id",
            "is assigned by the server; leave it empty",
        ));
    }
    if message.sent_at.is_some() {
        return Err(CourierError::invalid(
            "message.sent_at",
            "is assigned by the server; leave it unset",
        ));
    }
    if let Some(caller) = caller.filter(|caller| *caller != message.from) {
        return Err(CourierError::PermissionDenied(format!(
            "message.from is {:?} but the caller is {caller:?}",
            message.from
        )));
    }
    Ok(NewMessage {
        from: message.from,
        to: message.to,
        content: message.content,
    })
}

/// Messages of one SendMessage or Chat stream committed together, at most. With the durable
/// store, one fsync covers them, and whatever other streams commit at the same time.
const SEND_BATCH: usize = 256;

/// Queues `batch` in one commit, adding what was queued to `count`. A full recipient queue
/// refuses its message and the rest, after the ones before it were queued.
async fn commit(
    mailboxes: &Arc<Mailboxes>,
    batch: Vec<NewMessage>,
    count: &mut u64,
) -> Result<(), CourierError> {
    if batch.is_empty() {
        return Ok(());
    }
    let enqueued = mailboxes.enqueue_all(batch).await?;
    *count += enqueued.ids.end - enqueued.ids.start;
    match enqueued.refused {
        Some(refused) => Err(refused.into()),
        None => Ok(()),
    }
}

/// How reading a batch of a client's messages ended.
enum BatchEnd {
    /// The batch is full, or nothing more has arrived yet.
    More,
    /// The client half-closed its stream.
    Finished,
    /// This message broke the rules; the batch holds the ones before it.
    Invalid(CourierError),
    /// The client's stream failed (reset, broken frame).
    Failed(Status),
}

/// Waits for the client's next message, then takes the ones that have already arrived too, up
/// to [`SEND_BATCH`], validating each. Cancel-safe: it only waits before the first message.
async fn read_batch<T>(
    stream: &mut Streaming<T>,
    caller: Option<&str>,
    message_of: fn(T) -> Option<Message>,
) -> (Vec<NewMessage>, BatchEnd) {
    let mut batch = Vec::new();
    let mut next = Some(stream.message().await);
    let end = loop {
        match next {
            None => break BatchEnd::More,
            Some(Ok(Some(request))) => match validate_message(message_of(request), caller) {
                Ok(message) => {
                    batch.push(message);
                    if batch.len() == SEND_BATCH {
                        break BatchEnd::More;
                    }
                    next = stream.message().now_or_never();
                }
                Err(error) => break BatchEnd::Invalid(error),
            },
            Some(Ok(None)) => break BatchEnd::Finished,
            Some(Err(status)) => break BatchEnd::Failed(status),
        }
    };
    (batch, end)
}

fn validate_after_id(after_id: &str) -> Result<Option<u64>, CourierError> {
    if after_id.is_empty() {
        return Ok(None);
    }
    after_id
        .parse()
        .map(Some)
        .map_err(|_| CourierError::invalid("after_id", "is not a message id"))
}

fn validate_idle_timeout(
    timeout: Option<pbjson_types::Duration>,
) -> Result<Option<Duration>, CourierError> {
    let Some(timeout) = timeout else {
        return Ok(None);
    };
    let field = "idle_timeout";
    if timeout.seconds < 0 || timeout.nanos < 0 || timeout.nanos >= 1_000_000_000 {
        return Err(CourierError::invalid(field, "must be a positive duration"));
    }
    let timeout = Duration::new(timeout.seconds as u64, timeout.nanos as u32);
    if timeout.is_zero() {
        return Err(CourierError::invalid(field, "must be a positive duration"));
    }
    if timeout > MAX_IDLE_TIMEOUT {
        return Err(CourierError::invalid(field, "must be at most 24h"));
    }
    Ok(Some(timeout))
}

// === conversions ===

fn to_proto(envelope: Envelope) -> Message {
    Message {
        from: envelope.from,
        content: envelope.content,
        to: envelope.to,
        id: envelope.id.to_string(),
        sent_at: Some(timestamp(envelope.sent_at)),
    }
}

fn timestamp(time: std::time::SystemTime) -> pbjson_types::Timestamp {
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

/// Copies the request's `x-echo-*` metadata (text and `-bin`) into the response headers.
fn echo_metadata(request: &MetadataMap, response: &mut MetadataMap) {
    for entry in request.iter() {
        match entry {
            KeyAndValueRef::Ascii(key, value) if key.as_str().starts_with(ECHO_PREFIX) => {
                response.insert(key.clone(), value.clone());
            }
            KeyAndValueRef::Binary(key, value) if key.as_str().starts_with(ECHO_PREFIX) => {
                response.insert_bin(key.clone(), value.clone());
            }
            _ => {}
        }
    }
}

fn respond<T>(request: &MetadataMap, body: T) -> Response<T> {
    let mut response = Response::new(body);
    echo_metadata(request, response.metadata_mut());
    response
}

fn count_trailer(count: u64) -> MetadataMap {
    let mut trailers = MetadataMap::new();
    trailers.insert(MESSAGE_COUNT_TRAILER, MetadataValue::from(count));
    trailers
}

/// The status a stream ends with: OK or the error, with the message count as a trailer.
fn final_status(outcome: Result<(), CourierError>, count: u64) -> Status {
    match outcome {
        Ok(()) => Status::with_metadata(Code::Ok, "", count_trailer(count)),
        Err(error) => Status::with_metadata(error.code(), error.to_string(), count_trailer(count)),
    }
}

// === SayHelloService ===

#[tonic::async_trait]
impl SayHelloService for Courier {
    // At debug: the `rpc` span of the trace layer already names the call, and a second span at
    // info measurably slowed unary calls (BENCHMARKS.md).
    #[tracing::instrument(level = "debug", skip_all)]
    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let name = &request.get_ref().name;
        if name.is_empty() {
            return Err(CourierError::invalid("name", "is required").into());
        }
        if name.len() > MAX_NAME_LEN {
            return Err(CourierError::invalid(
                "name",
                format!("is longer than {MAX_NAME_LEN} bytes"),
            )
            .into());
        }
        let msg = format!("hello world! {name}");
        Ok(respond(request.metadata(), HelloResponse { msg }))
    }
}

// === MessageService ===

#[tonic::async_trait]
impl MessageService for Courier {
    type ReceiveMessageStream = ReceiverStream<Result<ReceiveMessageResponse, Status>>;

    #[tracing::instrument(skip_all, fields(user = %request.get_ref().user))]
    async fn receive_message(
        &self,
        request: Request<ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        validate_user("user", &body.user)?;
        if let Some(caller) = caller.filter(|caller| *caller != body.user) {
            return Err(CourierError::PermissionDenied(format!(
                "{caller:?} may not read the messages of {:?}",
                body.user
            ))
            .into());
        }
        let idle_timeout = validate_idle_timeout(body.idle_timeout)?;
        let after_id = validate_after_id(&body.after_id)?;
        let permit = self.stream_permit()?;
        let (sender, receiver) = mpsc::channel(1);
        tokio::spawn(deliver(
            permit,
            Arc::clone(&self.mailboxes),
            body.user.clone(),
            after_id,
            idle_timeout,
            self.shutdown.clone(),
            sender,
        ));
        Ok(respond(request.metadata(), ReceiverStream::new(receiver)))
    }

    #[tracing::instrument(skip_all)]
    async fn send_message(
        &self,
        request: Request<Streaming<SendMessageRequest>>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        let caller = caller(&request)?;
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let mut count: u64 = 0;
        // What has arrived is validated at once and committed in batches; everything before a
        // bad message, a full queue or a failed stream stays queued.
        loop {
            let (batch, end) = read_batch(
                &mut stream,
                caller.as_deref(),
                |request: SendMessageRequest| request.message,
            )
            .await;
            let committed = commit(&self.mailboxes, batch, &mut count).await;
            let error = match (committed, end) {
                (Ok(()), BatchEnd::More) => continue,
                (Ok(()), BatchEnd::Finished) => break,
                // The client failed mid-stream: pass its error on.
                (Ok(()), BatchEnd::Failed(status)) => return Err(status),
                (Err(error), _) | (Ok(()), BatchEnd::Invalid(error)) => error,
            };
            tracing::warn!(%error, queued = count, "rejected a message; the stream ends");
            let text = format!("{error} ({count} earlier messages of this stream were queued)");
            return Err(Status::with_metadata(
                error.code(),
                text,
                count_trailer(count),
            ));
        }
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        Ok(respond(&metadata, SendMessageResponse { count }))
    }
}

/// Feeds a ReceiveMessage stream from `user`'s queue (after `after_id` when resuming) until the
/// idle timeout, shutdown, or the client leaving. A message taken but not handed to the stream
/// goes back to the queue.
async fn deliver(
    permit: OwnedSemaphorePermit,
    mailboxes: Arc<Mailboxes>,
    user: String,
    mut replay: Option<u64>,
    idle_timeout: Option<Duration>,
    shutdown: CancellationToken,
    sender: mpsc::Sender<Result<ReceiveMessageResponse, Status>>,
) {
    let mut count = 0;
    let outcome = loop {
        let next = async {
            match idle_timeout {
                Some(limit) => tokio::time::timeout(limit, mailboxes.take(&user, &mut replay))
                    .await
                    .ok(),
                None => Some(mailboxes.take(&user, &mut replay).await),
            }
        };
        let taken = tokio::select! {
            biased;
            () = sender.closed() => return,
            () = shutdown.cancelled() => break Err(CourierError::ShuttingDown),
            next = next => match next {
                Some(Ok(taken)) => taken,
                Some(Err(error)) => break Err(error.into()),
                None => break Ok(()),
            },
        };
        let Taken { envelope, receipt } = taken;
        let response = ReceiveMessageResponse {
            message: Some(to_proto(envelope)),
        };
        match hand_over(&mailboxes, &user, &sender, receipt, response).await {
            Ok(true) => count += 1,
            Ok(false) => return,
            Err(error) => break Err(error),
        }
    };
    // Released before the end is announced, so a client that saw the end may open another.
    drop(permit);
    // The client may be gone already; then there is nobody to tell.
    let _ = sender.send(Err(final_status(outcome, count))).await;
}

/// Hands one taken message to `user`'s stream and records the outcome: delivered, or back to
/// the queue if the client is gone (then answers `Ok(false)`).
async fn hand_over<T>(
    mailboxes: &Mailboxes,
    user: &str,
    sender: &mpsc::Sender<Result<T, Status>>,
    receipt: Receipt,
    response: T,
) -> Result<bool, CourierError> {
    if sender.send(Ok(response)).await.is_err() {
        tracing::debug!(?receipt, "receiver left; message requeued");
        mailboxes.undelivered(user, receipt);
        return Ok(false);
    }
    mailboxes.delivered(user, receipt)?;
    Ok(true)
}

// === ChatService ===

#[tonic::async_trait]
impl ChatService for Courier {
    type ChatStream = ReceiverStream<Result<ChatResponse, Status>>;

    #[tracing::instrument(skip_all)]
    async fn chat(
        &self,
        request: Request<Streaming<ChatRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let user = caller(&request)?.ok_or_else(|| {
            CourierError::invalid("metadata from", "is required when authentication is off")
        })?;
        let metadata = request.metadata().clone();
        let permit = self.stream_permit()?;
        let (sender, receiver) = mpsc::channel(1);
        tokio::spawn(relay(
            permit,
            Arc::clone(&self.mailboxes),
            user,
            request.into_inner(),
            self.shutdown.clone(),
            sender,
        ));
        Ok(respond(&metadata, ReceiverStream::new(receiver)))
    }
}

/// Runs one chat stream: queues what `user` sends for its recipients and streams back what is
/// queued for `user`. When the client half-closes, what is queued for `user` then is delivered
/// and the stream ends with OK.
async fn relay(
    permit: OwnedSemaphorePermit,
    mailboxes: Arc<Mailboxes>,
    user: String,
    mut inbound: Streaming<ChatRequest>,
    shutdown: CancellationToken,
    sender: mpsc::Sender<Result<ChatResponse, Status>>,
) {
    // Chat streams never replay: they take what is queued.
    let mut no_replay = None;
    let mut count = 0;
    let outcome = loop {
        tokio::select! {
            biased;
            () = sender.closed() => return,
            () = shutdown.cancelled() => break Err(CourierError::ShuttingDown),
            (batch, end) = read_batch(&mut inbound, Some(&user), |request: ChatRequest| request.message) => {
                let mut queued = 0;
                let error = match (commit(&mailboxes, batch, &mut queued).await, end) {
                    (Ok(()), BatchEnd::More) => continue,
                    (Err(error), _) | (Ok(()), BatchEnd::Invalid(error)) => error,
                    // The client reset or sent a broken frame: its stream is over.
                    (Ok(()), BatchEnd::Failed(status)) => {
                        tracing::debug!(%status, "chat inbound failed");
                        return;
                    }
                    // The client half-closed: deliver what is due, then end.
                    (Ok(()), BatchEnd::Finished) => {
                        break loop {
                            let taken = match mailboxes.try_take(&user, &mut no_replay) {
                                Ok(Some(taken)) => taken,
                                Ok(None) => break Ok(()),
                                Err(error) => break Err(error.into()),
                            };
                            let response = chat_response(taken.envelope);
                            match hand_over(&mailboxes, &user, &sender, taken.receipt, response).await {
                                Ok(true) => count += 1,
                                Ok(false) => return,
                                Err(error) => break Err(error),
                            }
                        };
                    }
                };
                tracing::warn!(%error, "rejected a chat message; the stream ends");
                break Err(error);
            },
            taken = mailboxes.take(&user, &mut no_replay) => {
                let taken = match taken {
                    Ok(taken) => taken,
                    Err(error) => break Err(error.into()),
                };
                let response = chat_response(taken.envelope);
                match hand_over(&mailboxes, &user, &sender, taken.receipt, response).await {
                    Ok(true) => count += 1,
                    Ok(false) => return,
                    Err(error) => break Err(error),
                }
            }
        }
    };
    drop(permit);
    let _ = sender.send(Err(final_status(outcome, count))).await;
}

fn chat_response(envelope: Envelope) -> ChatResponse {
    ChatResponse {
        message: Some(to_proto(envelope)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: &str, to: &str, content: &str) -> Option<Message> {
        Some(Message {
            from: from.into(),
            to: to.into(),
            content: content.into(),
            ..Message::default()
        })
    }

    #[test]
    fn valid_messages_pass() {
        assert_eq!(
            validate_message(message("jack", "mike", "hi"), Some("jack")),
            Ok(NewMessage {
                from: "jack".into(),
                to: "mike".into(),
                content: "hi".into()
            })
        );
        assert!(validate_message(message("jack", "mike", "hi"), None).is_ok());
    }

    #[test]
    fn invalid_messages_name_the_field() {
        let field_of = |message, caller| match validate_message(message, caller) {
            Err(CourierError::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert_eq!(field_of(None, None), "message");
        assert_eq!(field_of(message("", "mike", "hi"), None), "message.from");
        assert_eq!(field_of(message("jack", "", "hi"), None), "message.to");
        assert_eq!(field_of(message("jack", "mi ke", "hi"), None), "message.to");
        assert_eq!(
            field_of(message("jack", "mike", ""), None),
            "message.content"
        );
        let long = "x".repeat(MAX_CONTENT_LEN + 1);
        assert_eq!(
            field_of(message("jack", "mike", &long), None),
            "message.content"
        );
        let mut with_id = message("jack", "mike", "hi");
        with_id.as_mut().unwrap().id = "7".into();
        assert_eq!(field_of(with_id, None), "message.id");
    }

    #[test]
    fn spoofed_senders_are_denied() {
        assert_eq!(
            validate_message(message("jack", "mike", "hi"), Some("mike")),
            Err(CourierError::PermissionDenied(
                "message.from is \"jack\" but the caller is \"mike\"".into()
            ))
        );
    }

    #[tokio::test]
    async fn a_message_that_cannot_be_written_goes_back_to_the_queue() {
        let store = Arc::new(crate::store::MemoryStore::default());
        let mailboxes = Arc::new(Mailboxes::new(store, 10));
        mailboxes.enqueue("jack", "mike", "first").await.unwrap();
        mailboxes.enqueue("jack", "mike", "second").await.unwrap();
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let taken = mailboxes.take("mike", &mut None).await.unwrap();
        let response = chat_response(taken.envelope);
        assert_eq!(
            hand_over(&mailboxes, "mike", &sender, taken.receipt, response).await,
            Ok(false)
        );
        let again = mailboxes.try_take("mike", &mut None).unwrap().unwrap();
        assert_eq!(again.envelope.content, "first");
        mailboxes.delivered("mike", again.receipt).unwrap();
        let next = mailboxes.try_take("mike", &mut None).unwrap().unwrap();
        assert_eq!(next.envelope.content, "second");
    }

    #[test]
    fn after_ids_are_message_ids() {
        assert_eq!(validate_after_id(""), Ok(None));
        assert_eq!(validate_after_id("42"), Ok(Some(42)));
        assert_eq!(
            validate_after_id("x"),
            Err(CourierError::invalid("after_id", "is not a message id"))
        );
    }

    #[test]
    fn idle_timeouts_must_be_positive_and_bounded() {
        let duration = |seconds, nanos| Some(pbjson_types::Duration { seconds, nanos });
        assert_eq!(validate_idle_timeout(None), Ok(None));
        assert_eq!(
            validate_idle_timeout(duration(1, 500_000_000)),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert!(validate_idle_timeout(duration(0, 0)).is_err());
        assert!(validate_idle_timeout(duration(-1, 0)).is_err());
        assert!(validate_idle_timeout(duration(90_000, 0)).is_err());
    }

    /// The decode and validation path a request takes, fuzzed. `make test` runs proptest's
    /// default number of cases; `make fuzz` runs many more (PROPTEST_CASES).
    mod fuzz {
        use super::*;
        use crate::pb::chat::ChatRequest;
        use crate::pb::hello::HelloRequest;
        use proptest::prelude::*;
        use prost::Message as _;

        fn valid_user(user: &str) -> bool {
            (1..=MAX_USER_LEN).contains(&user.len())
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic_the_decode_and_validation_path(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(request) = SendMessageRequest::decode(bytes.as_slice()) {
                    let _ = validate_message(request.message, Some("jack"));
                }
                if let Ok(request) = ChatRequest::decode(bytes.as_slice()) {
                    let _ = validate_message(request.message, None);
                }
                if let Ok(request) = ReceiveMessageRequest::decode(bytes.as_slice()) {
                    let _ = validate_user("user", &request.user);
                    let _ = validate_idle_timeout(request.idle_timeout);
                    let _ = validate_after_id(&request.after_id);
                }
                let _ = HelloRequest::decode(bytes.as_slice());
            }

            #[test]
            fn validation_accepts_exactly_the_messages_that_follow_the_rules(
                from in "[a-z._-]{0,3}|\\PC{0,70}",
                to in "[a-z._-]{0,3}|\\PC{0,70}",
                content in "\\PC{0,8}|x{4090,4100}",
                id in "|[0-9]{1,3}",
                caller in proptest::option::of("[a-z]{1,3}"),
            ) {
                let message = Message { from: from.clone(), to: to.clone(), content: content.clone(), id: id.clone(), sent_at: None };
                let follows_rules = valid_user(&from)
                    && valid_user(&to)
                    && (1..=MAX_CONTENT_LEN).contains(&content.len())
                    && id.is_empty();
                let allowed = caller.as_deref().is_none_or(|caller| caller == from);
                let outcome = validate_message(Some(message), caller.as_deref());
                match outcome {
                    Ok(outgoing) => {
                        prop_assert!(follows_rules && allowed);
                        prop_assert_eq!(outgoing, NewMessage { from, to, content });
                    }
                    Err(CourierError::PermissionDenied(_)) => prop_assert!(follows_rules && !allowed),
                    Err(CourierError::InvalidArgument { .. }) => prop_assert!(!follows_rules),
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
