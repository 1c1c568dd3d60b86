//! Where queued messages live: a small storage trait, an embedded crash-safe store (redb) for
//! servers, and an in-memory one for tests.
//!
//! Each recipient has a log of messages in id order (ids are increasing across the server) and a
//! delivery cursor: every message up to it has been handed to a stream. Messages stay in the log,
//! delivered or not, until they are older than the retention period, so a client can resume
//! from any id it still has.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, Range};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::mailbox::Envelope;

/// The store failed; what was being done did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreError(String);

impl StoreError {
    pub(crate) fn from_any(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }

    fn writer_stopped() -> Self {
        Self("the store's writer has stopped".into())
    }
}

/// A message to append: sender, recipient, text. It moves into the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Sender's user name.
    pub from: String,
    /// Recipient's user name: the log it goes to.
    pub to: String,
    /// The text.
    pub content: String,
}

/// An append under way; it answers the ids the messages got, in order, once they are stored.
pub type Appending = BoxFuture<'static, Result<Range<u64>, StoreError>>;

/// Persistence of message logs and delivery cursors.
pub trait Store: Send + Sync + 'static {
    /// Appends messages to their recipients' logs under the next ids, in order, all or none.
    /// Once the answer comes, they survive a crash of the process (for durable stores).
    /// Appends made at the same time may share one commit, however many messages they hold.
    fn append_all(&self, messages: Vec<NewMessage>, sent_at: SystemTime) -> Appending;
    /// Up to `limit` messages of `user`'s log with an id above `after`, in id order.
    fn read_after(&self, user: &str, after: u64, limit: usize)
    -> Result<Vec<Envelope>, StoreError>;
    /// How many messages of `user`'s log have an id above `after`.
    fn count_after(&self, user: &str, after: u64) -> Result<usize, StoreError>;
    /// The id up to which `user` has been delivered; 0 when nothing was.
    fn cursor(&self, user: &str) -> Result<u64, StoreError>;
    /// Moves `user`'s cursor to `id` if that is forward. Never waits for the disk: the move may
    /// become durable later (with the next commit, or [`Store::flush`]), so a crash repeats
    /// deliveries, never skips one.
    fn advance_cursor(&self, user: &str, id: u64) -> Result<(), StoreError>;
    /// Removes the messages sent before `cutoff`; answers how many. May wait for the disk.
    fn prune(&self, cutoff: SystemTime) -> Result<usize, StoreError>;
    /// Makes everything written so far durable, cursor moves included (at shutdown). May wait
    /// for the disk.
    fn flush(&self) -> Result<(), StoreError>;
}

fn to_parts(time: SystemTime) -> (u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

fn from_parts(seconds: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// Locks `mutex`; every update under the store's locks is a single insert or removal, so a
/// panic elsewhere cannot leave one half-done.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// === in memory ===

/// Everything in memory: for tests and for servers that need no durability.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    last_id: u64,
    logs: HashMap<String, BTreeMap<u64, Envelope>>,
    cursors: HashMap<String, u64>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        lock(&self.state)
    }
}

impl Store for MemoryStore {
    fn append_all(&self, messages: Vec<NewMessage>, sent_at: SystemTime) -> Appending {
        let mut state = self.lock();
        let first = state.last_id + 1;
        for NewMessage { from, to, content } in messages {
            state.last_id += 1;
            let id = state.last_id;
            let log = match state.logs.get_mut(&to) {
                Some(log) => log,
                None => state.logs.entry(to.clone()).or_default(),
            };
            let envelope = Envelope {
                id,
                from,
                to,
                content,
                sent_at,
            };
            log.insert(id, envelope);
        }
        let ids = first..state.last_id + 1;
        std::future::ready(Ok(ids)).boxed()
    }

    fn read_after(
        &self,
        user: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let state = self.lock();
        let Some(log) = state.logs.get(user) else {
            return Ok(Vec::new());
        };
        Ok(log
            .range(after + 1..)
            .take(limit)
            .map(|(_, envelope)| envelope.clone())
            .collect())
    }

    fn count_after(&self, user: &str, after: u64) -> Result<usize, StoreError> {
        let state = self.lock();
        Ok(state
            .logs
            .get(user)
            .map_or(0, |log| log.range(after + 1..).count()))
    }

    fn cursor(&self, user: &str) -> Result<u64, StoreError> {
        Ok(self.lock().cursors.get(user).copied().unwrap_or(0))
    }

    fn advance_cursor(&self, user: &str, id: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(user.to_owned()).or_default();
        *cursor = (*cursor).max(id);
        Ok(())
    }

    fn prune(&self, cutoff: SystemTime) -> Result<usize, StoreError> {
        let mut state = self.lock();
        let mut removed = 0;
        for log in state.logs.values_mut() {
            let before = log.len();
            log.retain(|_, envelope| envelope.sent_at >= cutoff);
            removed += before - log.len();
        }
        Ok(removed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

// === redb ===

/// (recipient, id) → (from, content, sent_at seconds, sent_at nanos).
const MESSAGES: TableDefinition<(&str, u64), (&str, &str, u64, u32)> =
    TableDefinition::new("messages");
/// An index by id that earlier builds of this server kept for pruning; dropped at open, since
/// one insert per message is half the writer's work.
const LEGACY_BY_ID: TableDefinition<u64, (&str, u64)> = TableDefinition::new("messages_by_id");
/// recipient → delivered-up-to id.
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
/// Counters: [`LAST_ID`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LAST_ID: &str = "last_id";

/// The embedded, crash-safe store: a redb database file.
///
/// One writer thread makes every write: it takes all the appends waiting, writes them in one
/// transaction and commits it durably (fsync) before answering any of them (group commit), so
/// concurrent streams share commits and no async task ever waits on the disk. Cursor moves are
/// kept in memory and written with the next transaction.
pub struct RedbStore {
    db: Arc<redb::Database>,
    /// Cursor moves not written yet: user → id.
    moved_cursors: Arc<Mutex<HashMap<String, u64>>>,
    /// To the writer thread; `None` once dropped.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Work for the writer thread.
enum Job {
    /// Append messages, answer their ids once durable.
    Append(PendingAppend),
    /// Write the cursor moves made so far (not durably by itself).
    Cursors,
    /// Make everything so far durable, then answer.
    Flush(mpsc::Sender<Result<(), StoreError>>),
}

/// An append waiting for the writer.
struct PendingAppend {
    messages: Vec<NewMessage>,
    sent_at: SystemTime,
    answer: oneshot::Sender<Result<Range<u64>, StoreError>>,
}

/// Messages one commit takes at most: a bound on a transaction's size and on the wait of the
/// appends queued behind it.
const MAX_COMMIT: usize = 4096;

impl RedbStore {
    /// Opens (or creates) the database `courier.redb` in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::from_any)?;
        let db = redb::Database::create(dir.join("courier.redb")).map_err(StoreError::from_any)?;
        let write = db.begin_write().map_err(StoreError::from_any)?;
        {
            write.open_table(MESSAGES).map_err(StoreError::from_any)?;
            write
                .delete_table(LEGACY_BY_ID)
                .map_err(StoreError::from_any)?;
            write.open_table(CURSORS).map_err(StoreError::from_any)?;
            write.open_table(META).map_err(StoreError::from_any)?;
        }
        write.commit().map_err(StoreError::from_any)?;
        let db = Arc::new(db);
        let moved_cursors = Arc::new(Mutex::new(HashMap::new()));
        let (jobs, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("courier-store".into())
            .spawn({
                let writer = Writer {
                    db: Arc::clone(&db),
                    moved_cursors: Arc::clone(&moved_cursors),
                };
                move || writer.run(&queue)
            })
            .map_err(StoreError::from_any)?;
        Ok(Self {
            db,
            moved_cursors,
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(StoreError::writer_stopped)
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

/// The writer thread's side of a [`RedbStore`].
struct Writer {
    db: Arc<redb::Database>,
    moved_cursors: Arc<Mutex<HashMap<String, u64>>>,
}

/// One group of jobs, written in one transaction.
#[derive(Default)]
struct Group {
    appends: Vec<PendingAppend>,
    messages: usize,
    flushes: Vec<mpsc::Sender<Result<(), StoreError>>>,
}

impl Writer {
    fn run(&self, queue: &mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut group = Group::default();
            let mut next = Some(first);
            // Everything already waiting joins this commit, up to MAX_COMMIT messages.
            while let Some(job) = next.take() {
                match job {
                    Job::Append(append) => {
                        group.messages += append.messages.len();
                        group.appends.push(append);
                    }
                    Job::Cursors => {}
                    Job::Flush(answer) => group.flushes.push(answer),
                }
                if group.messages < MAX_COMMIT {
                    next = queue.try_recv().ok();
                }
            }
            let durable = !group.appends.is_empty() || !group.flushes.is_empty();
            tracing::trace!(
                appends = group.appends.len(),
                messages = group.messages,
                durable,
                "commit"
            );
            self.commit(group, durable);
        }
        // The store was dropped: make the last cursor moves durable.
        self.commit(Group::default(), true);
    }

    /// Writes `group` and the cursor moves in one transaction and answers each job.
    fn commit(&self, group: Group, durable: bool) {
        let cursors = std::mem::take(&mut *lock(&self.moved_cursors));
        match self.write(&group, &cursors, durable) {
            Ok(ids) => {
                for (append, ids) in group.appends.into_iter().zip(ids) {
                    let _ = append.answer.send(Ok(ids));
                }
                for answer in group.flushes {
                    let _ = answer.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "the message store could not commit");
                // The cursor moves are tried again with the next commit.
                let mut moved = lock(&self.moved_cursors);
                for (user, id) in cursors {
                    let cursor = moved.entry(user).or_default();
                    *cursor = (*cursor).max(id);
                }
                for append in group.appends {
                    let _ = append.answer.send(Err(error.clone()));
                }
                for answer in group.flushes {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }

    /// One transaction: the appends in order, each under the next ids, and the cursor moves.
    fn write(
        &self,
        group: &Group,
        cursors: &HashMap<String, u64>,
        durable: bool,
    ) -> Result<Vec<Range<u64>>, StoreError> {
        let mut write = self.db.begin_write().map_err(StoreError::from_any)?;
        if !durable {
            // Cursor moves alone wait for the next durable commit: a crash before it repeats
            // deliveries, it never skips one.
            write
                .set_durability(redb::Durability::None)
                .map_err(StoreError::from_any)?;
        }
        let mut assigned = Vec::with_capacity(group.appends.len());
        {
            // The last id is kept apart from the messages: ids never repeat, even after pruning.
            let mut meta = write.open_table(META).map_err(StoreError::from_any)?;
            let mut id = meta
                .get(LAST_ID)
                .map_err(StoreError::from_any)?
                .map_or(0, |id| id.value());
            let mut table = write.open_table(MESSAGES).map_err(StoreError::from_any)?;
            for append in &group.appends {
                let (seconds, nanos) = to_parts(append.sent_at);
                let first = id + 1;
                for message in &append.messages {
                    id += 1;
                    table
                        .insert(
                            (message.to.as_str(), id),
                            (
                                message.from.as_str(),
                                message.content.as_str(),
                                seconds,
                                nanos,
                            ),
                        )
                        .map_err(StoreError::from_any)?;
                }
                assigned.push(first..id + 1);
            }
            meta.insert(LAST_ID, id).map_err(StoreError::from_any)?;
            let mut stored = write.open_table(CURSORS).map_err(StoreError::from_any)?;
            for (user, id) in cursors {
                let current = stored
                    .get(user.as_str())
                    .map_err(StoreError::from_any)?
                    .map_or(0, |id| id.value());
                if *id > current {
                    stored
                        .insert(user.as_str(), *id)
                        .map_err(StoreError::from_any)?;
                }
            }
        }
        write.commit().map_err(StoreError::from_any)?;
        Ok(assigned)
    }
}

impl Store for RedbStore {
    fn append_all(&self, messages: Vec<NewMessage>, sent_at: SystemTime) -> Appending {
        let (answer, answered) = oneshot::channel();
        let sent = self.send(Job::Append(PendingAppend {
            messages,
            sent_at,
            answer,
        }));
        async move {
            sent?;
            answered.await.map_err(|_| StoreError::writer_stopped())?
        }
        .boxed()
    }

    fn read_after(
        &self,
        user: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let read = self.db.begin_read().map_err(StoreError::from_any)?;
        let messages = read.open_table(MESSAGES).map_err(StoreError::from_any)?;
        let mut found = Vec::new();
        for entry in messages
            .range((user, after + 1)..=(user, u64::MAX))
            .map_err(StoreError::from_any)?
            .take(limit)
        {
            let (key, value) = entry.map_err(StoreError::from_any)?;
            let (_, id) = key.value();
            let (from, content, seconds, nanos) = value.value();
            found.push(Envelope {
                id,
                from: from.to_owned(),
                to: user.to_owned(),
                content: content.to_owned(),
                sent_at: from_parts(seconds, nanos),
            });
        }
        Ok(found)
    }

    fn count_after(&self, user: &str, after: u64) -> Result<usize, StoreError> {
        let read = self.db.begin_read().map_err(StoreError::from_any)?;
        let messages = read.open_table(MESSAGES).map_err(StoreError::from_any)?;
        let range = messages
            .range((user, after + 1)..=(user, u64::MAX))
            .map_err(StoreError::from_any)?;
        Ok(range.count())
    }

    fn cursor(&self, user: &str) -> Result<u64, StoreError> {
        let moved = lock(&self.moved_cursors).get(user).copied().unwrap_or(0);
        let read = self.db.begin_read().map_err(StoreError::from_any)?;
        let cursors = read.open_table(CURSORS).map_err(StoreError::from_any)?;
        let stored = cursors
            .get(user)
            .map_err(StoreError::from_any)?
            .map_or(0, |id| id.value());
        Ok(moved.max(stored))
    }

    fn advance_cursor(&self, user: &str, id: u64) -> Result<(), StoreError> {
        let first_move = {
            let mut moved = lock(&self.moved_cursors);
            let first_move = moved.is_empty();
            let cursor = moved.entry(user.to_owned()).or_default();
            *cursor = (*cursor).max(id);
            first_move
        };
        // One wake-up for all the moves made before the writer gets to them.
        if first_move {
            self.send(Job::Cursors)?;
        }
        Ok(())
    }

    fn prune(&self, cutoff: SystemTime) -> Result<usize, StoreError> {
        let (cutoff_seconds, _) = to_parts(cutoff);
        let write = self.db.begin_write().map_err(StoreError::from_any)?;
        let mut expired: Vec<(String, u64)> = Vec::new();
        {
            let mut messages = write.open_table(MESSAGES).map_err(StoreError::from_any)?;
            // Ids grow with time, so each log's expired messages are a prefix of it. The logs are
            // visited in turn, each found by seeking past the one before.
            let mut previous: Option<String> = None;
            loop {
                let next = match &previous {
                    None => messages.first(),
                    Some(user) => messages
                        .range::<(&str, u64)>((
                            Bound::Excluded((user.as_str(), u64::MAX)),
                            Bound::Unbounded,
                        ))
                        .and_then(|mut after| after.next().transpose()),
                }
                .map_err(StoreError::from_any)?;
                let Some((key, _)) = next else { break };
                let user = key.value().0.to_owned();
                for entry in messages
                    .range((user.as_str(), 0)..=(user.as_str(), u64::MAX))
                    .map_err(StoreError::from_any)?
                {
                    let (key, value) = entry.map_err(StoreError::from_any)?;
                    let (_, _, seconds, _) = value.value();
                    if seconds >= cutoff_seconds {
                        break;
                    }
                    expired.push((user.clone(), key.value().1));
                }
                previous = Some(user);
            }
            for (user, id) in &expired {
                messages
                    .remove((user.as_str(), *id))
                    .map_err(StoreError::from_any)?;
            }
        }
        write.commit().map_err(StoreError::from_any)?;
        Ok(expired.len())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let (answer, answered) = mpsc::channel();
        self.send(Job::Flush(answer))?;
        answered.recv().map_err(|_| StoreError::writer_stopped())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: &str, to: &str, content: &str) -> NewMessage {
        NewMessage {
            from: from.into(),
            to: to.into(),
            content: content.into(),
        }
    }

    /// Appends one message and answers it as stored.
    async fn append(store: &dyn Store, to: &str, content: &str, sent_at: SystemTime) -> Envelope {
        let ids = store
            .append_all(vec![message("jack", to, content)], sent_at)
            .await
            .unwrap();
        assert_eq!(ids.end - ids.start, 1, "one message, one id");
        Envelope {
            id: ids.start,
            from: "jack".into(),
            to: to.into(),
            content: content.into(),
            sent_at,
        }
    }

    /// The behaviour every store must have, run against each.
    async fn check_store(store: &dyn Store) {
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        let first = append(store, "mike", "one", at(100)).await;
        let second = append(store, "mike", "two", at(200)).await;
        let other = append(store, "jack", "hi", at(200)).await;
        assert!(first.id < second.id && second.id < other.id);
        assert_eq!(
            store.read_after("mike", 0, 10).unwrap(),
            [first.clone(), second.clone()]
        );
        assert_eq!(
            store.read_after("mike", first.id, 10).unwrap(),
            std::slice::from_ref(&second)
        );
        assert_eq!(
            store.read_after("mike", 0, 1).unwrap(),
            std::slice::from_ref(&first)
        );
        assert_eq!(store.read_after("nobody", 0, 10).unwrap(), []);
        assert_eq!(store.count_after("mike", 0).unwrap(), 2);
        assert_eq!(store.count_after("mike", first.id).unwrap(), 1);

        assert_eq!(store.cursor("mike").unwrap(), 0);
        store.advance_cursor("mike", first.id).unwrap();
        store.advance_cursor("mike", 0).unwrap();
        assert_eq!(
            store.cursor("mike").unwrap(),
            first.id,
            "cursors never move back"
        );
        store.flush().unwrap();
        assert_eq!(store.cursor("mike").unwrap(), first.id, "nor when written");

        // Expired messages in two logs, on either side of a log with none.
        append(store, "zed", "old", at(120)).await;
        append(store, "zed", "new", at(200)).await;
        assert_eq!(store.prune(at(150)).unwrap(), 2);
        assert_eq!(store.read_after("mike", 0, 10).unwrap(), [second]);
        let zed = store.read_after("zed", 0, 10).unwrap();
        assert_eq!(zed.len(), 1);
        assert_eq!(zed[0].content, "new");
        assert_eq!(
            store.read_after("jack", 0, 10).unwrap(),
            std::slice::from_ref(&other)
        );
        let next = append(store, "mike", "three", at(300)).await;
        assert!(next.id > other.id, "ids never repeat");

        let batch = vec![
            message("jack", "mike", "four"),
            message("jack", "nina", "for nina"),
            message("jack", "mike", "five"),
        ];
        let ids = store.append_all(batch, at(400)).await.unwrap();
        assert_eq!(ids, next.id + 1..next.id + 4, "one id each, in order");
        let mike: Vec<String> = store
            .read_after("mike", next.id, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.content)
            .collect();
        assert_eq!(mike, ["four", "five"]);
        let nina = store.read_after("nina", 0, 10).unwrap();
        assert_eq!(nina.len(), 1);
        assert_eq!(
            (nina[0].id, nina[0].content.as_str()),
            (next.id + 2, "for nina")
        );
    }

    #[tokio::test]
    async fn the_memory_store_keeps_logs_and_cursors() {
        check_store(&MemoryStore::default()).await;
    }

    #[tokio::test]
    async fn the_redb_store_keeps_logs_and_cursors() {
        let dir = tempfile::tempdir().unwrap();
        check_store(&RedbStore::open(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn the_redb_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let sent = {
            let store = RedbStore::open(dir.path()).unwrap();
            let sent = append(&store, "mike", "kept", SystemTime::now()).await;
            // Not flushed: closing the store writes it.
            store.advance_cursor("jack", 7).unwrap();
            sent
        };
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.read_after("mike", 0, 10).unwrap(),
            std::slice::from_ref(&sent)
        );
        assert_eq!(store.cursor("jack").unwrap(), 7);
        assert!(append(&store, "mike", "next", SystemTime::now()).await.id > sent.id);
    }

    #[tokio::test]
    async fn concurrent_appends_to_the_redb_store_get_distinct_ids_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(dir.path()).unwrap());
        let appends = (0..16).map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let batch = (0..10)
                    .map(|n| message("jack", "mike", &format!("{writer}-{n}")))
                    .collect();
                store.append_all(batch, SystemTime::now()).await.unwrap()
            })
        });
        let mut ids: Vec<u64> = Vec::new();
        for append in appends {
            ids.extend(append.await.unwrap());
        }
        ids.sort_unstable();
        assert_eq!(ids, (1..=160).collect::<Vec<u64>>());
        let stored = store.read_after("mike", 0, 1000).unwrap();
        assert_eq!(stored.len(), 160);
        // Each batch is contiguous and in order.
        for envelope in &stored {
            let (_, n) = envelope.content.split_once('-').unwrap();
            let previous = stored.iter().find(|e| e.id + 1 == envelope.id);
            if n != "0" {
                assert_eq!(
                    previous.map(|e| e.content.split_once('-').unwrap().0),
                    envelope.content.split_once('-').map(|(writer, _)| writer)
                );
            }
        }
    }
}
