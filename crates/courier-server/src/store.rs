//! Where queued messages live: a small storage trait, an embedded crash-safe store (redb) for
//! servers, and an in-memory one for tests.
//!
//! Each recipient has a log of messages in id order (ids are increasing across the server) and a
//! delivery cursor: every message up to it has been handed to a stream. Messages stay in the log,
//! delivered or not, until they are older than the retention period, so a client can resume
//! from any id it still has.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::mailbox::Envelope;

/// The store failed; what was being done did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StoreError(String);

impl StoreError {
    fn from_any(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// A message to append: sender, recipient, text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewMessage<'a> {
    /// Sender's user name.
    pub from: &'a str,
    /// Recipient's user name: the log it goes to.
    pub to: &'a str,
    /// The text.
    pub content: &'a str,
}

/// Persistence of message logs and delivery cursors.
pub trait Store: Send + Sync + 'static {
    /// Appends messages to their recipients' logs under the next ids, in order, all or none.
    /// Once this returns, they survive a crash of the process (for durable stores); a batch
    /// costs one commit, however many messages it holds.
    fn append_all(
        &self,
        messages: &[NewMessage<'_>],
        sent_at: SystemTime,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Appends one message (see [`Store::append_all`]).
    fn append(
        &self,
        from: &str,
        to: &str,
        content: &str,
        sent_at: SystemTime,
    ) -> Result<Envelope, StoreError> {
        let mut appended = self.append_all(&[NewMessage { from, to, content }], sent_at)?;
        Ok(appended.pop().expect("one message in, one out"))
    }
    /// Up to `limit` messages of `user`'s log with an id above `after`, in id order.
    fn read_after(&self, user: &str, after: u64, limit: usize)
    -> Result<Vec<Envelope>, StoreError>;
    /// How many messages of `user`'s log have an id above `after`.
    fn count_after(&self, user: &str, after: u64) -> Result<usize, StoreError>;
    /// The id up to which `user` has been delivered; 0 when nothing was.
    fn cursor(&self, user: &str) -> Result<u64, StoreError>;
    /// Moves `user`'s cursor to `id` if that is forward.
    fn advance_cursor(&self, user: &str, id: u64) -> Result<(), StoreError>;
    /// Removes the messages sent before `cutoff`; answers how many.
    fn prune(&self, cutoff: SystemTime) -> Result<usize, StoreError>;
    /// Makes everything written so far durable, cursor moves included (at shutdown).
    fn flush(&self) -> Result<(), StoreError>;
}

fn to_parts(time: SystemTime) -> (u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

fn from_parts(seconds: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(seconds, nanos)
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
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn append_all(
        &self,
        messages: &[NewMessage<'_>],
        sent_at: SystemTime,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut state = self.lock();
        let mut appended = Vec::with_capacity(messages.len());
        for message in messages {
            state.last_id += 1;
            let envelope = Envelope {
                id: state.last_id,
                from: message.from.to_owned(),
                to: message.to.to_owned(),
                content: message.content.to_owned(),
                sent_at,
            };
            state
                .logs
                .entry(message.to.to_owned())
                .or_default()
                .insert(envelope.id, envelope.clone());
            appended.push(envelope);
        }
        Ok(appended)
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
/// id → (recipient, sent_at seconds): the messages in time order, for pruning.
const BY_ID: TableDefinition<u64, (&str, u64)> = TableDefinition::new("messages_by_id");
/// recipient → delivered-up-to id.
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
/// Counters: [`LAST_ID`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LAST_ID: &str = "last_id";

/// The embedded, crash-safe store: a redb database file. Every append (of one message or a
/// batch) is one transaction, committed durably (fsync) before the call returns; cursor moves
/// ride on the next append.
pub struct RedbStore {
    db: redb::Database,
}

impl RedbStore {
    /// Opens (or creates) the database `courier.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::from_any)?;
        let db = redb::Database::create(dir.join("courier.redb")).map_err(StoreError::from_any)?;
        let write = db.begin_write().map_err(StoreError::from_any)?;
        {
            write.open_table(MESSAGES).map_err(StoreError::from_any)?;
            write.open_table(BY_ID).map_err(StoreError::from_any)?;
            write.open_table(CURSORS).map_err(StoreError::from_any)?;
            write.open_table(META).map_err(StoreError::from_any)?;
        }
        write.commit().map_err(StoreError::from_any)?;
        Ok(Self { db })
    }
}

impl Store for RedbStore {
    fn append_all(
        &self,
        messages: &[NewMessage<'_>],
        sent_at: SystemTime,
    ) -> Result<Vec<Envelope>, StoreError> {
        let (seconds, nanos) = to_parts(sent_at);
        let write = self.db.begin_write().map_err(StoreError::from_any)?;
        let mut appended = Vec::with_capacity(messages.len());
        {
            // The last id is kept apart from the messages: ids never repeat, even after pruning.
            let mut meta = write.open_table(META).map_err(StoreError::from_any)?;
            let mut id = meta
                .get(LAST_ID)
                .map_err(StoreError::from_any)?
                .map_or(0, |id| id.value());
            let mut by_id = write.open_table(BY_ID).map_err(StoreError::from_any)?;
            let mut table = write.open_table(MESSAGES).map_err(StoreError::from_any)?;
            for message in messages {
                id += 1;
                by_id
                    .insert(id, (message.to, seconds))
                    .map_err(StoreError::from_any)?;
                table
                    .insert(
                        (message.to, id),
                        (message.from, message.content, seconds, nanos),
                    )
                    .map_err(StoreError::from_any)?;
                appended.push(Envelope {
                    id,
                    from: message.from.to_owned(),
                    to: message.to.to_owned(),
                    content: message.content.to_owned(),
                    sent_at: from_parts(seconds, nanos),
                });
            }
            meta.insert(LAST_ID, id).map_err(StoreError::from_any)?;
        }
        write.commit().map_err(StoreError::from_any)?;
        Ok(appended)
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
        let read = self.db.begin_read().map_err(StoreError::from_any)?;
        let cursors = read.open_table(CURSORS).map_err(StoreError::from_any)?;
        Ok(cursors
            .get(user)
            .map_err(StoreError::from_any)?
            .map_or(0, |id| id.value()))
    }

    fn advance_cursor(&self, user: &str, id: u64) -> Result<(), StoreError> {
        let mut write = self.db.begin_write().map_err(StoreError::from_any)?;
        // No fsync of its own: the next append's commit makes it durable. A crash before that
        // repeats deliveries (the cursor lags), it never skips one.
        write
            .set_durability(redb::Durability::None)
            .map_err(StoreError::from_any)?;
        {
            let mut cursors = write.open_table(CURSORS).map_err(StoreError::from_any)?;
            let current = cursors
                .get(user)
                .map_err(StoreError::from_any)?
                .map_or(0, |id| id.value());
            if id > current {
                cursors.insert(user, id).map_err(StoreError::from_any)?;
            }
        }
        write.commit().map_err(StoreError::from_any)
    }

    fn prune(&self, cutoff: SystemTime) -> Result<usize, StoreError> {
        let (cutoff_seconds, _) = to_parts(cutoff);
        let write = self.db.begin_write().map_err(StoreError::from_any)?;
        let mut removed = Vec::new();
        {
            let mut by_id = write.open_table(BY_ID).map_err(StoreError::from_any)?;
            // Ids grow with time, so the expired messages are a prefix of BY_ID.
            for entry in by_id.iter().map_err(StoreError::from_any)? {
                let (id, value) = entry.map_err(StoreError::from_any)?;
                let (to, seconds) = value.value();
                if seconds >= cutoff_seconds {
                    break;
                }
                removed.push((to.to_owned(), id.value()));
            }
            for (_, id) in &removed {
                by_id.remove(*id).map_err(StoreError::from_any)?;
            }
        }
        {
            let mut messages = write.open_table(MESSAGES).map_err(StoreError::from_any)?;
            for (to, id) in &removed {
                messages
                    .remove((to.as_str(), *id))
                    .map_err(StoreError::from_any)?;
            }
        }
        write.commit().map_err(StoreError::from_any)?;
        Ok(removed.len())
    }

    fn flush(&self) -> Result<(), StoreError> {
        // An empty durable commit also makes the earlier non-durable ones durable.
        let write = self.db.begin_write().map_err(StoreError::from_any)?;
        write.commit().map_err(StoreError::from_any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The behaviour every store must have, run against each.
    fn check_store(store: &dyn Store) {
        let at = |seconds| UNIX_EPOCH + Duration::from_secs(seconds);
        let first = store.append("jack", "mike", "one", at(100)).unwrap();
        let second = store.append("jack", "mike", "two", at(200)).unwrap();
        let other = store.append("mike", "jack", "hi", at(200)).unwrap();
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

        assert_eq!(store.prune(at(150)).unwrap(), 1);
        assert_eq!(store.read_after("mike", 0, 10).unwrap(), [second]);
        assert_eq!(
            store.read_after("jack", 0, 10).unwrap(),
            std::slice::from_ref(&other)
        );
        let next = store.append("jack", "mike", "three", at(300)).unwrap();
        assert!(next.id > other.id, "ids never repeat");

        let batch = [
            NewMessage {
                from: "jack",
                to: "mike",
                content: "four",
            },
            NewMessage {
                from: "jack",
                to: "nina",
                content: "for nina",
            },
            NewMessage {
                from: "jack",
                to: "mike",
                content: "five",
            },
        ];
        let appended = store.append_all(&batch, at(400)).unwrap();
        let ids: Vec<u64> = appended.iter().map(|envelope| envelope.id).collect();
        assert_eq!(
            ids,
            [next.id + 1, next.id + 2, next.id + 3],
            "one id each, in order"
        );
        let mike: Vec<String> = store
            .read_after("mike", next.id, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.content)
            .collect();
        assert_eq!(mike, ["four", "five"]);
        assert_eq!(
            store.read_after("nina", 0, 10).unwrap(),
            [appended[1].clone()]
        );
    }

    #[test]
    fn the_memory_store_keeps_logs_and_cursors() {
        check_store(&MemoryStore::default());
    }

    #[test]
    fn the_redb_store_keeps_logs_and_cursors() {
        let dir = tempfile::tempdir().unwrap();
        check_store(&RedbStore::open(dir.path()).unwrap());
    }

    #[test]
    fn the_redb_store_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let sent = {
            let store = RedbStore::open(dir.path()).unwrap();
            let sent = store
                .append("jack", "mike", "kept", SystemTime::now())
                .unwrap();
            store.advance_cursor("jack", 7).unwrap();
            sent
        };
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.read_after("mike", 0, 10).unwrap(),
            std::slice::from_ref(&sent)
        );
        assert_eq!(store.cursor("jack").unwrap(), 7);
        assert!(
            store
                .append("jack", "mike", "next", SystemTime::now())
                .unwrap()
                .id
                > sent.id
        );
    }
}
