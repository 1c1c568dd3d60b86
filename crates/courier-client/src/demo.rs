//! The original tutorial's scenarios, played against any server of the contract, with every
//! answer checked: hello; jack sends mike five messages; mike receives them in order; jack and
//! mike chat three lines each way. Headers and trailers are printed along the way.
//!
//! The demo requires only what the contract (`proto/`) defines. Courier's own metadata
//! extensions (the `x-request-id` and `x-echo-*` response headers, the `x-message-count`
//! trailer of a stream; names in [`courier_common::metadata`]) are not in the contract, and
//! another implementation need not send them. Every call sends a request id and an
//! [`ECHO_KEY`] entry; where a response carries an extension it must be right (the id and value
//! sent, the number of messages the stream carried), and the transcript ends by saying where
//! each extension was present.
//!
//! Messages carry a run id, so a server that still holds messages from earlier runs is not
//! mistaken for a wrong one.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use courier_common::metadata;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::metadata::{KeyAndValueRef, MetadataMap};

use crate::pb::chat::ChatRequest;
use crate::pb::hello::HelloRequest;
use crate::pb::message::{Message, ReceiveMessageRequest, SendMessageRequest};
use crate::{CallMetadata, ClientError, Connection, ExtraMetadata};

/// Lines each side sends in the chat scenario.
const CHAT_LINES: usize = 3;
/// Messages jack sends mike in the queue scenario.
const QUEUED_MESSAGES: usize = 5;
/// How long the receiver waits for more before the stream ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// How soon after its last message, as the client sees it, a stream may end and still count as
/// ending on [`IDLE_TIMEOUT`]: the server's clock starts when it hands the message over, so
/// the client's measure can come out a little short; half is the room left for that.
const IDLE_END_EARLIEST: Duration = IDLE_TIMEOUT.checked_div(2).unwrap();
/// How late after its last message a stream may end and still count as ending on
/// [`IDLE_TIMEOUT`], allowing for a busy server.
const IDLE_END_LATEST: Duration = IDLE_TIMEOUT.saturating_mul(3);
/// Longest wait for any single answer, so a broken server fails the demo instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// The `x-echo-*` entry every call of the demo sends (its value names the run and the user).
pub const ECHO_KEY: &str = "x-echo-demo";

/// Writes one line to a transcript; writing to a `String` cannot fail.
macro_rules! say {
    ($log:expr, $($arg:tt)*) => {
        let _ = writeln!($log, $($arg)*);
    };
}

/// Why the demo failed. Its [`source`](std::error::Error::source) is the cause under it: the
/// client error's, or the one tonic kept in a failed call's status.
#[derive(Debug)]
pub enum DemoError {
    /// Could not connect or build the call metadata.
    Client(ClientError),
    /// An RPC failed.
    Rpc {
        /// The scenario step.
        step: &'static str,
        /// What the server said.
        status: Status,
    },
    /// The server answered, but wrongly.
    WrongAnswer {
        /// The scenario step.
        step: &'static str,
        /// Expected versus got.
        detail: String,
    },
    /// The server did not answer in time.
    Timeout(&'static str),
}

impl From<ClientError> for DemoError {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(error) => error.fmt(f),
            Self::Rpc { step, status } => {
                write!(f, "{step}: the server answered ")?;
                crate::write_status(f, status)
            }
            Self::WrongAnswer { step, detail } => write!(f, "{step}: wrong answer: {detail}"),
            Self::Timeout(step) => write!(f, "{step}: no answer within {ANSWER_TIMEOUT:?}"),
        }
    }
}

impl std::error::Error for DemoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The client error stands in for itself (its text is this error's), so its cause
            // comes next.
            Self::Client(error) => error.source(),
            Self::Rpc { status, .. } => status.source(),
            Self::WrongAnswer { .. } | Self::Timeout(_) => None,
        }
    }
}

fn rpc(step: &'static str) -> impl Fn(Status) -> DemoError {
    move |status| DemoError::Rpc { step, status }
}

fn check(step: &'static str, ok: bool, detail: impl FnOnce() -> String) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError::WrongAnswer {
            step,
            detail: detail(),
        })
    }
}

async fn timed<T>(step: &'static str, future: impl Future<Output = T>) -> Result<T, DemoError> {
    tokio::time::timeout(ANSWER_TIMEOUT, future)
        .await
        .map_err(|_| DemoError::Timeout(step))
}

/// Renders metadata as `key=value` pairs; binary values as base64.
pub fn describe_metadata(metadata: &MetadataMap) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for entry in metadata.iter() {
        let (key, value) = match entry {
            KeyAndValueRef::Ascii(key, value) => (
                key.as_str(),
                value.to_str().unwrap_or("<binary>").to_owned(),
            ),
            KeyAndValueRef::Binary(key, value) => (
                key.as_str(),
                base64::engine::general_purpose::STANDARD
                    .encode(value.to_bytes().unwrap_or_default()),
            ),
        };
        if matches!(
            key,
            "content-type" | "date" | "grpc-status" | "grpc-message"
        ) {
            continue;
        }
        let _ = write!(
            out,
            "{}{key}={value}",
            if out.is_empty() { "" } else { " " }
        );
    }
    out
}

/// What one call sent beyond the contract, to compare with what comes back.
struct Sent {
    request_id: String,
    echo: String,
}

/// How many responses and streams carried each of Courier's extensions; every one counted here
/// was also checked.
#[derive(Clone, Copy, Debug, Default)]
struct Extensions {
    /// Responses whose headers were examined.
    responses: usize,
    /// Of those, the ones with `x-request-id`.
    request_ids: usize,
    /// Of those, the ones echoing [`ECHO_KEY`].
    echoes: usize,
    /// Streams whose trailers were examined.
    streams: usize,
    /// Of those, the ones with `x-message-count`.
    counts: usize,
}

impl Extensions {
    fn add(&mut self, other: Self) {
        self.responses += other.responses;
        self.request_ids += other.request_ids;
        self.echoes += other.echoes;
        self.streams += other.streams;
        self.counts += other.counts;
    }

    /// Where each extension was present, one line each.
    fn report(&self, log: &mut String) {
        fn presence(present: usize, total: usize, of: &str, checked: &str) -> String {
            match present {
                0 => format!("absent from all {total} {of}"),
                _ if present == total => format!("on all {total} {of}, {checked}"),
                _ => format!("on {present} of {total} {of}, {checked}"),
            }
        }
        say!(
            log,
            "\nCourier's metadata extensions (not in the contract; checked where present):"
        );
        say!(
            log,
            "  {} header: {}",
            metadata::REQUEST_ID,
            presence(
                self.request_ids,
                self.responses,
                "responses",
                "each the id the client sent"
            )
        );
        say!(
            log,
            "  {}* headers: {}",
            metadata::ECHO_PREFIX,
            presence(
                self.echoes,
                self.responses,
                "responses",
                &format!("each echoing the client's {ECHO_KEY}")
            )
        );
        say!(
            log,
            "  {} trailer: {}",
            metadata::MESSAGE_COUNT,
            presence(
                self.counts,
                self.streams,
                "streams",
                "each the number of messages on the stream"
            )
        );
    }
}

/// Prints a response's headers, under `who`, and checks the extensions it carries against what
/// the call sent.
fn check_headers(
    step: &'static str,
    who: &str,
    headers: &MetadataMap,
    sent: &Sent,
    log: &mut String,
    seen: &mut Extensions,
) -> Result<(), DemoError> {
    say!(log, "{who}headers: {}", describe_metadata(headers));
    seen.responses += 1;
    for (key, expected, count) in [
        (
            metadata::REQUEST_ID,
            &sent.request_id,
            &mut seen.request_ids,
        ),
        (ECHO_KEY, &sent.echo, &mut seen.echoes),
    ] {
        match headers.get(key) {
            None => {
                say!(log, "{who}{key}: absent");
            }
            Some(value) => {
                check(step, value.to_str().ok() == Some(expected.as_str()), || {
                    format!("{key} header {value:?}, but the client sent {expected:?}")
                })?;
                *count += 1;
                say!(log, "{who}{key}: {expected:?}, as the client sent");
            }
        }
    }
    Ok(())
}

/// Prints a stream's trailers, under `who`, and checks `x-message-count` if it is there.
fn check_trailers(
    step: &'static str,
    who: &str,
    trailers: &MetadataMap,
    carried: usize,
    log: &mut String,
    seen: &mut Extensions,
) -> Result<(), DemoError> {
    say!(log, "{who}trailers: {}", describe_metadata(trailers));
    seen.streams += 1;
    let key = metadata::MESSAGE_COUNT;
    match trailers.get(key) {
        None => {
            say!(log, "{who}{key}: absent");
        }
        Some(value) => {
            let counted = value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<usize>().ok());
            check(step, counted == Some(carried), || {
                format!("{key} trailer {value:?}, but the stream carried {carried} messages")
            })?;
            seen.counts += 1;
            say!(
                log,
                "{who}{key}: {carried}, the messages the stream carried"
            );
        }
    }
    Ok(())
}

/// The message a streamed response carries; the contract has one in each.
fn carried_message(step: &'static str, message: Option<Message>) -> Result<Message, DemoError> {
    message.ok_or_else(|| DemoError::WrongAnswer {
        step,
        detail: "a response without a message".into(),
    })
}

/// Checks one delivered message of this run: sender and recipient, and the id and `sent_at` the
/// contract has the server fill in (`ids` holds the ids seen so far on the stream).
fn check_delivered(
    step: &'static str,
    message: &Message,
    (from, to): (&str, &str),
    ids: &mut HashSet<String>,
) -> Result<(), DemoError> {
    check(step, message.from == from && message.to == to, || {
        format!(
            "{:?} came from {:?} to {:?}, expected from {from:?} to {to:?}",
            message.content, message.from, message.to
        )
    })?;
    check(step, !message.id.is_empty(), || {
        format!("{:?} was delivered without an id", message.content)
    })?;
    check(step, message.sent_at.is_some(), || {
        format!("{:?} was delivered without sent_at", message.content)
    })?;
    check(step, ids.insert(message.id.clone()), || {
        format!("id {:?} was given to two messages", message.id)
    })
}

/// Writes what `log` holds to `out`, so a transcript shows each step as it ends.
fn emit(out: &mut impl std::io::Write, log: &mut String) {
    let _ = out.write_all(log.as_bytes());
    let _ = out.flush();
    log.clear();
}

/// Who the demo acts as, and with which tokens.
pub struct Demo {
    connection: Connection,
    tokens: HashMap<String, String>,
    run_id: String,
}

impl Demo {
    /// A demo over `connection`; `tokens` maps `jack` and `mike` to their tokens when the server
    /// checks them.
    pub fn new(connection: Connection, tokens: HashMap<String, String>) -> Self {
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Self {
            connection,
            tokens,
            run_id,
        }
    }

    /// Metadata for acting as `user` in `step`: its token if known, `from` for servers without
    /// auth, and the request id and echo entry this call is known by.
    fn as_user(&self, user: &str, step: &str) -> Result<(CallMetadata, Sent), DemoError> {
        let sent = Sent {
            request_id: format!("demo-{}-{step}-{user}", self.run_id),
            echo: format!("{}-{user}", self.run_id),
        };
        let extra = vec![
            ExtraMetadata::caller(user)?,
            ExtraMetadata::parse(&format!("{}:{}", metadata::REQUEST_ID, sent.request_id))?,
            ExtraMetadata::parse(&format!("{ECHO_KEY}:{}", sent.echo))?,
        ];
        let metadata = CallMetadata::new(self.tokens.get(user).map(String::as_str), extra)?;
        Ok((metadata, sent))
    }

    fn message(&self, from: &str, to: &str, content: String) -> Message {
        Message {
            from: from.into(),
            to: to.into(),
            content: format!("{content} [run {}]", self.run_id),
            ..Message::default()
        }
    }

    /// Whether `message` was sent by this run of the demo.
    fn is_ours(&self, message: &Message) -> bool {
        message.content.ends_with(&format!("[run {}]", self.run_id))
    }

    /// Plays every scenario, printing a transcript to `out` step by step; stops at the first
    /// wrong answer, after printing what led to it.
    pub async fn run(&self, out: &mut impl std::io::Write) -> Result<(), DemoError> {
        let mut log = String::new();
        let mut seen = Extensions::default();

        let hello = self.hello(&mut log, &mut seen).await;
        emit(out, &mut log);
        hello?;
        let sent = self.send(&mut log, &mut seen).await;
        emit(out, &mut log);
        let sent = sent?;
        let received = self.receive(&mut log, &mut seen, &sent).await;
        emit(out, &mut log);
        received?;
        let chat = self.chat(&mut log, &mut seen).await;
        emit(out, &mut log);
        chat?;

        seen.report(&mut log);
        say!(log, "\ndemo passed: every answer was right");
        emit(out, &mut log);
        Ok(())
    }

    async fn hello(&self, log: &mut String, seen: &mut Extensions) -> Result<(), DemoError> {
        const STEP: &str = "hello";
        say!(log, "== unary: SayHelloService.Hello ==");
        let (metadata, sent) = self.as_user("jack", STEP)?;
        let mut client = self.connection.hello(metadata);
        say!(log, "jack> Hello(name: \"jack\")");
        let response = timed(
            STEP,
            client.hello(HelloRequest {
                name: "jack".into(),
            }),
        )
        .await?
        .map_err(rpc(STEP))?;
        check_headers(STEP, "  ", response.metadata(), &sent, log, seen)?;
        let msg = response.into_inner().msg;
        say!(log, "server> {msg:?}");
        check(STEP, msg == "hello world! jack", || {
            format!("expected \"hello world! jack\", got {msg:?}")
        })
    }

    async fn send(
        &self,
        log: &mut String,
        seen: &mut Extensions,
    ) -> Result<Vec<String>, DemoError> {
        const STEP: &str = "send";
        say!(log, "\n== client streaming: MessageService.SendMessage ==");
        let contents: Vec<Message> = (1..=QUEUED_MESSAGES)
            .map(|n| self.message("jack", "mike", format!("message {n} of {QUEUED_MESSAGES}")))
            .collect();
        for message in &contents {
            say!(
                log,
                "jack> {} -> {}: {:?}",
                message.from,
                message.to,
                message.content
            );
        }
        let requests = contents
            .iter()
            .cloned()
            .map(|message| SendMessageRequest {
                message: Some(message),
            })
            .collect::<Vec<_>>();
        let (metadata, sent) = self.as_user("jack", STEP)?;
        let mut client = self.connection.messages(metadata);
        let response = timed(STEP, client.send_message(tokio_stream::iter(requests)))
            .await?
            .map_err(rpc(STEP))?;
        check_headers(STEP, "  ", response.metadata(), &sent, log, seen)?;
        let count = response.into_inner().count;
        say!(log, "server> count: {count}");
        check(STEP, count == QUEUED_MESSAGES as i64, || {
            format!("expected count {QUEUED_MESSAGES}, got {count}")
        })?;
        Ok(contents
            .into_iter()
            .map(|message| message.content)
            .collect())
    }

    async fn receive(
        &self,
        log: &mut String,
        seen: &mut Extensions,
        sent: &[String],
    ) -> Result<(), DemoError> {
        const STEP: &str = "receive";
        say!(
            log,
            "\n== server streaming: MessageService.ReceiveMessage =="
        );
        say!(
            log,
            "mike> ReceiveMessage(user: \"mike\", idle_timeout: {IDLE_TIMEOUT:?})"
        );
        let (metadata, call) = self.as_user("mike", STEP)?;
        let mut client = self.connection.messages(metadata);
        let request = ReceiveMessageRequest {
            user: "mike".into(),
            idle_timeout: Some(IDLE_TIMEOUT.into()),
            after_id: String::new(),
        };
        let response = timed(STEP, client.receive_message(request))
            .await?
            .map_err(rpc(STEP))?;
        check_headers(STEP, "  ", response.metadata(), &call, log, seen)?;
        let mut stream = response.into_inner();
        let mut ours = Vec::new();
        let mut ids = HashSet::new();
        let mut carried = 0;
        let mut last = Instant::now();
        // tonic gives `Ok(None)` only for a stream that ended with status OK; any other status
        // is an `Err`, which ends the demo here.
        while let Some(response) = timed(STEP, stream.message()).await?.map_err(rpc(STEP))? {
            last = Instant::now();
            carried += 1;
            let message = carried_message(STEP, response.message)?;
            if !self.is_ours(&message) {
                continue;
            }
            say!(
                log,
                "server> #{} {} -> {}: {:?}",
                message.id,
                message.from,
                message.to,
                message.content
            );
            check_delivered(STEP, &message, ("jack", "mike"), &mut ids)?;
            ours.push(message.content);
        }
        let quiet = last.elapsed();
        say!(
            log,
            "  the stream ended with OK, {quiet:.1?} after its last message"
        );
        let earlier = carried - ours.len();
        if earlier > 0 {
            say!(
                log,
                "  ({earlier} messages from earlier runs were also delivered)"
            );
        }
        check(STEP, ours == sent, || {
            format!("expected {sent:?} in order, got {ours:?}")
        })?;
        check(
            STEP,
            (IDLE_END_EARLIEST..=IDLE_END_LATEST).contains(&quiet),
            || {
                format!(
                    "the stream ended {quiet:?} after its last message, but idle_timeout was \
                     {IDLE_TIMEOUT:?}"
                )
            },
        )?;
        let trailers = timed(STEP, stream.trailers())
            .await?
            .map_err(rpc(STEP))?
            .unwrap_or_default();
        check_trailers(STEP, "  ", &trailers, carried, log, seen)
    }

    async fn chat(&self, log: &mut String, seen: &mut Extensions) -> Result<(), DemoError> {
        say!(log, "\n== bidirectional streaming: ChatService.Chat ==");
        let (jack, mike) = tokio::join!(
            self.chat_side("jack", "mike"),
            self.chat_side("mike", "jack")
        );
        let mut outcome = Ok(());
        for (transcript, side) in [jack, mike] {
            log.push_str(&transcript);
            match side {
                Ok(side) => seen.add(side),
                Err(error) => outcome = outcome.and(Err(error)),
            }
        }
        outcome
    }

    /// One side of the chat, with its transcript (also when it failed) and what it saw of the
    /// extensions.
    async fn chat_side(
        &self,
        user: &'static str,
        peer: &'static str,
    ) -> (String, Result<Extensions, DemoError>) {
        let mut transcript = String::new();
        let mut seen = Extensions::default();
        let outcome = self.chat_as(user, peer, &mut transcript, &mut seen).await;
        (transcript, outcome.map(|()| seen))
    }

    /// Queues its lines, opens the chat, waits for the other side's lines, half-closes and
    /// expects the stream to end with OK.
    async fn chat_as(
        &self,
        user: &'static str,
        peer: &'static str,
        log: &mut String,
        seen: &mut Extensions,
    ) -> Result<(), DemoError> {
        const STEP: &str = "chat";
        let who = format!("{user}: ");
        // The lines are queued before the call is made: a server may hold back its response
        // headers until it has read something.
        let (outbound, requests) = mpsc::channel(CHAT_LINES);
        for n in 1..=CHAT_LINES {
            let message = self.message(user, peer, format!("{user} says line {n}"));
            say!(log, "{user}> {:?}", message.content);
            // There is room for every line and the receiving end is alive: this cannot fail.
            let _ = outbound.try_send(ChatRequest {
                message: Some(message),
            });
        }
        let (metadata, call) = self.as_user(user, STEP)?;
        let mut client = self.connection.chat(metadata);
        let response = timed(STEP, client.chat(ReceiverStream::new(requests)))
            .await?
            .map_err(rpc(STEP))?;
        check_headers(STEP, &who, response.metadata(), &call, log, seen)?;
        let mut inbound = response.into_inner();
        let expected: Vec<String> = (1..=CHAT_LINES)
            .map(|n| format!("{peer} says line {n} [run {}]", self.run_id))
            .collect();
        let mut got = Vec::new();
        let mut ids = HashSet::new();
        let mut carried = 0;
        while got.len() < expected.len() {
            let Some(response) = timed(STEP, inbound.message()).await?.map_err(rpc(STEP))? else {
                break;
            };
            carried += 1;
            let message = carried_message(STEP, response.message)?;
            say!(
                log,
                "{user} got #{} from {}: {:?}",
                message.id,
                message.from,
                message.content
            );
            if self.is_ours(&message) {
                check_delivered(STEP, &message, (peer, user), &mut ids)?;
                got.push(message.content);
            }
        }
        check(STEP, got == expected, || {
            format!("{user} expected {expected:?} in order, got {got:?}")
        })?;
        drop(outbound);
        say!(log, "{user}: half-closed");
        // As in `receive`: `Ok(None)` is the end with status OK.
        while let Some(response) = timed(STEP, inbound.message()).await?.map_err(rpc(STEP))? {
            carried += 1;
            let message = carried_message(STEP, response.message)?;
            say!(log, "{user} got late {:?}", message.content);
            check(STEP, !self.is_ours(&message), || {
                format!("{user} got {:?} a second time", message.content)
            })?;
        }
        say!(log, "{user}: the stream ended with OK");
        let trailers = timed(STEP, inbound.trailers())
            .await?
            .map_err(rpc(STEP))?
            .unwrap_or_default();
        check_trailers(STEP, &who, &trailers, carried, log, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_key_is_one_courier_echoes() {
        assert!(ECHO_KEY.starts_with(metadata::ECHO_PREFIX));
    }

    #[test]
    fn the_report_says_where_each_extension_was() {
        let mut log = String::new();
        Extensions {
            responses: 5,
            request_ids: 0,
            echoes: 5,
            streams: 3,
            counts: 1,
        }
        .report(&mut log);
        let lines: Vec<&str> = log.lines().map(str::trim).collect();
        assert!(lines.contains(&"x-request-id header: absent from all 5 responses"));
        assert!(lines.contains(
            &"x-echo-* headers: on all 5 responses, each echoing the client's x-echo-demo"
        ));
        assert!(lines.contains(
            &"x-message-count trailer: on 1 of 3 streams, each the number of messages on the stream"
        ));
    }

    #[test]
    fn an_extension_that_is_there_must_be_right() {
        let sent = Sent {
            request_id: "demo-1".into(),
            echo: "e".into(),
        };
        let mut seen = Extensions::default();
        let mut log = String::new();

        let mut headers = MetadataMap::new();
        check_headers("t", "", &headers, &sent, &mut log, &mut seen).unwrap();
        headers.insert(metadata::REQUEST_ID, "demo-1".parse().unwrap());
        headers.insert(ECHO_KEY, "e".parse().unwrap());
        check_headers("t", "", &headers, &sent, &mut log, &mut seen).unwrap();
        assert_eq!((seen.responses, seen.request_ids, seen.echoes), (2, 1, 1));
        headers.insert(metadata::REQUEST_ID, "made-up".parse().unwrap());
        let error = check_headers("t", "", &headers, &sent, &mut log, &mut seen).unwrap_err();
        assert!(error.to_string().contains("x-request-id"), "{error}");

        let mut trailers = MetadataMap::new();
        check_trailers("t", "", &trailers, 4, &mut log, &mut seen).unwrap();
        trailers.insert(metadata::MESSAGE_COUNT, "4".parse().unwrap());
        check_trailers("t", "", &trailers, 4, &mut log, &mut seen).unwrap();
        assert_eq!((seen.streams, seen.counts), (2, 1));
        let error = check_trailers("t", "", &trailers, 5, &mut log, &mut seen).unwrap_err();
        assert!(error.to_string().contains("x-message-count"), "{error}");
    }
}
