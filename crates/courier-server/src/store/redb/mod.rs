//! The embedded, crash-safe [`Store`]: one redb database file, `courier.redb`, in the data
//! directory.
//!
//! - `writer`: the one thread that writes. It takes every append waiting, writes them in one
//!   transaction and commits it durably (fsync) before answering any (group commit), so
//!   concurrent streams share commits and no async task waits on the disk. Its job queue is
//!   bounded ([`JOB_QUEUE`]): a full queue makes appends wait (backpressure).
//! - `reader`: reads, each in its own read transaction, on the caller's thread.
//! - `prune`: removal of expired messages and post records in bounded chunks, each its own
//!   transaction.
//! - `row`: the encoding of a row of messages.
//! - `migrate`: brings a database of the earlier one-row-per-message layout to this one at open.
//!
//! Tables:
//!
//! - `log_rows` maps (recipient, id of the row's last message) to a row: that recipient's
//!   messages from one commit, in id order, each with its id, sender, content and sent_at (see
//!   `row` for the encoding; a row holds at most `row::MAX_MESSAGES` messages). A batch of
//!   messages to one recipient is one B-tree insert, not one per message. Keyed by the *last*
//!   id, the rows holding ids above some `after` are exactly those from `(recipient, after + 1)`
//!   on, one seek away; and a row that loses its oldest messages to pruning keeps its key.
//!   The rows of one recipient never overlap: commits take ids in turn.
//! - `cursors` maps a recipient to its delivered-up-to id.
//! - `meta` holds `last_id`, kept apart from the messages so ids never repeat, even after
//!   pruning.
//! - `posts` maps (sender, idempotency key) to the record of the message posted under it: its
//!   id, sent_at, recipient and content digest. The writer looks a post's pair up and, if it is
//!   not there, appends the message and inserts the record in the same transaction; being the
//!   only writer, and seeing its own transaction's inserts, it appends one message per pair
//!   however many posts of it arrive at once.
//! - `posts_by_id` maps a posted message's id to its (sender, key): the records oldest first,
//!   so pruning them is a walk from the start, in bounded chunks.
//!
//! Schema changes are additive: every table is created at open if missing, so a data directory
//! of an earlier version opens with empty `posts` tables (and `migrate` converts the
//! one-row-per-message layout of an older one). An earlier version ignores the `posts` tables.

mod migrate;
mod prune;
mod reader;
mod row;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::TableDefinition;
use tokio::sync::{mpsc, oneshot};

use super::{Appending, Posting, Pruned, Store, StoreError};
use crate::domain::{Envelope, IdempotencyKey, NewMessage, PostRecord, UserName};
use writer::{Answer, Job, PendingAppend, Writer};

/// (recipient, id of the row's last message) → a row of that recipient's messages (see `row`).
const LOG_ROWS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log_rows");
/// recipient → delivered-up-to id.
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
/// Counters: [`LAST_ID`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LAST_ID: &str = "last_id";
/// (sender, idempotency key) → (id, sent_at seconds, nanos, recipient, content digest).
const POSTS: TableDefinition<(&str, &str), PostValue> = TableDefinition::new("posts");
/// The value of a [`POSTS`] record.
type PostValue = (u64, u64, u32, &'static str, &'static [u8]);
/// id of a posted message → (sender, idempotency key): the [`POSTS`] records in id order.
const POSTS_BY_ID: TableDefinition<u64, (&str, &str)> = TableDefinition::new("posts_by_id");

/// Jobs (appends of up to one stream batch each, cursor wake-ups, flushes) waiting for the
/// writer thread, at most; an append finding the queue full waits for room.
pub const JOB_QUEUE: usize = 1024;

/// The redb store; see the module documentation.
pub struct RedbStore {
    db: Arc<redb::Database>,
    /// Cursor moves not committed yet. Bounded by the users with state in the mailboxes, since
    /// only they move cursors.
    moved_cursors: Arc<Mutex<CursorMoves>>,
    /// To the writer thread; `None` once dropped.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl RedbStore {
    /// Opens (or creates) the database `courier.redb` in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::to("create the data directory"))?;
        let db = redb::Database::create(dir.join("courier.redb"))
            .map_err(StoreError::to("open the database"))?;
        let write = db
            .begin_write()
            .map_err(StoreError::to("open the database"))?;
        {
            write
                .open_table(LOG_ROWS)
                .map_err(StoreError::to("create the tables"))?;
            write
                .open_table(CURSORS)
                .map_err(StoreError::to("create the tables"))?;
            write
                .open_table(META)
                .map_err(StoreError::to("create the tables"))?;
            write
                .open_table(POSTS)
                .map_err(StoreError::to("create the tables"))?;
            write
                .open_table(POSTS_BY_ID)
                .map_err(StoreError::to("create the tables"))?;
        }
        write
            .commit()
            .map_err(StoreError::to("create the tables"))?;
        migrate::migrate(&db, migrate::CHUNK)?;
        let db = Arc::new(db);
        let moved_cursors = Arc::new(Mutex::new(CursorMoves::default()));
        let (jobs, queue) = mpsc::channel(JOB_QUEUE);
        let writer = Writer {
            db: Arc::clone(&db),
            moved_cursors: Arc::clone(&moved_cursors),
        };
        let writer = std::thread::Builder::new()
            .name("courier-store".into())
            .spawn(move || writer.run(queue))
            .map_err(StoreError::to("start the writer thread"))?;
        Ok(Self {
            db,
            moved_cursors,
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    fn jobs(&self) -> Result<&mpsc::Sender<Job>, StoreError> {
        self.jobs.as_ref().ok_or(StoreError::WriterStopped)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // The writer makes the last cursor moves durable and stops once its queue is closed;
        // waiting for it releases the database file before anyone reopens it.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Cursor moves on their way to the database: user → id.
#[derive(Default)]
struct CursorMoves {
    /// Made since the writer last took them.
    pending: HashMap<UserName, u64>,
    /// Taken by the writer for the transaction it is writing; cleared once that is committed
    /// (or put back into `pending` if it failed). Until then a reader of a cursor finds the move
    /// here: the database does not have it yet.
    writing: HashMap<UserName, u64>,
}

impl CursorMoves {
    /// The furthest move of `user`'s cursor not committed yet, if any.
    fn get(&self, user: &UserName) -> Option<u64> {
        let pending = self.pending.get(user).copied();
        let writing = self.writing.get(user).copied();
        pending.max(writing)
    }
}

/// Locks `mutex`; every update under the store's locks is a single insert or removal, so a
/// panic elsewhere cannot leave one half-done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `time` as seconds and nanoseconds since the Unix epoch (the epoch itself if earlier).
fn to_parts(time: SystemTime) -> (u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

/// The inverse of [`to_parts`].
fn from_parts(seconds: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// A [`POSTS`] value as a record.
fn post_record(
    (id, seconds, nanos, to, digest): (u64, u64, u32, &str, &[u8]),
) -> Result<PostRecord, StoreError> {
    const WHAT: &str = "read a post record";
    Ok(PostRecord {
        id,
        sent_at: from_parts(seconds, nanos),
        // Only names that followed the rule were ever written.
        to: UserName::parse(to).map_err(StoreError::to(WHAT))?,
        digest: digest
            .try_into()
            .map_err(|_| StoreError::failed(WHAT, BadDigest(digest.len())))?,
    })
}

/// A stored content digest of the wrong length.
#[derive(Debug, thiserror::Error)]
#[error("a content digest is {0} bytes long instead of 32")]
struct BadDigest(usize);

impl Store for RedbStore {
    fn append_all(&self, messages: Vec<NewMessage>, sent_at: SystemTime) -> Appending {
        let jobs = self.jobs().cloned();
        Box::pin(async move {
            let (answer, answered) = oneshot::channel();
            let job = Job::Append(PendingAppend {
                messages,
                sent_at,
                answer: Answer::Ids(answer),
            });
            jobs?
                .send(job)
                .await
                .map_err(|_| StoreError::WriterStopped)?;
            answered.await.map_err(|_| StoreError::WriterStopped)?
        })
    }

    fn post(&self, message: NewMessage, key: IdempotencyKey, sent_at: SystemTime) -> Posting {
        let jobs = self.jobs().cloned();
        Box::pin(async move {
            let (answer, answered) = oneshot::channel();
            let job = Job::Append(PendingAppend {
                messages: vec![message],
                sent_at,
                answer: Answer::Post(key, answer),
            });
            jobs?
                .send(job)
                .await
                .map_err(|_| StoreError::WriterStopped)?;
            answered.await.map_err(|_| StoreError::WriterStopped)?
        })
    }

    fn posted(
        &self,
        from: &UserName,
        key: &IdempotencyKey,
    ) -> Result<Option<PostRecord>, StoreError> {
        reader::posted(&self.db, from, key)
    }

    fn prune_posts(&self, cutoff: SystemTime, max: usize) -> Result<usize, StoreError> {
        prune::prune_posts(&self.db, cutoff, max)
    }

    fn read_after(
        &self,
        user: &UserName,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        reader::read_after(&self.db, user, after, limit)
    }

    fn count_after(&self, user: &UserName, after: u64) -> Result<usize, StoreError> {
        reader::count_after(&self.db, user, after)
    }

    fn cursor(&self, user: &UserName) -> Result<u64, StoreError> {
        // The moves first: one the writer commits meanwhile is in the database when it leaves
        // them.
        let moved = lock(&self.moved_cursors).get(user).unwrap_or(0);
        Ok(moved.max(reader::cursor(&self.db, user)?))
    }

    fn advance_cursor(&self, user: &UserName, id: u64) -> Result<(), StoreError> {
        let first_move = {
            let mut moved = lock(&self.moved_cursors);
            let first_move = moved.pending.is_empty();
            let cursor = moved.pending.entry(user.clone()).or_default();
            *cursor = (*cursor).max(id);
            first_move
        };
        // One wake-up for all the moves made before the writer gets to them. A full queue needs
        // none: the writer takes every move with its next commit, which is coming.
        if first_move {
            match self.jobs()?.try_send(Job::Cursors) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(StoreError::WriterStopped),
            }
        }
        Ok(())
    }

    fn prune(&self, cutoff: SystemTime, max: usize) -> Result<Vec<Pruned>, StoreError> {
        prune::prune(&self.db, cutoff, max)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let (answer, answered) = std::sync::mpsc::channel();
        self.jobs()?
            .blocking_send(Job::Flush(answer))
            .map_err(|_| StoreError::WriterStopped)?;
        answered.recv().map_err(|_| StoreError::WriterStopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PostOutcome, conformance};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_redb_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance::check(&RedbStore::open(dir.path()).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_to_the_redb_store_get_distinct_ids_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        conformance::concurrent_appends(Arc::new(RedbStore::open(dir.path()).unwrap())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_posts_of_one_key_to_the_redb_store_append_once() {
        let dir = tempfile::tempdir().unwrap();
        conformance::concurrent_posts(Arc::new(RedbStore::open(dir.path()).unwrap())).await;
    }

    #[tokio::test]
    async fn the_redb_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let jack = UserName::parse("jack").unwrap();
        let sent = {
            let store = RedbStore::open(dir.path()).unwrap();
            let sent = conformance::append(&store, "mike", "kept", SystemTime::now()).await;
            // Not flushed: closing the store writes it.
            store.advance_cursor(&jack, 7).unwrap();
            sent
        };
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.read_after(&sent.to, 0, 10).unwrap(),
            std::slice::from_ref(&sent)
        );
        assert_eq!(store.cursor(&jack).unwrap(), 7);
        assert!(
            conformance::append(&store, "mike", "next", SystemTime::now())
                .await
                .id
                > sent.id
        );
    }

    /// A cursor move the writer has taken but not committed yet is still read back: a reader
    /// between the two must not see the cursor where the database still has it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cursor_move_being_written_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let mike = UserName::parse("mike").unwrap();
        // The writer takes the move and stalls on this open transaction before committing it.
        let stall = store.db.begin_write().unwrap();
        store.advance_cursor(&mike, 5).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while !lock(&store.moved_cursors).pending.is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the writer takes the move");
        assert_eq!(store.cursor(&mike).unwrap(), 5, "while it is being written");
        drop(stall);
        tokio::time::timeout(Duration::from_secs(10), async {
            while !lock(&store.moved_cursors).writing.is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the writer commits the move");
        assert_eq!(store.cursor(&mike).unwrap(), 5, "once it is written");
        assert_eq!(reader::cursor(&store.db, &mike).unwrap(), 5);
    }

    fn key(key: &str) -> IdempotencyKey {
        IdempotencyKey::parse(key).unwrap()
    }

    #[tokio::test]
    async fn post_records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let jack = UserName::parse("jack").unwrap();
        let sent_at = UNIX_EPOCH + Duration::new(1_700_000_000, 987_654_321);
        let record = {
            let store = RedbStore::open(dir.path()).unwrap();
            let message = conformance::message("jack", "mike", "kept");
            let outcome = store.post(message, key("k"), sent_at).await.unwrap();
            let PostOutcome::Appended(id) = outcome else {
                panic!("{outcome:?}")
            };
            store.posted(&jack, &key("k")).unwrap().unwrap();
            PostRecord {
                id,
                sent_at,
                to: UserName::parse("mike").unwrap(),
                digest: crate::domain::content_digest("kept"),
            }
        };
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.posted(&jack, &key("k")).unwrap(),
            Some(record.clone())
        );
        let again = conformance::message("jack", "mike", "kept");
        assert_eq!(
            store
                .post(again, key("k"), SystemTime::now())
                .await
                .unwrap(),
            PostOutcome::Recorded(record)
        );
        assert_eq!(
            store
                .count_after(&UserName::parse("mike").unwrap(), 0)
                .unwrap(),
            1
        );
    }

    /// The writer sees the records its own transaction inserted: two posts of one key committed
    /// together append once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_posts_of_one_key_in_one_commit_append_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(dir.path()).unwrap());
        let queue = store.jobs().unwrap().clone();
        let wait_for = |capacity: usize| {
            let queue = queue.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(10), async {
                    while queue.capacity() != capacity {
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .expect("the queue reaches the capacity");
            }
        };
        // The writer takes a job and stalls on this open transaction, so the two posts queue
        // up behind it and go into the next commit together.
        let stall = store.db.begin_write().unwrap();
        queue.send(Job::Cursors).await.unwrap();
        wait_for(JOB_QUEUE).await;
        let posts: Vec<_> = ["first", "second"]
            .into_iter()
            .map(|content| {
                let message = conformance::message("jack", "mike", content);
                tokio::spawn(store.post(message, key("k"), SystemTime::now()))
            })
            .collect();
        wait_for(JOB_QUEUE - 2).await;
        drop(stall);
        let mut outcomes = Vec::new();
        for post in posts {
            outcomes.push(post.await.unwrap().unwrap());
        }
        let mike = UserName::parse("mike").unwrap();
        let stored = store.read_after(&mike, 0, 10).unwrap();
        assert_eq!(stored.len(), 1, "{outcomes:?}");
        // Whichever reached the queue first appended; the other answers its record.
        let record = PostRecord::of(&stored[0]);
        let appended = PostOutcome::Appended(stored[0].id);
        let recorded = PostOutcome::Recorded(record);
        assert!(
            outcomes == [appended.clone(), recorded.clone()] || outcomes == [recorded, appended],
            "{outcomes:?}"
        );
    }

    /// A data directory of the version before posts (no `posts` tables) opens with its
    /// messages and takes posts.
    #[tokio::test]
    async fn a_database_without_the_post_tables_opens_and_takes_posts() {
        let dir = tempfile::tempdir().unwrap();
        let old = {
            let store = RedbStore::open(dir.path()).unwrap();
            conformance::append(&store, "mike", "from before", SystemTime::now()).await
        };
        {
            let db = redb::Database::create(dir.path().join("courier.redb")).unwrap();
            let write = db.begin_write().unwrap();
            assert!(write.delete_table(POSTS).unwrap());
            assert!(write.delete_table(POSTS_BY_ID).unwrap());
            write.commit().unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.read_after(&old.to, 0, 10).unwrap(),
            std::slice::from_ref(&old)
        );
        let message = conformance::message("jack", "mike", "posted");
        let outcome = store
            .post(message, key("k"), SystemTime::now())
            .await
            .unwrap();
        assert_eq!(outcome, PostOutcome::Appended(old.id + 1));
        assert_eq!(store.prune_posts(SystemTime::now(), 10).unwrap(), 1);
    }

    #[tokio::test]
    async fn a_commit_bigger_than_a_row_spreads_over_rows_that_read_as_one_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let mike = UserName::parse("mike").unwrap();
        let total = row::MAX_MESSAGES * 3;
        // Mike's messages interleaved with nina's, in one append.
        let batch = (0..total)
            .map(|n| {
                let to = if n % 5 == 0 { "nina" } else { "mike" };
                conformance::message("jack", to, &n.to_string())
            })
            .collect();
        let ids = store.append_all(batch, SystemTime::now()).await.unwrap();
        let mike_ids: Vec<u64> = ids.clone().filter(|id| (id - ids.start) % 5 != 0).collect();
        let read = store.read_after(&mike, 0, usize::MAX).unwrap();
        assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), mike_ids);
        assert!(
            read.iter()
                .all(|e| e.content == (e.id - ids.start).to_string())
        );
        let rows = {
            let read = redb::ReadableDatabase::begin_read(&*store.db).unwrap();
            let table = read.open_table(LOG_ROWS).unwrap();
            redb::ReadableTableMetadata::len(&table).unwrap()
        };
        assert_eq!(rows, 3 + 1, "mike's three rows (two full) and nina's one");
        // From every position, across row boundaries.
        let full = row::MAX_MESSAGES;
        for position in [
            0,
            1,
            full - 1,
            full,
            2 * full - 1,
            2 * full,
            mike_ids.len() - 1,
        ] {
            let after = mike_ids[position];
            assert_eq!(
                store.count_after(&mike, after).unwrap(),
                mike_ids.len() - position - 1
            );
            let next: Vec<u64> = store
                .read_after(&mike, after, 3)
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(
                next,
                mike_ids[position + 1..]
                    .iter()
                    .take(3)
                    .copied()
                    .collect::<Vec<_>>()
            );
            // And from an id that is not mike's.
            assert_eq!(
                store.count_after(&mike, after + 1).unwrap(),
                mike_ids.iter().filter(|&&id| id > after + 1).count()
            );
        }
    }

    #[test]
    fn messages_sharing_a_row_expire_each_at_its_own_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        // One row of mike's, as a commit of two appends sent at 10 s and 30 s writes it.
        let mut row = row::RowWriter::default();
        for (id, seconds) in [(1, 10), (2, 10), (3, 30)] {
            row.push(id, (seconds, 0), "jack", "text").unwrap();
        }
        let mut encoded = Vec::new();
        row.encode(&mut encoded);
        let write = store.db.begin_write().unwrap();
        write
            .open_table(LOG_ROWS)
            .unwrap()
            .insert(("mike", 3), encoded.as_slice())
            .unwrap();
        write.commit().unwrap();

        let mike = UserName::parse("mike").unwrap();
        assert_eq!(
            store.prune(at(20), 100).unwrap(),
            [(mike.clone(), 1), (mike.clone(), 2)]
        );
        let left = store.read_after(&mike, 0, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].id, left[0].sent_at), (3, at(30)));
        assert_eq!(store.count_after(&mike, 0).unwrap(), 1);
        assert_eq!(store.prune(at(20), 100).unwrap(), []);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_job_queue_makes_appends_wait_and_loses_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(dir.path()).unwrap());
        // An open write transaction stalls the writer at its next commit.
        let stall = store.db.begin_write().unwrap();
        // The writer takes one commit's worth (MAX_COMMIT messages) before it stalls; the
        // queue then fills up.
        let batch = 8;
        let jobs = JOB_QUEUE + writer::MAX_COMMIT / batch + 10;
        let appends: Vec<_> = (0..jobs)
            .map(|n| {
                let messages = (0..batch)
                    .map(|m| conformance::message("jack", "mike", &format!("{n}.{m}")))
                    .collect();
                tokio::spawn(store.append_all(messages, SystemTime::now()))
            })
            .collect();
        let queue = store.jobs().unwrap().clone();
        tokio::time::timeout(Duration::from_secs(10), async {
            while queue.capacity() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the queue fills up");
        assert!(appends.iter().all(|append| !append.is_finished()));
        drop(stall);
        let mut ids = Vec::new();
        for append in appends {
            ids.extend(append.await.unwrap().unwrap());
        }
        ids.sort_unstable();
        let expected: Vec<u64> = (1..=(jobs * batch) as u64).collect();
        assert_eq!(ids, expected, "every waiting append landed");
    }
}
