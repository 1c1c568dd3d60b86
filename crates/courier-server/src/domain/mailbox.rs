//! Per-recipient queues: the domain core of MessageService and ChatService, over a [`Store`].
//!
//! Every message is appended to its recipient's log. ReceiveMessage and Chat streams of that
//! recipient consume it as competing consumers through a [`Mailbox`] each: every message is
//! *claimed* by exactly one of them, in log order, and *confirmed* once handed to its stream; a
//! claim whose stream could not take it is returned and served first again. The store's delivery
//! cursor only moves past confirmed claims, so a crash never skips a message that was claimed but
//! not delivered. A mailbox opened with an `after_id` first replays the log from there up to what
//! has been claimed, then claims like the others; an `after_id` past what has been claimed (the
//! cursor read after a crash lags behind what was delivered) first moves the claims past the
//! messages up to it, as delivered.
//!
//! A message *posted* ([`Mailboxes::post`]) is queued and delivered exactly like one enqueued,
//! once per sender and idempotency key: a post under a key its sender has used answers the
//! first post's message and queues (and wakes) nothing.
//!
//! State is per user: the users are spread over [`SHARDS`] maps whose locks are held only to
//! find, add or remove a user, never for store I/O; a user's own lock is held for its reads.
//! A user's state goes away once it is idle: no mailbox open, no claim out, no append under way,
//! and nothing waiting — or, past [`MAX_IDLE_USERS`] users, even with messages waiting (their
//! count is read from the store again when needed). So the memory held is bounded by the open
//! streams, the appends under way and [`MAX_IDLE_USERS`], whatever clients do.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;

use super::{Envelope, IdempotencyKey, NewMessage, PostRecord, UserName};
use crate::store::{PostOutcome, Store, StoreError};

/// Why a message could not be queued or taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MailboxError {
    /// The recipient has `limit` undelivered messages already; nothing was queued.
    #[error("the queue of {user} is full ({limit} messages)")]
    Full {
        /// The recipient.
        user: UserName,
        /// Its queue's limit.
        limit: usize,
    },
    /// The sender posted another message (recipient or content) under this idempotency key,
    /// within the retention period; nothing was queued.
    #[error(
        "idempotency key {key:?} was used by {from} for a different message (id {id}); \
         use a new key for a new message"
    )]
    KeyReused {
        /// The sender.
        from: UserName,
        /// The key.
        key: IdempotencyKey,
        /// The id of the message first posted under it.
        id: u64,
    },
    /// The store failed.
    #[error("the message store failed")]
    Store(#[from] StoreError),
}

/// What [`Mailboxes::post`] did; either way, the message as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// Queued now, under a new id.
    Queued(Envelope),
    /// Posted under this key before: the first post's message, same id and sent_at; nothing
    /// was queued now.
    Replayed(Envelope),
}

impl Posted {
    /// The message as queued.
    pub fn envelope(&self) -> &Envelope {
        match self {
            Self::Queued(envelope) | Self::Replayed(envelope) => envelope,
        }
    }

    /// The message as queued.
    pub fn into_envelope(self) -> Envelope {
        match self {
            Self::Queued(envelope) | Self::Replayed(envelope) => envelope,
        }
    }
}

/// The answer to a post of `message` under `key` when the store holds `record` for that key:
/// the first result if it is the same message, else [`MailboxError::KeyReused`].
fn replayed(
    record: PostRecord,
    message: NewMessage,
    key: IdempotencyKey,
) -> Result<Posted, MailboxError> {
    if record.is_for(&message) {
        return Ok(Posted::Replayed(record.envelope(message)));
    }
    Err(MailboxError::KeyReused {
        from: message.from,
        key,
        id: record.id,
    })
}

/// Room reserved in recipients' queues for an append: each user and its share.
type Reserved = Vec<(Arc<User>, usize)>;

/// What [`Mailboxes::enqueue_all`] did.
#[derive(Debug)]
pub struct Enqueued {
    /// The ids of the messages appended, in order: a prefix of those given.
    pub ids: Range<u64>,
    /// Why the rest were refused, if they were.
    pub refused: Option<MailboxError>,
}

/// Maps the users are spread over; each has its own lock.
pub const SHARDS: usize = 64;

/// Idle users whose state (their count of waiting messages) is kept, at most; past it, an idle
/// user's state is dropped and its count read from the store again when needed.
pub const MAX_IDLE_USERS: usize = 65_536;

/// Messages of a log read from the store at once, for claims and for replays.
const READ_AHEAD: usize = 32;

/// Deliveries between two writes of a user's cursor to the store.
const CURSOR_STRIDE: u64 = 64;

/// Expired messages removed per store call while pruning.
const PRUNE_CHUNK: usize = 1024;

/// A message taken for a stream: hand `envelope` over, then report `receipt` to
/// [`Mailbox::delivered`] or [`Mailbox::undelivered`].
#[derive(Debug)]
pub struct Taken {
    /// The message, the stream's to keep.
    pub envelope: Envelope,
    /// What the mailbox needs back.
    pub receipt: Receipt,
}

/// Which message was taken and how, so that its delivery (or not) can be recorded without
/// keeping a copy of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    id: u64,
    /// A claim (as opposed to a replay of a message some stream already had).
    claimed: bool,
}

/// One user: its state and the signal that wakes its waiting consumers.
struct User {
    name: UserName,
    state: Mutex<UserState>,
    arrived: Notify,
}

/// One user's claims and counts.
#[derive(Default)]
struct UserState {
    /// Whether `claimed_up_to` was read from the store's cursor yet.
    loaded: bool,
    /// Removed from its shard; whoever finds it looks the user up again.
    retired: bool,
    /// Open [`Mailbox`]es.
    mailboxes: usize,
    /// Highest id claimed from the log.
    claimed_up_to: u64,
    /// Claimed and not yet confirmed.
    outstanding: BTreeSet<u64>,
    /// Outstanding claims handed back, served (read again from the store) before the log.
    returned: BTreeSet<u64>,
    /// Up to where a resuming client has the log: the `after_id` it gave, then whatever a replay
    /// handed it. A claim handed back at or below it is delivered already and does not come
    /// again (the resume may overtake the cancelled stream that held it).
    replayed_up_to: u64,
    /// The log's next messages after `claimed_up_to`, read ahead in one store read.
    ahead: VecDeque<Envelope>,
    /// The delivery cursor as last written to the store.
    stored_cursor: u64,
    /// Committed messages of the log after `claimed_up_to`, once counted: the queue cap is
    /// checked on every enqueue, so it must not walk the log.
    queued: Option<usize>,
    /// Room taken by appends under way, apart from `queued`: they are not in the log yet.
    reserved: usize,
    /// Messages claimed from the log while `queued` was 0 and an append was under way: the
    /// store had the message before its append settled, so it was not counted yet. The settle
    /// that counts it takes it out again (without this, `queued` would keep one too many).
    claimed_early: usize,
}

impl UserState {
    /// Where the delivery cursor may stand: just before the oldest claim still outstanding.
    fn delivered_up_to(&self) -> u64 {
        self.outstanding
            .first()
            .map_or(self.claimed_up_to, |oldest| oldest - 1)
    }

    /// Nothing needs this state but, perhaps, its count of waiting messages.
    fn idle(&self) -> bool {
        self.mailboxes == 0
            && self.reserved == 0
            && self.outstanding.is_empty()
            && self.returned.is_empty()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks leaves the state consistent at each step that can panic
    // (store errors are returned, not thrown), so serving goes on after a panic elsewhere.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One shard of the users: a map behind its own lock.
type Shard = Mutex<HashMap<UserName, Arc<User>>>;

/// All users' queues, shared by every service of one server.
pub struct Mailboxes {
    store: Arc<dyn Store>,
    shards: Box<[Shard]>,
    hasher: RandomState,
    /// Users with state, across the shards.
    users: AtomicUsize,
    max_queued: usize,
}

impl Mailboxes {
    /// Queues over `store`, holding at most `max_queued` undelivered messages per user.
    pub fn new(store: Arc<dyn Store>, max_queued: usize) -> Self {
        Self {
            store,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            users: AtomicUsize::new(0),
            max_queued,
        }
    }

    fn shard(&self, name: &str) -> &Shard {
        let index = self.hasher.hash_one(name) as usize % SHARDS;
        &self.shards[index]
    }

    /// The user's state, added if missing. Only the shard's lock is held, briefly.
    fn user(&self, name: &UserName) -> Arc<User> {
        let mut shard = lock(self.shard(name.as_str()));
        if let Some(user) = shard.get(name) {
            return Arc::clone(user);
        }
        let user = Arc::new(User {
            name: name.clone(),
            state: Mutex::default(),
            arrived: Notify::new(),
        });
        shard.insert(name.clone(), Arc::clone(&user));
        self.users.fetch_add(1, Ordering::Relaxed);
        user
    }

    /// The user's state if it has one; never adds one.
    fn existing(&self, name: &UserName) -> Option<Arc<User>> {
        lock(self.shard(name.as_str())).get(name).cloned()
    }

    /// Locks `user`'s state, loading its cursor from the store the first time. Answers `None`
    /// if it was retired meanwhile: look the user up again.
    fn lock_loaded<'a>(
        &self,
        user: &'a User,
    ) -> Result<Option<MutexGuard<'a, UserState>>, StoreError> {
        let mut state = lock(&user.state);
        if state.retired {
            return Ok(None);
        }
        if !state.loaded {
            state.claimed_up_to = self.store.cursor(&user.name)?;
            state.stored_cursor = state.claimed_up_to;
            state.loaded = true;
        }
        Ok(Some(state))
    }

    /// Runs `action` on `name`'s loaded state, whether it had one or not.
    fn with_user<R>(
        &self,
        name: &UserName,
        mut action: impl FnMut(&Arc<User>, &mut UserState) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        loop {
            let user = self.user(name);
            if let Some(mut state) = self.lock_loaded(&user)? {
                return action(&user, &mut state);
            }
        }
    }

    /// Drops `user`'s state if nothing needs it any more (see the module documentation).
    fn release(&self, user: &Arc<User>) {
        let mut shard = lock(self.shard(user.name.as_str()));
        let mut state = lock(&user.state);
        if state.retired || !state.idle() {
            return;
        }
        // An unknown count carries nothing worth keeping.
        let waiting = state.queued.is_some_and(|queued| queued > 0);
        if waiting && self.users.load(Ordering::Relaxed) <= MAX_IDLE_USERS {
            return;
        }
        if state.loaded {
            let cursor = state.delivered_up_to();
            if cursor > state.stored_cursor
                && let Err(error) = self.store.advance_cursor(&user.name, cursor)
            {
                // Keep the state: its cursor has not reached the store yet.
                tracing::warn!(error = %crate::logging::Chain(&error), "could not record a delivery cursor");
                return;
            }
        }
        state.retired = true;
        shard.remove(&user.name);
        self.users.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many users have state now: those with an open mailbox, a claim out or an append
    /// under way, and up to [`MAX_IDLE_USERS`] others with messages waiting.
    pub fn users(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }

    /// Opens `name`'s mailbox for one stream. With `after` set to an id, the caller says it has
    /// every message up to that id: the mailbox first replays the log after it up to what was
    /// already claimed, claims handed back up to it count as delivered, and if it is past what
    /// was claimed (the delivery cursor read after a crash lags behind what was handed over),
    /// the claims move past the log up to it (to its last message at or below the id, never
    /// further), so neither this stream nor any other delivers those messages again.
    pub fn open(
        self: &Arc<Self>,
        name: &UserName,
        after: Option<u64>,
    ) -> Result<Mailbox, MailboxError> {
        let opened = self.with_user(name, |user, state| {
            let mut replay = None;
            if let Some(after) = after {
                // First, as it is the step that can fail: nothing else has changed then.
                self.pass(&user.name, state, after)?;
                // No further than the log goes: a message appended later, at or below a bogus
                // `after`, is not the client's yet, and must come again if handed back.
                let has = after.min(state.claimed_up_to);
                state.replayed_up_to = state.replayed_up_to.max(has);
                while let Some(&id) = state.returned.first()
                    && id <= after
                {
                    state.returned.remove(&id);
                    state.outstanding.remove(&id);
                }
                // Nothing was claimed after it: there is nothing to replay.
                replay = (after < state.claimed_up_to).then(|| Replay {
                    after,
                    read: VecDeque::new(),
                });
            }
            state.mailboxes += 1;
            Ok((Arc::clone(user), replay))
        });
        let (user, replay) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                if let Some(user) = self.existing(name) {
                    self.release(&user);
                }
                return Err(error.into());
            }
        };
        Ok(Mailbox {
            mailboxes: Arc::clone(self),
            user,
            replay,
        })
    }

    /// Moves `state`'s claims past the messages of its log up to `after`, which a resuming
    /// client says it has: to the last message at or below `after` that exists, never further.
    /// `after` may be any number (a client's mistake, or an id from another data directory),
    /// and a message appended later gets an id above every existing one but not necessarily
    /// above `after`: claims set to `after` itself would skip it. The messages passed count as
    /// delivered: the delivery cursor moves with them, written to the store as deliveries are.
    ///
    /// Reads the log after the claims in chunks under the user's lock (no shard lock), until
    /// past `after`; the queue cap bounds that part of the log. A failed read changes nothing.
    fn pass(&self, name: &UserName, state: &mut UserState, after: u64) -> Result<(), StoreError> {
        if after <= state.claimed_up_to {
            return Ok(());
        }
        // The read-ahead is the log's next messages: pass those at or below `after` first.
        // Nothing changes until every read is done.
        let in_ahead = state
            .ahead
            .iter()
            .take_while(|envelope| envelope.id <= after)
            .count();
        let mut last = match in_ahead.checked_sub(1) {
            Some(index) => state.ahead[index].id,
            None => state.claimed_up_to,
        };
        let mut passed = in_ahead;
        // When the read-ahead is all passed, the rest of the log up to `after`: the first
        // messages after it are the read-ahead then.
        let mut next = Vec::new();
        if in_ahead == state.ahead.len() {
            loop {
                let chunk = self.store.read_after(name, last, READ_AHEAD)?;
                let full = chunk.len() == READ_AHEAD;
                for envelope in chunk {
                    if envelope.id <= after {
                        last = envelope.id;
                        passed += 1;
                    } else {
                        next.push(envelope);
                    }
                }
                if !next.is_empty() || !full {
                    break;
                }
            }
        }
        if passed == 0 {
            return Ok(());
        }
        state.ahead.drain(..in_ahead);
        state.ahead.extend(next);
        state.claimed_up_to = last;
        // Counted again when needed: an append under way may be among those passed, and the
        // count less them would be wrong once its room is added to it.
        state.queued = None;
        state.claimed_early = 0;
        let cursor = state.delivered_up_to();
        if cursor >= state.stored_cursor + CURSOR_STRIDE {
            self.store.advance_cursor(name, cursor)?;
            state.stored_cursor = cursor;
        }
        Ok(())
    }

    /// Appends a message (durably, with a durable store) and wakes its recipient's consumers;
    /// refuses, queueing nothing, when the recipient already has `max_queued` undelivered
    /// messages. Answers the message's id.
    pub async fn enqueue(self: &Arc<Self>, message: NewMessage) -> Result<u64, MailboxError> {
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
        // Room is reserved before the append, so appends at the same time cannot overfill a
        // queue together; the reservation keeps the user's state alive until it is settled.
        let mut reserved: Reserved = Vec::new();
        let mut refused = None;
        match self.reserve(&messages, &mut reserved) {
            Ok(admitted) if admitted < messages.len() => {
                refused = Some(MailboxError::Full {
                    user: messages[admitted].to.clone(),
                    limit: self.max_queued,
                });
                messages.truncate(admitted);
            }
            Ok(_) => {}
            Err(error) => {
                self.settle(Err(()), &reserved);
                return Err(error.into());
            }
        }
        if messages.is_empty() {
            return Ok(Enqueued { ids: 0..0, refused });
        }
        let appending = self.store.append_all(messages, SystemTime::now());
        let ids = self.see_through(appending, reserved, |_| true).await?;
        Ok(Enqueued { ids, refused })
    }

    /// Posts `message` under its sender's idempotency `key`: queues it (durably, with a
    /// durable store) and wakes its recipient's consumers, as [`Mailboxes::enqueue`] does,
    /// unless the sender has posted under that key already (and its record has not expired).
    /// Then it queues and wakes nothing and answers the first post's message, with its id and
    /// sent_at, or [`MailboxError::KeyReused`] if that was another message. Of posts under one
    /// key at the same time, exactly one queues. A retry is answered even when the recipient's
    /// queue has filled up since.
    ///
    /// Cancel-safe like [`Mailboxes::enqueue_all`]: a post that has started is seen through, so
    /// a retry finds it.
    pub async fn post(
        self: &Arc<Self>,
        message: NewMessage,
        key: IdempotencyKey,
    ) -> Result<Posted, MailboxError> {
        // A retry is answered from its record, without taking room in the queue.
        if let Some(record) = self.store.posted(&message.from, &key)? {
            return replayed(record, message, key);
        }
        let mut reserved = Vec::new();
        match self.reserve(std::slice::from_ref(&message), &mut reserved) {
            Ok(0) => {
                return Err(MailboxError::Full {
                    user: message.to,
                    limit: self.max_queued,
                });
            }
            Ok(_) => {}
            Err(error) => {
                self.settle(Err(()), &reserved);
                return Err(error.into());
            }
        }
        let sent_at = SystemTime::now();
        // The store checks the key again, atomically with the append: another post of it may
        // have got there since the look-up.
        let posting = self.store.post(message.clone(), key.clone(), sent_at);
        let outcome = self
            .see_through(posting, reserved, |outcome| {
                matches!(outcome, PostOutcome::Appended(_))
            })
            .await?;
        match outcome {
            PostOutcome::Appended(id) => {
                let NewMessage { from, to, content } = message;
                Ok(Posted::Queued(Envelope {
                    id,
                    from,
                    to,
                    content,
                    sent_at,
                }))
            }
            PostOutcome::Recorded(record) => replayed(record, message, key),
        }
    }

    /// Waits for a store write and settles the room `reserved` for it (see
    /// [`Mailboxes::settle`]): it becomes queued messages if the write succeeded and
    /// `appended` says it appended, and is given back otherwise.
    ///
    /// The memory store answers at once; a write that waits for the disk is settled by a task
    /// of its own, which finishes even if this caller is dropped.
    async fn see_through<T: Send + 'static>(
        self: &Arc<Self>,
        mut writing: BoxFuture<'static, Result<T, StoreError>>,
        reserved: Reserved,
        appended: fn(&T) -> bool,
    ) -> Result<T, StoreError> {
        fn outcome<T>(written: &Result<T, StoreError>, appended: fn(&T) -> bool) -> Result<(), ()> {
            match written {
                Ok(written) if appended(written) => Ok(()),
                _ => Err(()),
            }
        }
        if let Some(written) = (&mut writing).now_or_never() {
            self.settle(outcome(&written, appended), &reserved);
            return written;
        }
        let mailboxes = Arc::clone(self);
        let settling = tokio::spawn(async move {
            let written = writing.await;
            mailboxes.settle(outcome(&written, appended), &reserved);
            written
        });
        match settling.await {
            Ok(written) => written,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Reserves room for `messages` in their recipients' queues, in order, until one is full;
    /// answers how many got room, and records each user's share in `reserved`.
    fn reserve(
        &self,
        messages: &[NewMessage],
        reserved: &mut Reserved,
    ) -> Result<usize, StoreError> {
        for (index, message) in messages.iter().enumerate() {
            let known = reserved
                .iter()
                .position(|(user, _)| user.name == message.to);
            let admitted = match known {
                // Its reservation keeps it from being retired.
                Some(position) => {
                    let user = &reserved[position].0;
                    let admitted = self.admit(user, &mut lock(&user.state))?;
                    if admitted {
                        reserved[position].1 += 1;
                    }
                    admitted
                }
                None => {
                    let user = self.with_user(&message.to, |user, state| {
                        Ok(self.admit(user, state)?.then(|| Arc::clone(user)))
                    })?;
                    let admitted = user.is_some();
                    reserved.extend(user.map(|user| (user, 1)));
                    admitted
                }
            };
            if !admitted {
                return Ok(index);
            }
        }
        Ok(messages.len())
    }

    /// Takes room for one message in `user`'s queue if it has any.
    fn admit(&self, user: &User, state: &mut UserState) -> Result<bool, StoreError> {
        let queued = match state.queued {
            Some(queued) => queued,
            None => {
                let counted = self.store.count_after(&user.name, state.claimed_up_to)?;
                // With appends under way the count may include some of them, which their
                // settle would add again: use it for this check only.
                if state.reserved == 0 {
                    state.queued = Some(counted);
                    state.claimed_early = 0;
                }
                counted
            }
        };
        if state.returned.len() + queued + state.reserved >= self.max_queued {
            return Ok(false);
        }
        state.reserved += 1;
        Ok(true)
    }

    /// Ends an append: the reserved room becomes queued messages and the consumers wake up, or
    /// (it failed) the room is given back.
    fn settle(&self, appended: Result<(), ()>, reserved: &[(Arc<User>, usize)]) {
        for (user, count) in reserved {
            {
                let mut state = lock(&user.state);
                let state = &mut *state;
                state.reserved -= count;
                if appended.is_ok()
                    && let Some(queued) = state.queued.as_mut()
                {
                    *queued += count;
                    let early = state.claimed_early.min(*queued);
                    *queued -= early;
                    state.claimed_early -= early;
                }
            }
            if appended.is_ok() {
                user.arrived.notify_waiters();
            }
            self.release(user);
        }
    }

    /// Removes messages older than `retention`, in chunks; answers how many. Each removal
    /// lowers its recipient's count of waiting messages. Then removes the records of posts
    /// older than `retention` (their messages are gone), in chunks too, so their keys may be
    /// used again. Blocking: call it off the runtime.
    pub fn prune(&self, retention: Duration) -> Result<usize, MailboxError> {
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let removed = self.prune_messages(cutoff)?;
        let mut records = 0;
        loop {
            let chunk = self.store.prune_posts(cutoff, PRUNE_CHUNK)?;
            records += chunk;
            if chunk < PRUNE_CHUNK {
                break;
            }
        }
        if records > 0 {
            tracing::debug!(records, "pruned expired post records");
        }
        Ok(removed)
    }

    /// Removes messages sent before `cutoff`, in chunks; answers how many.
    fn prune_messages(&self, cutoff: SystemTime) -> Result<usize, MailboxError> {
        let mut removed = 0;
        loop {
            let chunk = self.store.prune(cutoff, PRUNE_CHUNK)?;
            removed += chunk.len();
            for (name, id) in &chunk {
                let Some(user) = self.existing(name) else {
                    continue;
                };
                {
                    let mut state = lock(&user.state);
                    if state.retired || !state.loaded {
                        continue;
                    }
                    if *id > state.claimed_up_to {
                        if let Some(queued) = state.queued.as_mut() {
                            *queued = queued.saturating_sub(1);
                        }
                        state.ahead.retain(|envelope| envelope.id != *id);
                    } else if state.returned.remove(id) {
                        // Expired while it was out: there is nothing left to deliver.
                        state.outstanding.remove(id);
                    }
                }
                self.release(&user);
            }
            if chunk.len() < PRUNE_CHUNK {
                return Ok(removed);
            }
        }
    }

    /// Makes every delivery recorded so far durable. Blocking: call it off the runtime.
    pub fn flush(&self) -> Result<(), MailboxError> {
        for shard in &self.shards {
            for user in lock(shard).values() {
                let mut state = lock(&user.state);
                let cursor = state.delivered_up_to();
                if state.loaded && cursor > state.stored_cursor {
                    self.store.advance_cursor(&user.name, cursor)?;
                    state.stored_cursor = cursor;
                }
            }
        }
        Ok(self.store.flush()?)
    }

    /// How many messages wait for `name` (undelivered, not out for delivery).
    pub fn waiting(&self, name: &UserName) -> Result<usize, MailboxError> {
        let waiting = self.with_user(name, |user, state| {
            let queued = match state.queued {
                Some(queued) => queued,
                None => self.store.count_after(&user.name, state.claimed_up_to)?,
            };
            Ok(state.returned.len() + queued)
        });
        if let Some(user) = self.existing(name) {
            self.release(&user);
        }
        Ok(waiting?)
    }
}

/// A replay under way: the log after `after` up to what was claimed when it is reached.
struct Replay {
    after: u64,
    /// Read ahead from the store, after `after`.
    read: VecDeque<Envelope>,
}

/// One stream's access to a user's queue; the user's state stays while it is open.
pub struct Mailbox {
    mailboxes: Arc<Mailboxes>,
    user: Arc<User>,
    replay: Option<Replay>,
}

impl Mailbox {
    /// Whose mailbox this is.
    pub fn user(&self) -> &UserName {
        &self.user.name
    }

    fn state(&self) -> MutexGuard<'_, UserState> {
        lock(&self.user.state)
    }

    /// Takes the next message without waiting, if there is one: the replay first (when the
    /// mailbox was opened after an id), then claims handed back, then the log.
    pub fn try_take(&mut self) -> Result<Option<Taken>, MailboxError> {
        let store = &self.mailboxes.store;
        let name = &self.user.name;
        let mut state = lock(&self.user.state);
        if let Some(replay) = &mut self.replay {
            if replay.read.is_empty() {
                replay
                    .read
                    .extend(store.read_after(name, replay.after, READ_AHEAD)?);
            }
            match replay.read.pop_front() {
                Some(envelope) if envelope.id <= state.claimed_up_to => {
                    replay.after = envelope.id;
                    // A claim handed back is this stream's now; one still out with another
                    // stream must not come again if that stream hands it back.
                    let claimed = state.returned.remove(&envelope.id);
                    state.replayed_up_to = state.replayed_up_to.max(envelope.id);
                    let receipt = Receipt {
                        id: envelope.id,
                        claimed,
                    };
                    return Ok(Some(Taken { envelope, receipt }));
                }
                _ => self.replay = None,
            }
        }
        while let Some(id) = state.returned.pop_first() {
            let read = match store.read_after(name, id - 1, 1) {
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
            let next = store.read_after(name, state.claimed_up_to, READ_AHEAD)?;
            if next.len() < READ_AHEAD && state.reserved == 0 {
                // The whole rest of the log, with no append under way: the exact count.
                state.queued = Some(next.len());
                state.claimed_early = 0;
            }
            state.ahead.extend(next);
        }
        let Some(envelope) = state.ahead.pop_front() else {
            return Ok(None);
        };
        state.claimed_up_to = envelope.id;
        state.outstanding.insert(envelope.id);
        match state.queued {
            Some(0) if state.reserved > 0 => state.claimed_early += 1,
            Some(queued) => state.queued = Some(queued.saturating_sub(1)),
            None => {}
        }
        let receipt = Receipt {
            id: envelope.id,
            claimed: true,
        };
        Ok(Some(Taken { envelope, receipt }))
    }

    /// Takes the next message (see [`Mailbox::try_take`]), waiting for one.
    ///
    /// Cancel-safe: dropping the future before it completes takes nothing.
    pub async fn take(&mut self) -> Result<Taken, MailboxError> {
        // A backlog needs no wake-up registration.
        if let Some(taken) = self.try_take()? {
            return Ok(taken);
        }
        let user = Arc::clone(&self.user);
        loop {
            let notified = user.arrived.notified();
            tokio::pin!(notified);
            // Registered before looking, so an arrival in between still wakes us.
            notified.as_mut().enable();
            if let Some(taken) = self.try_take()? {
                return Ok(taken);
            }
            notified.await;
        }
    }

    /// Records that the message of `receipt` was handed to the stream. The delivery cursor
    /// moves up to the oldest claim still outstanding; the move is made durable with the next
    /// commit, so a crash may repeat (never skip) a delivery.
    pub fn delivered(&self, receipt: Receipt) -> Result<(), MailboxError> {
        if !receipt.claimed {
            return Ok(());
        }
        let mut state = self.state();
        state.outstanding.remove(&receipt.id);
        let cursor = state.delivered_up_to();
        // Written every CURSOR_STRIDE deliveries and when the state goes away, not for each: a
        // cursor that lags after a crash only repeats deliveries.
        if cursor >= state.stored_cursor + CURSOR_STRIDE {
            self.mailboxes
                .store
                .advance_cursor(&self.user.name, cursor)?;
            state.stored_cursor = cursor;
        }
        Ok(())
    }

    /// Hands back a message the stream could not take: it is served first again.
    pub fn undelivered(&self, receipt: Receipt) {
        if !receipt.claimed {
            return;
        }
        let mut state = self.state();
        if receipt.id <= state.replayed_up_to {
            // A resumed stream has handed it over (or its client had it) meanwhile.
            state.outstanding.remove(&receipt.id);
            return;
        }
        state.returned.insert(receipt.id);
        drop(state);
        self.user.arrived.notify_waiters();
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.state().mailboxes -= 1;
        self.mailboxes.release(&self.user);
    }
}

#[cfg(test)]
mod tests;
