//! `courier.message.v1.MessageService`: SendMessage queues a client stream of messages in
//! batches; PostMessage queues one, once per sender and idempotency key; ReceiveMessage streams
//! a user's queue through a [`Mailbox`] fed by a task.

use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use super::Courier;
use super::convert::{self, caller, count_trailer, request_id, respond};
use super::status::CourierError;
use super::stream::{BatchEnd, commit, finish, hand_over, read_batch};
use crate::domain::{Mailbox, Posted, Taken};
use crate::pb::message::message_service_server::MessageService;
use crate::pb::message::{
    PostMessageRequest, PostMessageResponse, ReceiveMessageRequest, ReceiveMessageResponse,
    SendMessageRequest, SendMessageResponse,
};

#[tonic::async_trait]
impl MessageService for Courier {
    type ReceiveMessageStream = ReceiverStream<Result<ReceiveMessageResponse, Status>>;

    async fn receive_message(
        &self,
        request: Request<ReceiveMessageRequest>,
    ) -> Result<Response<Self::ReceiveMessageStream>, Status> {
        let id = request_id(request.metadata());
        let stream = self
            .open_receive(&request)
            .map_err(|error| error.into_status(&id))?;
        Ok(respond(request.metadata(), stream))
    }

    async fn send_message(
        &self,
        request: Request<Streaming<SendMessageRequest>>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        let id = request_id(request.metadata());
        let caller = caller(&request).map_err(|error| error.into_status(&id))?;
        let metadata = request.metadata().clone();
        let mut stream = request.into_inner();
        let mut count: u64 = 0;
        // What has arrived is validated at once and committed in batches; everything before a
        // bad message, a full queue or a failed stream stays queued.
        loop {
            let (batch, end) = read_batch(
                &mut stream,
                caller.as_ref(),
                |request: SendMessageRequest| request.message,
            )
            .await;
            let committed = commit(&self.mailboxes, batch, &mut count).await;
            let error = match (committed, end) {
                (Ok(()), BatchEnd::More) => continue,
                (Ok(()), BatchEnd::Finished) => break,
                // The client's stream failed (a broken or oversized frame): its status, with
                // the count, like any other refusal. A client that reset hears nothing.
                (Ok(()), BatchEnd::Failed(status)) => CourierError::Inbound(status),
                (Err(error), _) | (Ok(()), BatchEnd::Invalid(error)) => error,
            };
            tracing::debug!(code = ?error.code(), queued = count, "a message was refused; the stream ends");
            let mut status = error.into_status_with(&id, count_trailer(count));
            let text = format!(
                "{} ({count} earlier messages of this stream were queued)",
                status.message()
            );
            status = Status::with_metadata(status.code(), text, status.metadata().clone());
            return Err(status);
        }
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        Ok(respond(&metadata, SendMessageResponse { count }))
    }

    async fn post_message(
        &self,
        request: Request<PostMessageRequest>,
    ) -> Result<Response<PostMessageResponse>, Status> {
        let id = request_id(request.metadata());
        let posted = self
            .post(&request)
            .await
            .map_err(|error| error.into_status(&id))?;
        if let Posted::Replayed(envelope) = &posted {
            tracing::debug!(
                id = envelope.id,
                "a post was retried; answered the first result"
            );
        }
        let message = Some(convert::message(posted.into_envelope()));
        Ok(respond(request.metadata(), PostMessageResponse { message }))
    }
}

impl Courier {
    /// Validates a PostMessage request (the message as SendMessage does, then the key) and
    /// posts it.
    async fn post(&self, request: &Request<PostMessageRequest>) -> Result<Posted, CourierError> {
        let caller = caller(request)?;
        let body = request.get_ref();
        let message = convert::new_message(body.message.clone(), caller.as_ref())?;
        let key = convert::idempotency_key(&body.idempotency_key)?;
        Ok(self.mailboxes.post(message, key).await?)
    }

    /// Validates a ReceiveMessage request and starts the task feeding its stream.
    fn open_receive(
        &self,
        request: &Request<ReceiveMessageRequest>,
    ) -> Result<ReceiverStream<Result<ReceiveMessageResponse, Status>>, CourierError> {
        let caller = caller(request)?;
        let body = request.get_ref();
        let user = convert::user_name("user", &body.user)?;
        if let Some(caller) = caller.filter(|caller| *caller != user) {
            return Err(CourierError::PermissionDenied(format!(
                "{caller:?} may not read the messages of {user:?}"
            )));
        }
        let idle_timeout = convert::idle_timeout(body.idle_timeout)?;
        let after_id = convert::after_id(&body.after_id)?;
        let permit = self.stream_permit()?;
        let mailbox = self.mailboxes.open(&user, after_id)?;
        let (sender, receiver) = mpsc::channel(1);
        tokio::spawn(
            deliver(
                permit,
                mailbox,
                idle_timeout,
                self.shutdown.clone(),
                sender,
                request_id(request.metadata()),
            )
            // In the call's `rpc` span, which exists only when debug lines are on.
            .in_current_span(),
        );
        Ok(ReceiverStream::new(receiver))
    }
}

/// Feeds a ReceiveMessage stream from `mailbox` until the idle timeout, shutdown, or the client
/// leaving. A message taken but not handed to the stream goes back to the queue.
async fn deliver(
    permit: OwnedSemaphorePermit,
    mut mailbox: Mailbox,
    idle_timeout: Option<Duration>,
    shutdown: CancellationToken,
    sender: mpsc::Sender<Result<ReceiveMessageResponse, Status>>,
    request_id: String,
) {
    let mut count = 0;
    let outcome = loop {
        let next = async {
            match idle_timeout {
                Some(limit) => tokio::time::timeout(limit, mailbox.take()).await.ok(),
                None => Some(mailbox.take().await),
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
            message: Some(convert::message(envelope)),
        };
        match hand_over(&mailbox, &sender, receipt, response).await {
            Ok(true) => count += 1,
            Ok(false) => return,
            Err(error) => break Err(error),
        }
    };
    finish(mailbox, permit, &sender, outcome, count, &request_id).await;
}
