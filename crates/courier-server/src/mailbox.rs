//! Per-recipient queues: the domain core of MessageService and ChatService, over a [`Store`].
//!
//! Every message is appended to its recipient's log. ReceiveMessage and Chat streams of that
//! recipient consume it as competing consumers: each message is *claimed* by exactly one of them,
//! in log order, and *confirmed* once handed to its stream; a claim whose stream could not take
//! it is returned and served first again. The store's delivery cursor only moves past confirmed
//! claims, so a crash never skips a message that was claimed but not delivered.
//!
//! A stream that resumes after an id first replays the log from there up to what has been
//! claimed, then claims like the others. Nothing here knows about gRPC.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use tokio::sync::Notify;

use crate::store::{NewMessage, Store, StoreError};

/// A queued message with the fields the server assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Server-assigned, unique and increasing across the server's lifetime.
    pub id: u64,
    /// Sender's user name.
    pub from: String,
    /// Recipient's user name; the log the envelope is in.
    pub to: String,
    /// The text.
    pub content: String,
    /// When the server queued it.
    pub sent_at: SystemTime,
}

/// Why a message could not be queued or taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// The recipient has `limit` undelivered messages already; nothing was queued.
    #[error("the queue of {user:?} is full ({limit} messages)")]
    Full {
        /// The recipient.
        user: String,
        /// Its queue's limit.
        limit: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Mailboxes::enqueue_all`] did.
#[derive(Debug)]
pub struct Enqueued {
    /// The ids of the messages appended, in order: a prefix of those given.
    pub ids: Range<u64>,
    /// Why the rest were refused, if they were.
    pub refused: Option<MailboxError>,
}

/// Messages of a user's log read from the store at once for its streams.
const READ_AHEAD: usize = 32;

/// Deliveries between two writes of a user's cursor to the store.
const CURSOR_STRIDE: u64 = 64;

/// A message taken for a stream: hand `envelope` over, then report `receipt` to
/// [`Mailboxes::delivered`] or [`Mailboxes::undelivered`].
#[derive(Debug)]
pub struct Taken {
    /// The message, the stream's to keep.
    pub envelope: Envelope,
    /// What the mailboxes need back.
    pub receipt: Receipt,
}

/// Which message was taken and how, so that its delivery (or not) can be recorded without
/// keeping a copy of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    id: u64,
    /// Claimed from the queue (as opposed to replayed for a resuming stream).
    claimed: bool,
}

/// One user's claims, and the signal that wakes its waiting consumers.
#[derive(Default)]
struct Claims {
    /// Whether `claimed_up_to` was read from the store's cursor yet.
    loaded: bool,
    /// Highest id claimed from the log.
    claimed_up_to: u64,
    /// Claimed and not yet confirmed.
    outstanding: BTreeSet<u64>,
    /// Outstanding claims handed back, served (read again from the store) before the log.
    returned: BTreeSet<u64>,
    /// The log's next messages after `claimed_up_to`, read ahead in one store read: the log
    /// after it only grows, so they stay its next ones until claimed (or pruned).
    ahead: VecDeque<Envelope>,
    /// The delivery cursor as last written to the store.
    stored_cursor: u64,
    /// How many messages of the log lie after `claimed_up_to`, once counted, plus the room
    /// reserved for appends under way: the queue cap is checked on every enqueue, so it must not
    /// walk the log.
    unclaimed: Option<usize>,
    arrived: Arc<Notify>,
}

impl Claims {
    /// Where the delivery cursor may stand: just before the oldest claim still outstanding.
    fn delivered_up_to(&self) -> u64 {
        self.outstanding
            .first()
            .map_or(self.claimed_up_to, |oldest| oldest - 1)
    }
}

/// All users' queues, shared by every service of one server.
pub struct Mailboxes {
    store: Arc<dyn Store>,
    claims: Mutex<HashMap<String, Claims>>,
    max_queued: usize,
}

impl Mailboxes {
    /// Queues over `store`, holding at most `max_queued` undelivered messages per user.
    pub fn new(store: Arc<dyn Store>, max_queued: usize) -> Self {
        Self {
            store,
            claims: Mutex::default(),
            max_queued,
        }
    }

    /// Appends a message for `to` (durably, with a durable store) and wakes `to`'s consumers;
    /// refuses, queueing nothing, when `to` already has `max_queued` undelivered messages.
    /// Answers the message's id.
    pub async fn enqueue(
        self: &Arc<Self>,
        from: &str,
        to: &str,
        content: &str,
    ) -> Result<u64, MailboxError> {
        let message = NewMessage {
            from: from.to_owned(),
            to: to.to_owned(),
            content: content.to_owned(),
        };
        let enqueued = self.enqueue_all(vec![message]).await?;
        match enqueued.refused {
            Some(refused) => Err(refused),
            None => Ok(enqueued.ids.start),
        }
    }

    /// Appends messages in order, in one store commit, and wakes their recipients' consumers.
    /// The first message whose recipient's queue is full is refused, with everything after it;
    /// everything before it is appended. A store failure appends nothing.
    ///
    /// Cancel-safe: once the append has started, it is seen through (consumers woken, or the
    /// room it reserved given back) even if the caller goes away.
    pub async fn enqueue_all(
        self: &Arc<Self>,
        mut messages: Vec<NewMessage>,
    ) -> Result<Enqueued, MailboxError> {
        // Room is reserved before the append, so batches appended at the same time cannot
        // overfill a queue together; a failed append gives it back.
        let mut reserved: HashMap<String, usize> = HashMap::new();
        let mut refused = None;
        {
            let mut claims = self.lock();
            let admitted = self.reserve(&mut claims, &messages, &mut reserved);
            match admitted {
                Ok(admitted) if admitted < messages.len() => {
                    refused = Some(MailboxError::Full {
                        user: messages[admitted].to.clone(),
                        limit: self.max_queued,
                    });
                    messages.truncate(admitted);
                }
                Ok(_) => {}
                Err(error) => {
                    Self::release(&mut claims, &reserved);
                    return Err(error.into());
                }
            }
        }
        if messages.is_empty() {
            return Ok(Enqueued { ids: 0..0, refused });
        }
        let mut appending = self.store.append_all(messages, SystemTime::now());
        // The memory store answers at once; an append that waits for the disk is settled by a
        // task of its own, which finishes even if this caller is dropped.
        let ids = match (&mut appending).now_or_never() {
            Some(appended) => self.settle(appended, &reserved)?,
            None => {
                let mailboxes = Arc::clone(self);
                let settling = tokio::spawn(async move {
                    let appended = appending.await;
                    mailboxes.settle(appended, &reserved)
                });
                match settling.await {
                    Ok(settled) => settled?,
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    Err(error) => return Err(StoreError::from_any(error).into()),
                }
            }
        };
        Ok(Enqueued { ids, refused })
    }

    /// Ends an append: wakes the recipients' consumers, or gives back the room it reserved.
    fn settle(
        &self,
        appended: Result<Range<u64>, StoreError>,
        reserved: &HashMap<String, usize>,
    ) -> Result<Range<u64>, MailboxError> {
        let mut claims = self.lock();
        match appended {
            Ok(ids) => {
                for user in reserved.keys() {
                    if let Some(state) = claims.get(user) {
                        state.arrived.notify_waiters();
                    }
                }
                Ok(ids)
            }
            Err(error) => {
                Self::release(&mut claims, reserved);
                Err(error.into())
            }
        }
    }

    /// Reserves room for `messages` in their recipients' queues, in order, until one is full;
    /// answers how many got room, and adds them to `reserved`.
    fn reserve(
        &self,
        claims: &mut HashMap<String, Claims>,
        messages: &[NewMessage],
        reserved: &mut HashMap<String, usize>,
    ) -> Result<usize, StoreError> {
        for (index, message) in messages.iter().enumerate() {
            let user = self.claims_of(claims, &message.to)?;
            if user.returned.len() + self.unclaimed(&message.to, user)? >= self.max_queued {
                return Ok(index);
            }
            *user.unclaimed.get_or_insert(0) += 1;
            *reserved.entry(message.to.clone()).or_default() += 1;
        }
        Ok(messages.len())
    }

    /// Gives back room [`Mailboxes::reserve`] took.
    fn release(claims: &mut HashMap<String, Claims>, reserved: &HashMap<String, usize>) {
        for (user, count) in reserved {
            if let Some(unclaimed) = claims
                .get_mut(user)
                .and_then(|state| state.unclaimed.as_mut())
            {
                *unclaimed = unclaimed.saturating_sub(*count);
            }
        }
    }

    /// How many messages of `user`'s log lie after its claims, counted once then kept.
    fn unclaimed(&self, user: &str, claims: &mut Claims) -> Result<usize, StoreError> {
        match claims.unclaimed {
            Some(unclaimed) => Ok(unclaimed),
            None => {
                let counted = self.store.count_after(user, claims.claimed_up_to)?;
                claims.unclaimed = Some(counted);
                Ok(counted)
            }
        }
    }

    /// Takes the next message for `user` without waiting, if there is one. With `replay` set to
    /// an id, first replays the log after it up to what was already claimed, advancing `replay`;
    /// it becomes `None` once the replay has caught up.
    pub fn try_take(
        &self,
        user: &str,
        replay: &mut Option<u64>,
    ) -> Result<Option<Taken>, MailboxError> {
        let mut claims = self.lock();
        let state = self.claims_of(&mut claims, user)?;
        if let Some(position) = *replay {
            let next = self.store.read_after(user, position, 1)?.pop();
            match next {
                Some(envelope) if envelope.id <= state.claimed_up_to => {
                    *replay = Some(envelope.id);
                    let receipt = Receipt {
                        id: envelope.id,
                        claimed: false,
                    };
                    return Ok(Some(Taken { envelope, receipt }));
                }
                _ => *replay = None,
            }
        }
        while let Some(id) = state.returned.pop_first() {
            let read = match self.store.read_after(user, id - 1, 1) {
                Ok(mut read) => read.pop(),
                Err(error) => {
                    state.returned.insert(id);
                    return Err(error.into());
                }
            };
            match read {
                Some(envelope) if envelope.id == id => {
                    let receipt = Receipt { id, claimed: true };
                    return Ok(Some(Taken { envelope, receipt }));
                }
                // Expired while it was out: there is nothing left to deliver.
                _ => {
                    state.outstanding.remove(&id);
                }
            }
        }
        if state.ahead.is_empty() {
            let next = self
                .store
                .read_after(user, state.claimed_up_to, READ_AHEAD)?;
            state.ahead.extend(next);
        }
        let Some(envelope) = state.ahead.pop_front() else {
            return Ok(None);
        };
        state.claimed_up_to = envelope.id;
        state.outstanding.insert(envelope.id);
        if let Some(unclaimed) = state.unclaimed.as_mut() {
            *unclaimed = unclaimed.saturating_sub(1);
        }
        let receipt = Receipt {
            id: envelope.id,
            claimed: true,
        };
        Ok(Some(Taken { envelope, receipt }))
    }

    /// Takes the next message for `user` (see [`Mailboxes::try_take`]), waiting for one.
    ///
    /// Cancel-safe: dropping the future before it completes takes nothing.
    pub async fn take(&self, user: &str, replay: &mut Option<u64>) -> Result<Taken, MailboxError> {
        // A backlog needs no wake-up registration.
        if let Some(taken) = self.try_take(user, replay)? {
            return Ok(taken);
        }
        loop {
            let arrived = {
                let mut claims = self.lock();
                Arc::clone(&self.claims_of(&mut claims, user)?.arrived)
            };
            let notified = arrived.notified();
            tokio::pin!(notified);
            // Registered before looking, so an arrival in between still wakes us.
            notified.as_mut().enable();
            if let Some(taken) = self.try_take(user, replay)? {
                return Ok(taken);
            }
            notified.await;
        }
    }

    /// Records that the message of `receipt` was handed to `user`'s stream. The delivery cursor
    /// moves up to the oldest claim still outstanding; the move is made durable with the next
    /// commit, so a crash may repeat (never skip) a delivery.
    pub fn delivered(&self, user: &str, receipt: Receipt) -> Result<(), MailboxError> {
        if !receipt.claimed {
            return Ok(());
        }
        let mut claims = self.lock();
        let state = self.claims_of(&mut claims, user)?;
        state.outstanding.remove(&receipt.id);
        let cursor = state.delivered_up_to();
        // Written every CURSOR_STRIDE deliveries and at shutdown, not for each: a cursor that
        // lags after a crash only repeats deliveries.
        if cursor >= state.stored_cursor + CURSOR_STRIDE {
            self.store.advance_cursor(user, cursor)?;
            state.stored_cursor = cursor;
        }
        Ok(())
    }

    /// Hands back a message `user`'s stream could not take: it is served first again.
    pub fn undelivered(&self, user: &str, receipt: Receipt) {
        if !receipt.claimed {
            return;
        }
        let mut claims = self.lock();
        if let Ok(state) = self.claims_of(&mut claims, user) {
            state.returned.insert(receipt.id);
            state.arrived.notify_waiters();
        }
    }

    /// Removes messages older than `retention`; answers how many.
    pub fn prune(&self, retention: Duration) -> Result<usize, MailboxError> {
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let removed = self.store.prune(cutoff)?;
        // What was read ahead may have expired.
        for state in self.lock().values_mut() {
            state.ahead.clear();
        }
        Ok(removed)
    }

    /// Makes every delivery recorded so far durable.
    pub fn flush(&self) -> Result<(), MailboxError> {
        for (user, state) in self.lock().iter_mut() {
            let cursor = state.delivered_up_to();
            if state.loaded && cursor > state.stored_cursor {
                self.store.advance_cursor(user, cursor)?;
                state.stored_cursor = cursor;
            }
        }
        Ok(self.store.flush()?)
    }

    /// How many messages wait for `user` (undelivered).
    pub fn waiting(&self, user: &str) -> Result<usize, MailboxError> {
        let mut claims = self.lock();
        let state = self.claims_of(&mut claims, user)?;
        Ok(state.returned.len() + self.unclaimed(user, state)?)
    }

    fn claims_of<'a>(
        &self,
        claims: &'a mut HashMap<String, Claims>,
        user: &str,
    ) -> Result<&'a mut Claims, StoreError> {
        // Looked up before inserting: `entry` would allocate the name on every call.
        if !claims.contains_key(user) {
            claims.insert(user.to_owned(), Claims::default());
        }
        let state = claims.get_mut(user).expect("inserted above");
        if !state.loaded {
            state.claimed_up_to = self.store.cursor(user)?;
            state.stored_cursor = state.claimed_up_to;
            state.loaded = true;
        }
        Ok(state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claims>> {
        // Every update under this lock is a single insert or removal, so a panic elsewhere
        // cannot leave it half-done; serving goes on.
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn mailboxes(limit: usize) -> (Arc<MemoryStore>, Arc<Mailboxes>) {
        let store = Arc::new(MemoryStore::default());
        (Arc::clone(&store), Arc::new(Mailboxes::new(store, limit)))
    }

    fn take_now(boxes: &Mailboxes, user: &str) -> Option<Taken> {
        boxes.try_take(user, &mut None).unwrap()
    }

    #[tokio::test]
    async fn messages_come_out_in_order_once() {
        let (_, boxes) = mailboxes(100);
        for text in ["one", "two", "three"] {
            boxes.enqueue("jack", "mike", text).await.unwrap();
        }
        let mut seen = Vec::new();
        while let Some(taken) = take_now(&boxes, "mike") {
            seen.push(taken.envelope.content.clone());
            boxes.delivered("mike", taken.receipt).unwrap();
        }
        assert_eq!(seen, ["one", "two", "three"]);
        assert_eq!(boxes.waiting("mike").unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn take_waits_for_an_arrival() {
        let (_, boxes) = mailboxes(100);
        let waiter = tokio::spawn({
            let boxes = Arc::clone(&boxes);
            async move {
                boxes
                    .take("mike", &mut None)
                    .await
                    .unwrap()
                    .envelope
                    .content
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished());
        boxes.enqueue("jack", "mike", "late").await.unwrap();
        assert_eq!(waiter.await.unwrap(), "late");
    }

    #[tokio::test]
    async fn an_undelivered_message_comes_first_again() {
        let (_, boxes) = mailboxes(100);
        boxes.enqueue("jack", "mike", "first").await.unwrap();
        boxes.enqueue("jack", "mike", "second").await.unwrap();
        let first = take_now(&boxes, "mike").unwrap();
        boxes.undelivered("mike", first.receipt);
        assert_eq!(take_now(&boxes, "mike").unwrap().envelope.content, "first");
        assert_eq!(take_now(&boxes, "mike").unwrap().envelope.content, "second");
    }

    #[tokio::test]
    async fn a_message_that_expired_while_out_is_not_served_again() {
        let (store, boxes) = mailboxes(100);
        boxes.enqueue("jack", "mike", "soon gone").await.unwrap();
        // Read ahead with the first, and expired before anyone claims it.
        let id = boxes.enqueue("jack", "mike", "also gone").await.unwrap();
        let taken = take_now(&boxes, "mike").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(boxes.prune(Duration::from_millis(1)).unwrap(), 2);
        boxes.undelivered("mike", taken.receipt);
        assert!(take_now(&boxes, "mike").is_none());
        boxes.flush().unwrap();
        assert_eq!(
            store.cursor("mike").unwrap(),
            id - 1,
            "the first is no longer outstanding; the second was never claimed"
        );
    }

    #[tokio::test]
    async fn the_cursor_never_passes_an_unconfirmed_claim() {
        let (store, boxes) = mailboxes(100);
        let mut ids = Vec::new();
        for text in ["a", "b", "c"] {
            ids.push(boxes.enqueue("jack", "mike", text).await.unwrap());
        }
        let a = take_now(&boxes, "mike").unwrap();
        let b = take_now(&boxes, "mike").unwrap();
        boxes.delivered("mike", b.receipt).unwrap();
        boxes.flush().unwrap();
        assert_eq!(
            store.cursor("mike").unwrap(),
            ids[0] - 1,
            "a is still outstanding"
        );
        boxes.delivered("mike", a.receipt).unwrap();
        boxes.flush().unwrap();
        assert_eq!(store.cursor("mike").unwrap(), ids[1]);
        // A restart (new claims over the same store) starts after the cursor.
        let restarted = Mailboxes::new(store, 100);
        assert_eq!(take_now(&restarted, "mike").unwrap().envelope.content, "c");
    }

    #[tokio::test]
    async fn the_stored_cursor_moves_every_stride_and_at_flush() {
        let (store, boxes) = mailboxes(1000);
        let total = CURSOR_STRIDE + 10;
        for n in 0..total {
            boxes.enqueue("jack", "mike", &n.to_string()).await.unwrap();
        }
        for _ in 0..total {
            let taken = take_now(&boxes, "mike").unwrap();
            boxes.delivered("mike", taken.receipt).unwrap();
        }
        assert_eq!(
            store.cursor("mike").unwrap(),
            CURSOR_STRIDE,
            "written once a stride was delivered"
        );
        boxes.flush().unwrap();
        assert_eq!(
            store.cursor("mike").unwrap(),
            total,
            "and the rest at flush"
        );
    }

    #[tokio::test]
    async fn a_replay_repeats_what_was_claimed_after_the_id_then_claims_the_rest() {
        let (_, boxes) = mailboxes(100);
        let mut ids = Vec::new();
        for n in 1..=5 {
            ids.push(
                boxes
                    .enqueue("jack", "mike", &format!("m{n}"))
                    .await
                    .unwrap(),
            );
        }
        for _ in 0..3 {
            let taken = take_now(&boxes, "mike").unwrap();
            boxes.delivered("mike", taken.receipt).unwrap();
        }
        // The client processed m1 only, then crashed; it resumes after m1.
        let mut replay = Some(ids[0]);
        let mut seen = Vec::new();
        while let Some(taken) = boxes.try_take("mike", &mut replay).unwrap() {
            seen.push(taken.envelope.content.clone());
            boxes.delivered("mike", taken.receipt).unwrap();
        }
        assert_eq!(seen, ["m2", "m3", "m4", "m5"]);
        assert_eq!(replay, None);
        assert_eq!(take_now(&boxes, "mike").map(|taken| taken.envelope), None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_keeps_what_it_has() {
        let (_, boxes) = mailboxes(2);
        boxes.enqueue("jack", "mike", "one").await.unwrap();
        boxes.enqueue("jack", "mike", "two").await.unwrap();
        let refused = boxes.enqueue("jack", "mike", "three").await;
        assert_eq!(
            refused,
            Err(MailboxError::Full {
                user: "mike".into(),
                limit: 2
            })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "the queue of \"mike\" is full (2 messages)"
        );
        assert_eq!(boxes.waiting("mike").unwrap(), 2);
        boxes
            .enqueue("jack", "nina", "others are not affected")
            .await
            .unwrap();
        let taken = take_now(&boxes, "mike").unwrap();
        boxes.delivered("mike", taken.receipt).unwrap();
        boxes.enqueue("jack", "mike", "three").await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_stops_at_the_first_full_queue_and_keeps_what_came_before() {
        let (_, boxes) = mailboxes(2);
        let message = |to: &str, content: &str| NewMessage {
            from: "jack".into(),
            to: to.into(),
            content: content.into(),
        };
        let batch = vec![
            message("mike", "1"),
            message("nina", "2"),
            message("mike", "3"),
            message("mike", "4"),
            message("nina", "5"),
        ];
        let enqueued = boxes.enqueue_all(batch).await.unwrap();
        assert_eq!(enqueued.ids.end - enqueued.ids.start, 3, "1, 2 and 3");
        assert_eq!(
            enqueued.refused,
            Some(MailboxError::Full {
                user: "mike".into(),
                limit: 2
            })
        );
        assert_eq!(boxes.waiting("mike").unwrap(), 2);
        assert_eq!(boxes.waiting("nina").unwrap(), 1);
    }

    #[tokio::test]
    async fn concurrent_batches_cannot_overfill_a_queue_together() {
        // The durable store answers appends from its writer thread, so both batches are checked
        // against the cap while the other is still being written.
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::store::RedbStore::open(dir.path()).unwrap());
        let boxes = Arc::new(Mailboxes::new(store, 3));
        let batch = |tag: &str| -> Vec<NewMessage> {
            (0..2)
                .map(|n| NewMessage {
                    from: "jack".into(),
                    to: "mike".into(),
                    content: format!("{tag}{n}"),
                })
                .collect()
        };
        let first = tokio::spawn({
            let boxes = Arc::clone(&boxes);
            let batch = batch("a");
            async move { boxes.enqueue_all(batch).await.unwrap() }
        });
        let second = tokio::spawn({
            let boxes = Arc::clone(&boxes);
            let batch = batch("b");
            async move { boxes.enqueue_all(batch).await.unwrap() }
        });
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        let queued = |enqueued: &Enqueued| enqueued.ids.end - enqueued.ids.start;
        assert_eq!(queued(&first) + queued(&second), 3);
        assert_eq!(
            [first.refused.is_some(), second.refused.is_some()],
            [false, true]
        );
        assert_eq!(boxes.waiting("mike").unwrap(), 3);
    }

    #[tokio::test]
    async fn an_append_whose_caller_went_away_still_wakes_the_consumers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::store::RedbStore::open(dir.path()).unwrap());
        let boxes = Arc::new(Mailboxes::new(store, 10));
        let waiter = tokio::spawn({
            let boxes = Arc::clone(&boxes);
            async move {
                boxes
                    .take("mike", &mut None)
                    .await
                    .unwrap()
                    .envelope
                    .content
            }
        });
        tokio::task::yield_now().await;
        // Dropped after its first poll, while the writer thread commits.
        tokio::select! {
            biased;
            _ = boxes.enqueue("jack", "mike", "sent anyway") => panic!("a durable append waits for the disk"),
            () = std::future::ready(()) => {}
        }
        let delivered = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(delivered.unwrap().unwrap(), "sent anyway");
        assert_eq!(boxes.waiting("mike").unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_take_loses_nothing() {
        let (_, boxes) = mailboxes(100);
        let timed_out =
            tokio::time::timeout(Duration::from_secs(1), boxes.take("mike", &mut None)).await;
        assert!(timed_out.is_err());
        boxes.enqueue("jack", "mike", "kept").await.unwrap();
        assert_eq!(boxes.waiting("mike").unwrap(), 1);
    }
}
