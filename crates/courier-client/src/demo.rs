//! The original tutorial's scenarios, played against any server of the contract, with every
//! answer checked: hello; jack sends mike five messages; mike receives them in order; jack and
//! mike chat three lines each way. Headers and trailers are printed along the way.
//!
//! Messages carry a run id, so a server that still holds messages from earlier runs is not
//! mistaken for a wrong one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{KeyAndValueRef, MetadataMap};
use tonic::{Code, Status};

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
/// Longest wait for any single answer, so a broken server fails the demo instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Could not connect or build the call metadata.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An RPC failed.
    #[error("{step}: the server answered {code:?}: {message}", code = .status.code(), message = .status.message())]
    Rpc {
        /// The scenario step.
        step: &'static str,
        /// What the server said.
        status: Status,
    },
    /// The server answered, but wrongly.
    #[error("{step}: wrong answer: {detail}")]
    WrongAnswer {
        /// The scenario step.
        step: &'static str,
        /// Expected versus got.
        detail: String,
    },
    /// The server did not answer in time.
    #[error("{0}: no answer within {ANSWER_TIMEOUT:?}")]
    Timeout(&'static str),
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

    /// Metadata for acting as `user`: its token if known, and `from` for servers without auth.
    fn as_user(&self, user: &str) -> Result<CallMetadata, DemoError> {
        let from = ExtraMetadata::parse(&format!("from:{user}"))?;
        Ok(CallMetadata::new(
            self.tokens.get(user).map(String::as_str),
            vec![from],
        )?)
    }

    fn message(&self, from: &str, to: &str, content: String) -> Message {
        Message {
            from: from.into(),
            to: to.into(),
            content: format!("{content} [run {}]", self.run_id),
            ..Message::default()
        }
    }

    /// Plays every scenario, printing a transcript to `out`; stops at the first wrong answer.
    pub async fn run(&self, out: &mut impl std::io::Write) -> Result<(), DemoError> {
        self.hello(out).await?;
        let sent = self.send(out).await?;
        self.receive(out, &sent).await?;
        self.chat(out).await?;
        let _ = writeln!(out, "\ndemo passed: every answer was right");
        Ok(())
    }

    async fn hello(&self, out: &mut impl std::io::Write) -> Result<(), DemoError> {
        const STEP: &str = "hello";
        let _ = writeln!(out, "== unary: SayHelloService.Hello ==");
        let mut client = self.connection.hello(self.as_user("jack")?);
        let _ = writeln!(out, "jack> Hello(name: \"jack\")");
        let response = timed(
            STEP,
            client.hello(HelloRequest {
                name: "jack".into(),
            }),
        )
        .await?
        .map_err(rpc(STEP))?;
        let _ = writeln!(out, "  headers: {}", describe_metadata(response.metadata()));
        check(
            STEP,
            response.metadata().contains_key(crate::REQUEST_ID_HEADER),
            || "no x-request-id header".into(),
        )?;
        let msg = response.into_inner().msg;
        let _ = writeln!(out, "server> {msg:?}");
        check(STEP, msg == "hello world! jack", || {
            format!("expected \"hello world! jack\", got {msg:?}")
        })
    }

    async fn send(&self, out: &mut impl std::io::Write) -> Result<Vec<String>, DemoError> {
        const STEP: &str = "send";
        let _ = writeln!(out, "\n== client streaming: MessageService.SendMessage ==");
        let contents: Vec<Message> = (1..=QUEUED_MESSAGES)
            .map(|n| self.message("jack", "mike", format!("message {n} of {QUEUED_MESSAGES}")))
            .collect();
        for message in &contents {
            let _ = writeln!(
                out,
                "jack> {} -> {}: {:?}",
                message.from, message.to, message.content
            );
        }
        let requests = contents
            .iter()
            .cloned()
            .map(|message| SendMessageRequest {
                message: Some(message),
            })
            .collect::<Vec<_>>();
        let mut client = self.connection.messages(self.as_user("jack")?);
        let response = timed(STEP, client.send_message(tokio_stream::iter(requests)))
            .await?
            .map_err(rpc(STEP))?;
        let _ = writeln!(out, "  headers: {}", describe_metadata(response.metadata()));
        let count = response.into_inner().count;
        let _ = writeln!(out, "server> count: {count}");
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
        out: &mut impl std::io::Write,
        sent: &[String],
    ) -> Result<(), DemoError> {
        const STEP: &str = "receive";
        let _ = writeln!(
            out,
            "\n== server streaming: MessageService.ReceiveMessage =="
        );
        let _ = writeln!(
            out,
            "mike> ReceiveMessage(user: \"mike\", idle_timeout: {IDLE_TIMEOUT:?})"
        );
        let mut client = self.connection.messages(self.as_user("mike")?);
        let request = ReceiveMessageRequest {
            user: "mike".into(),
            idle_timeout: Some(IDLE_TIMEOUT.into()),
            after_id: String::new(),
        };
        let response = timed(STEP, client.receive_message(request))
            .await?
            .map_err(rpc(STEP))?;
        let _ = writeln!(out, "  headers: {}", describe_metadata(response.metadata()));
        let mut stream = response.into_inner();
        let mut ours = Vec::new();
        let mut earlier = 0;
        while let Some(response) = timed(STEP, stream.message()).await?.map_err(rpc(STEP))? {
            let message = response.message.unwrap_or_default();
            if message.content.ends_with(&format!("[run {}]", self.run_id)) {
                let _ = writeln!(
                    out,
                    "server> #{} {} -> {}: {:?}",
                    message.id, message.from, message.to, message.content
                );
                check(
                    STEP,
                    message.sent_at.is_some() && !message.id.is_empty(),
                    || "id or sent_at missing".into(),
                )?;
                ours.push(message.content);
            } else {
                earlier += 1;
            }
        }
        let trailers = timed(STEP, stream.trailers())
            .await?
            .map_err(rpc(STEP))?
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  stream ended OK after {IDLE_TIMEOUT:?} idle; trailers: {}",
            describe_metadata(&trailers)
        );
        if earlier > 0 {
            let _ = writeln!(
                out,
                "  ({earlier} messages from earlier runs were also delivered)"
            );
        }
        check(STEP, ours == sent, || {
            format!("expected {sent:?} in order, got {ours:?}")
        })?;
        let counted = trailers
            .get("x-message-count")
            .and_then(|value| value.to_str().ok());
        let expected = (sent.len() + earlier).to_string();
        check(STEP, counted == Some(expected.as_str()), || {
            format!("trailer x-message-count {counted:?}, expected {expected}")
        })
    }

    async fn chat(&self, out: &mut impl std::io::Write) -> Result<(), DemoError> {
        let _ = writeln!(out, "\n== bidirectional streaming: ChatService.Chat ==");
        let jack = self.chat_side("jack", "mike");
        let mike = self.chat_side("mike", "jack");
        let (jack, mike) = tokio::join!(jack, mike);
        for transcript in [jack?, mike?] {
            let _ = write!(out, "{transcript}");
        }
        Ok(())
    }

    /// One side of the chat: sends its lines, waits for the other side's, half-closes and
    /// expects the stream to end with OK. Returns its transcript.
    async fn chat_side(&self, user: &'static str, peer: &'static str) -> Result<String, DemoError> {
        const STEP: &str = "chat";
        let mut transcript = String::new();
        let (outbound, requests) = mpsc::channel(CHAT_LINES);
        let mut client = self.connection.chat(self.as_user(user)?);
        let response = timed(STEP, client.chat(ReceiverStream::new(requests)))
            .await?
            .map_err(rpc(STEP))?;
        let _ = writeln!(
            transcript,
            "{user}: headers: {}",
            describe_metadata(response.metadata())
        );
        let mut inbound = response.into_inner();
        for n in 1..=CHAT_LINES {
            let message = self.message(user, peer, format!("{user} says line {n}"));
            let _ = writeln!(transcript, "{user}> {:?}", message.content);
            // The stream is open until we drop `outbound`, so this cannot fail.
            let _ = outbound
                .send(ChatRequest {
                    message: Some(message),
                })
                .await;
        }
        let expected: Vec<String> = (1..=CHAT_LINES)
            .map(|n| format!("{peer} says line {n} [run {}]", self.run_id))
            .collect();
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let Some(response) = timed(STEP, inbound.message()).await?.map_err(rpc(STEP))? else {
                break;
            };
            let message = response.message.unwrap_or_default();
            let _ = writeln!(
                transcript,
                "{user} got #{} from {}: {:?}",
                message.id, message.from, message.content
            );
            if message.content.ends_with(&format!("[run {}]", self.run_id)) {
                got.push(message.content);
            }
        }
        check(STEP, got == expected, || {
            format!("{user} expected {expected:?} in order, got {got:?}")
        })?;
        drop(outbound);
        while let Some(extra) = timed(STEP, inbound.message()).await?.map_err(rpc(STEP))? {
            let _ = writeln!(
                transcript,
                "{user} got late {:?}",
                extra.message.unwrap_or_default().content
            );
        }
        let trailers = timed(STEP, inbound.trailers())
            .await?
            .map_err(rpc(STEP))?
            .unwrap_or_default();
        let _ = writeln!(
            transcript,
            "{user}: half-closed; stream ended {:?}; trailers: {}",
            Code::Ok,
            describe_metadata(&trailers)
        );
        check(STEP, trailers.contains_key("x-message-count"), || {
            format!("{user}: no x-message-count trailer")
        })?;
        Ok(transcript)
    }
}
