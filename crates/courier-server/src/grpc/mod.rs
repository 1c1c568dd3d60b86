//! The gRPC edge: one module per proto package, each converting requests into validated domain
//! values ([`convert`]), calling the domain, and turning results into responses; every failure
//! is a [`CourierError`], mapped to a status in one place ([`status`]).
//!
//! - [`hello`], `courier.hello.v1.SayHelloService`.
//! - [`message`], `courier.message.v1.MessageService` (ReceiveMessage, SendMessage).
//! - [`chat`], `courier.chat.v1.ChatService`.
//! - `stream`: what the streaming RPCs share: batched reads, hand-over, final trailers.
//!
//! Streams are `ReceiverStream`s fed by a spawned task that stops as soon as the client is gone.
//! Streaming responses end with the trailer `x-message-count` (messages sent on that stream), also
//! when they end with an error. A stream that hits a bad message ends with that error; every
//! message accepted before it stays queued.

pub mod chat;
pub mod convert;
pub mod hello;
pub mod message;
pub mod status;
mod stream;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use status::CourierError;

use crate::domain::Mailboxes;

/// The Courier services over one set of mailboxes.
#[derive(Clone)]
pub struct Courier {
    mailboxes: Arc<Mailboxes>,
    /// Cancelled at shutdown: open streams end with UNAVAILABLE.
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
