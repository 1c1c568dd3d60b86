//! `courier.chat.v1.ChatService`: one bidirectional stream per user, relaying what it sends to
//! the recipients' queues and streaming back what is queued for it.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use super::Courier;
use super::convert::{self, caller, request_id, respond};
use super::status::CourierError;
use super::stream::{BatchEnd, commit, finish, hand_over, read_batch};
use crate::domain::{Envelope, Mailbox, Mailboxes};
use crate::pb::chat::chat_service_server::ChatService;
use crate::pb::chat::{ChatRequest, ChatResponse};

#[tonic::async_trait]
impl ChatService for Courier {
    type ChatStream = ReceiverStream<Result<ChatResponse, Status>>;

    async fn chat(
        &self,
        request: Request<Streaming<ChatRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let id = request_id(request.metadata());
        let opened = (|| {
            let user = caller(&request)?.ok_or_else(|| {
                CourierError::invalid("metadata from", "is required when authentication is off")
            })?;
            let permit = self.stream_permit()?;
            let mailbox = self.mailboxes.open(&user, None)?;
            Ok::<_, CourierError>((permit, mailbox))
        })();
        let (permit, mailbox) = opened.map_err(|error| error.into_status(&id))?;
        let metadata = request.metadata().clone();
        let (sender, receiver) = mpsc::channel(1);
        tokio::spawn(
            relay(
                permit,
                Arc::clone(&self.mailboxes),
                mailbox,
                request.into_inner(),
                self.shutdown.clone(),
                sender,
                id,
            )
            // In the call's `rpc` span, which exists only when debug lines are on.
            .in_current_span(),
        );
        Ok(respond(&metadata, ReceiverStream::new(receiver)))
    }
}

/// Runs one chat stream: queues what the user sends for its recipients and streams back what is
/// queued for the user. When the client half-closes, what is queued for the user then is
/// delivered and the stream ends with OK.
async fn relay(
    permit: OwnedSemaphorePermit,
    mailboxes: Arc<Mailboxes>,
    mut mailbox: Mailbox,
    mut inbound: Streaming<ChatRequest>,
    shutdown: CancellationToken,
    sender: mpsc::Sender<Result<ChatResponse, Status>>,
    request_id: String,
) {
    let user = mailbox.user().clone();
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
                    // A message over the size limit, a broken frame, or a reset: the chat ends
                    // with that status (an oversized message's is RESOURCE_EXHAUSTED by the
                    // time it leaves the server). A client that reset or went away gets
                    // nothing, as the response stream is gone too.
                    (Ok(()), BatchEnd::Failed(status)) => CourierError::Inbound(status),
                    // The client half-closed: deliver what is due, then end.
                    (Ok(()), BatchEnd::Finished) => {
                        break loop {
                            let taken = match mailbox.try_take() {
                                Ok(Some(taken)) => taken,
                                Ok(None) => break Ok(()),
                                Err(error) => break Err(error.into()),
                            };
                            let response = chat_response(taken.envelope);
                            match hand_over(&mailbox, &sender, taken.receipt, response).await {
                                Ok(true) => count += 1,
                                Ok(false) => return,
                                Err(error) => break Err(error),
                            }
                        };
                    }
                };
                tracing::debug!(code = ?error.code(), "a chat message was refused; the stream ends");
                break Err(error);
            },
            taken = mailbox.take() => {
                let taken = match taken {
                    Ok(taken) => taken,
                    Err(error) => break Err(error.into()),
                };
                let response = chat_response(taken.envelope);
                match hand_over(&mailbox, &sender, taken.receipt, response).await {
                    Ok(true) => count += 1,
                    Ok(false) => return,
                    Err(error) => break Err(error),
                }
            }
        }
    };
    finish(mailbox, permit, &sender, outcome, count, &request_id).await;
}

fn chat_response(envelope: Envelope) -> ChatResponse {
    ChatResponse {
        message: Some(convert::message(envelope)),
    }
}
