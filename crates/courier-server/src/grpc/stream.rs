//! What the streaming RPCs share: reading a client's messages in batches, committing them,
//! handing taken messages to a response stream, and the status a stream ends with.

use std::sync::Arc;

use futures_util::FutureExt as _;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tonic::{Code, Status, Streaming};

use super::convert::{self, count_trailer};
use super::status::CourierError;
use crate::domain::{Mailbox, Mailboxes, NewMessage, Receipt, UserName};
use crate::pb::message::Message;

/// Messages of one SendMessage or Chat stream committed together, at most. With the durable
/// store, one fsync covers them, and whatever other streams commit at the same time.
pub(super) const SEND_BATCH: usize = 256;

/// Queues `batch` in one commit, adding what was queued to `count`. A full recipient queue
/// refuses its message and the rest, after the ones before it were queued.
pub(super) async fn commit(
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
pub(super) enum BatchEnd {
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
pub(super) async fn read_batch<T>(
    stream: &mut Streaming<T>,
    caller: Option<&UserName>,
    message_of: fn(T) -> Option<Message>,
) -> (Vec<NewMessage>, BatchEnd) {
    let mut batch = Vec::new();
    let mut next = Some(stream.message().await);
    let end = loop {
        match next {
            None => break BatchEnd::More,
            Some(Ok(Some(request))) => match convert::new_message(message_of(request), caller) {
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

/// Hands one taken message to a stream and records the outcome in `mailbox`: delivered, or
/// back to the queue if the client is gone (then answers `Ok(false)`).
pub(super) async fn hand_over<T>(
    mailbox: &Mailbox,
    sender: &mpsc::Sender<Result<T, Status>>,
    receipt: Receipt,
    response: T,
) -> Result<bool, CourierError> {
    if sender.send(Ok(response)).await.is_err() {
        tracing::debug!(?receipt, "receiver left; message requeued");
        mailbox.undelivered(receipt);
        return Ok(false);
    }
    mailbox.delivered(receipt)?;
    Ok(true)
}

/// Ends a response stream: gives back its mailbox and its open-stream permit first, so a client
/// that saw the end may open another at once, then sends the status it ends with. The client
/// may be gone already; then there is nobody to tell.
pub(super) async fn finish<T>(
    mailbox: Mailbox,
    permit: OwnedSemaphorePermit,
    sender: &mpsc::Sender<Result<T, Status>>,
    outcome: Result<(), CourierError>,
    count: u64,
    request_id: &str,
) {
    drop(mailbox);
    drop(permit);
    let _ = sender
        .send(Err(final_status(outcome, count, request_id)))
        .await;
}

/// The status a stream ends with: OK or the error, with the message count as a trailer.
fn final_status(outcome: Result<(), CourierError>, count: u64, request_id: &str) -> Status {
    match outcome {
        Ok(()) => Status::with_metadata(Code::Ok, "", count_trailer(count)),
        Err(error) => error.into_status_with(request_id, count_trailer(count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_message_that_cannot_be_written_goes_back_to_the_queue() {
        let store = Arc::new(MemoryStore::default());
        let mailboxes = Arc::new(Mailboxes::new(store, 10));
        let (jack, mike) = (
            UserName::parse("jack").unwrap(),
            UserName::parse("mike").unwrap(),
        );
        for content in ["first", "second"] {
            let message = NewMessage {
                from: jack.clone(),
                to: mike.clone(),
                content: content.into(),
            };
            mailboxes.enqueue(message).await.unwrap();
        }
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let mut mailbox = mailboxes.open(&mike, None).unwrap();
        let taken = mailbox.take().await.unwrap();
        let handed = hand_over(&mailbox, &sender, taken.receipt, taken.envelope).await;
        assert!(matches!(handed, Ok(false)));
        let again = mailbox.try_take().unwrap().unwrap();
        assert_eq!(again.envelope.content, "first");
        mailbox.delivered(again.receipt).unwrap();
        let next = mailbox.try_take().unwrap().unwrap();
        assert_eq!(next.envelope.content, "second");
    }
}
