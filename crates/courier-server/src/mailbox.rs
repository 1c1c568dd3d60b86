//! Per-recipient message queues: the domain core of MessageService and ChatService.
//!
//! Every message is queued for its recipient; ReceiveMessage streams and chat streams of that
//! recipient consume the same queue. Consumers of one user compete: each message is taken by
//! exactly one of them, in queue order. Nothing here knows about gRPC.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

/// A queued message with the fields the server assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Server-assigned, unique and increasing across the server's lifetime.
    pub id: u64,
    /// Sender's user name.
    pub from: String,
    /// Recipient's user name; the queue the envelope is in.
    pub to: String,
    /// The text.
    pub content: String,
    /// When the server queued it.
    pub sent_at: SystemTime,
}

/// One user's queue and the signal that wakes its waiting consumers.
#[derive(Default)]
struct Mailbox {
    queue: VecDeque<Envelope>,
    arrived: Arc<Notify>,
}

/// A recipient's queue is at its limit; nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the queue of {user:?} is full ({limit} messages)")]
pub struct QueueFull {
    /// The recipient.
    pub user: String,
    /// Its queue's limit.
    pub limit: usize,
}

/// All users' queues, shared by every service of one server.
pub struct Mailboxes {
    boxes: Mutex<HashMap<String, Mailbox>>,
    last_id: AtomicU64,
    max_queued: usize,
}

impl Mailboxes {
    /// Empty queues holding at most `max_queued` messages per user.
    pub fn new(max_queued: usize) -> Self {
        Self {
            boxes: Mutex::default(),
            last_id: AtomicU64::new(0),
            max_queued,
        }
    }

    /// Queues `content` from `from` for `to`, assigning its id and time, and wakes `to`'s
    /// consumers; refuses, queueing nothing, when `to`'s queue is full.
    pub fn enqueue(
        &self,
        from: String,
        to: String,
        content: String,
    ) -> Result<Envelope, QueueFull> {
        let mut boxes = self.lock();
        let mailbox = boxes.entry(to.clone()).or_default();
        if mailbox.queue.len() >= self.max_queued {
            return Err(QueueFull {
                user: to,
                limit: self.max_queued,
            });
        }
        let envelope = Envelope {
            id: self.last_id.fetch_add(1, Ordering::Relaxed) + 1,
            from,
            to,
            content,
            sent_at: SystemTime::now(),
        };
        mailbox.queue.push_back(envelope.clone());
        mailbox.arrived.notify_waiters();
        Ok(envelope)
    }

    /// Puts back an envelope that a consumer took but could not deliver, ahead of the others,
    /// so that the recipient still gets it first. It was counted against the limit once already,
    /// so it goes back even into a queue that has filled up since.
    pub fn requeue(&self, envelope: Envelope) {
        let mut boxes = self.lock();
        let mailbox = boxes.entry(envelope.to.clone()).or_default();
        mailbox.queue.push_front(envelope);
        mailbox.arrived.notify_waiters();
    }

    /// Takes the oldest envelope queued for `user`, if any, without waiting.
    pub fn try_take(&self, user: &str) -> Option<Envelope> {
        self.lock().get_mut(user)?.queue.pop_front()
    }

    /// Takes the oldest envelope queued for `user`, waiting for one to arrive.
    ///
    /// Cancel-safe: dropping the future before it completes takes nothing.
    pub async fn take(&self, user: &str) -> Envelope {
        loop {
            let arrived = {
                let mut boxes = self.lock();
                let mailbox = boxes.entry(user.to_owned()).or_default();
                if let Some(envelope) = mailbox.queue.pop_front() {
                    return envelope;
                }
                Arc::clone(&mailbox.arrived)
            };
            let notified = arrived.notified();
            tokio::pin!(notified);
            // Registered before the second look, so an arrival in between still wakes us.
            notified.as_mut().enable();
            if let Some(envelope) = self.try_take(user) {
                return envelope;
            }
            notified.await;
        }
    }

    /// How many envelopes wait for `user`.
    pub fn queued(&self, user: &str) -> usize {
        self.lock()
            .get(user)
            .map_or(0, |mailbox| mailbox.queue.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Mailbox>> {
        // A panic while holding the lock cannot leave a queue half-updated (each update is one
        // push or pop), so the data is still consistent and serving goes on.
        self.boxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn messages_come_out_in_order_with_increasing_ids() {
        let boxes = Mailboxes::new(100);
        for text in ["one", "two", "three"] {
            boxes
                .enqueue("jack".into(), "mike".into(), text.into())
                .unwrap();
        }
        let taken: Vec<_> = [0; 3]
            .iter()
            .map(|_| boxes.try_take("mike").unwrap())
            .collect();
        assert_eq!(
            taken.iter().map(|e| e.content.as_str()).collect::<Vec<_>>(),
            ["one", "two", "three"]
        );
        assert_eq!(taken.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(boxes.try_take("mike"), None);
        assert_eq!(boxes.queued("jack"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn take_waits_for_an_arrival() {
        let boxes = Arc::new(Mailboxes::new(100));
        let waiter = tokio::spawn({
            let boxes = Arc::clone(&boxes);
            async move { boxes.take("mike").await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        boxes
            .enqueue("jack".into(), "mike".into(), "late".into())
            .unwrap();
        assert_eq!(waiter.await.unwrap().content, "late");
    }

    #[tokio::test]
    async fn a_requeued_message_comes_first() {
        let boxes = Mailboxes::new(100);
        boxes
            .enqueue("jack".into(), "mike".into(), "first".into())
            .unwrap();
        boxes
            .enqueue("jack".into(), "mike".into(), "second".into())
            .unwrap();
        let first = boxes.take("mike").await;
        boxes.requeue(first.clone());
        assert_eq!(boxes.take("mike").await, first);
        assert_eq!(boxes.take("mike").await.content, "second");
    }

    #[test]
    fn a_full_queue_refuses_and_keeps_what_it_has() {
        let boxes = Mailboxes::new(2);
        boxes
            .enqueue("jack".into(), "mike".into(), "one".into())
            .unwrap();
        boxes
            .enqueue("jack".into(), "mike".into(), "two".into())
            .unwrap();
        let refused = boxes.enqueue("jack".into(), "mike".into(), "three".into());
        assert_eq!(
            refused,
            Err(QueueFull {
                user: "mike".into(),
                limit: 2
            })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "the queue of \"mike\" is full (2 messages)"
        );
        assert_eq!(boxes.queued("mike"), 2);
        boxes
            .enqueue(
                "jack".into(),
                "nina".into(),
                "others are not affected".into(),
            )
            .unwrap();
        let first = boxes.try_take("mike").unwrap();
        boxes
            .enqueue("jack".into(), "mike".into(), "three".into())
            .unwrap();
        boxes.requeue(first);
        assert_eq!(
            boxes.queued("mike"),
            3,
            "a requeued message always goes back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_take_loses_nothing() {
        let boxes = Mailboxes::new(100);
        let timed_out = tokio::time::timeout(Duration::from_secs(1), boxes.take("mike")).await;
        assert!(timed_out.is_err());
        boxes
            .enqueue("jack".into(), "mike".into(), "kept".into())
            .unwrap();
        assert_eq!(boxes.queued("mike"), 1);
    }
}
