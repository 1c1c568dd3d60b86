//! Storage: where the mailboxes' messages and delivery cursors live. The domain
//! ([`crate::domain::mailbox`]) works over the [`Store`] trait; this module holds its contract
//! and the implementations:
//!
//! - [`memory`], everything in memory, for tests and `--in-memory`.
//! - [`redb`](mod@redb), an embedded, crash-safe database with one writer thread.
//!
//! Each recipient has a log of messages in id order (ids are increasing across the server) and a
//! delivery cursor: every message up to it has been handed to a stream. Messages stay in the log,
//! delivered or not, until they are older than the retention period, so a client can resume
//! from any id it still has. `conformance` (tests only) is the one suite every implementation
//! passes.
//!
//! A message posted with an idempotency key ([`Store::post`]) also leaves a [`PostRecord`]
//! under (sender, key), written in the same commit as the message; a second post under that
//! pair appends nothing and answers the record. Records expire like messages, by their
//! `sent_at` ([`Store::prune_posts`]): there is at most one per posted message retained, so
//! they are bounded exactly as the logs are, and each is small, whatever the content (names, key,
//! id, time and a 32-byte digest: with its index entry, at most about 500 bytes).

pub mod memory;
pub mod redb;

#[cfg(test)]
pub(crate) mod conformance;

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use crate::domain::{Envelope, IdempotencyKey, NewMessage, PostRecord, UserName};

pub use self::memory::MemoryStore;
pub use self::redb::RedbStore;

/// The cause of a [`StoreError`], shared so that one failed commit can answer every append in it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// The store failed; what was being done did not happen. Keeps its cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database (or the file system under it) failed while doing `what`.
    #[error("storage failed to {what}")]
    Failed {
        /// What the store was doing, such as "commit messages".
        what: &'static str,
        /// Why.
        #[source]
        cause: Cause,
    },
    /// The store's writer is gone (the server is stopping, or it failed earlier).
    #[error("the store's writer has stopped")]
    WriterStopped,
}

impl StoreError {
    /// A failure to do `what`, caused by `cause`.
    pub fn failed(
        what: &'static str,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Failed {
            what,
            cause: Arc::new(cause),
        }
    }

    /// A closure for `map_err` that wraps a cause as a failure to do `what`.
    pub fn to<E: std::error::Error + Send + Sync + 'static>(
        what: &'static str,
    ) -> impl FnOnce(E) -> Self {
        move |cause| Self::failed(what, cause)
    }
}

/// An append under way; it answers the ids the messages got, in order, once they are stored.
pub type Appending = BoxFuture<'static, Result<Range<u64>, StoreError>>;

/// What [`Store::post`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostOutcome {
    /// The message was appended under this id, and recorded under its sender and key.
    Appended(u64),
    /// The sender had posted under this key already: nothing was appended; the record of that
    /// post.
    Recorded(PostRecord),
}

/// A post under way; it answers what it did once that is stored.
pub type Posting = BoxFuture<'static, Result<PostOutcome, StoreError>>;

/// A message removed by [`Store::prune`]: its recipient and id.
pub type Pruned = (UserName, u64);

/// Persistence of message logs and delivery cursors.
///
/// Every implementation passes the suite in `store/conformance.rs`.
pub trait Store: Send + Sync + 'static {
    /// Appends messages to their recipients' logs under the next ids, in order, all or none.
    /// Once the answer comes, they survive a crash of the process (for durable stores).
    /// Appends made at the same time may share one commit. The returned future may wait for room
    /// in the store's queue (backpressure) as well as for the disk.
    fn append_all(&self, messages: Vec<NewMessage>, sent_at: SystemTime) -> Appending;
    /// Up to `limit` messages of `user`'s log with an id above `after`, in id order.
    fn read_after(
        &self,
        user: &UserName,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError>;
    /// How many messages of `user`'s log have an id above `after`.
    fn count_after(&self, user: &UserName, after: u64) -> Result<usize, StoreError>;
    /// The id up to which `user` has been delivered; 0 when nothing was.
    fn cursor(&self, user: &UserName) -> Result<u64, StoreError>;
    /// Moves `user`'s cursor to `id` if that is forward. Never waits for the disk: the move may
    /// become durable later (with the next commit, or [`Store::flush`]), so a crash repeats
    /// deliveries, never skips one.
    fn advance_cursor(&self, user: &UserName, id: u64) -> Result<(), StoreError>;
    /// Removes up to `max` messages sent before `cutoff` and answers which; fewer than `max`
    /// means none is left. Blocking: call it off the async runtime.
    fn prune(&self, cutoff: SystemTime, max: usize) -> Result<Vec<Pruned>, StoreError>;
    /// Appends `message` to its recipient's log under the next id and records it under
    /// (`message.from`, `key`), in one commit, unless a record of that pair is kept already:
    /// then it appends nothing and answers the record. The check and the append are one atomic
    /// step: of posts under one pair made at the same time, exactly one appends, whatever the
    /// others' messages, and the others answer its record. Durable like
    /// [`Store::append_all`]: once answered, message and record survive a crash together.
    fn post(&self, message: NewMessage, key: IdempotencyKey, sent_at: SystemTime) -> Posting;
    /// The record of what `from` posted under `key`, if it is kept.
    fn posted(
        &self,
        from: &UserName,
        key: &IdempotencyKey,
    ) -> Result<Option<PostRecord>, StoreError>;
    /// Removes up to `max` post records whose message was sent before `cutoff` and answers how
    /// many; fewer than `max` means none is left. The sender may then use the key again.
    /// Blocking: call it off the async runtime.
    fn prune_posts(&self, cutoff: SystemTime, max: usize) -> Result<usize, StoreError>;
    /// Makes everything written so far durable, cursor moves included (at shutdown). Blocking:
    /// call it off the async runtime.
    fn flush(&self) -> Result<(), StoreError>;
}
