//! The in-memory [`Store`]: logs, cursors and post records in maps behind one lock. Nothing survives a
//! restart; for tests and `--in-memory`. The lock is held only for map operations, never for
//! I/O; one lock keeps ids assigned and inserted in the same order, so a reader never sees a
//! later id before an earlier one of the same log.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use futures_util::FutureExt as _;

use super::{Appending, PostOutcome, Posting, Pruned, Store, StoreError};
use crate::domain::{Envelope, IdempotencyKey, NewMessage, PostRecord, UserName, content_digest};

/// Everything in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    last_id: u64,
    logs: HashMap<UserName, BTreeMap<u64, Envelope>>,
    cursors: HashMap<UserName, u64>,
    /// Post records by sender and key.
    posts: HashMap<(UserName, IdempotencyKey), PostRecord>,
    /// The same records' keys by message id: oldest first, for pruning.
    posts_by_id: BTreeMap<u64, (UserName, IdempotencyKey)>,
}

impl MemoryState {
    /// Appends `message` under the next id; answers it.
    fn append(&mut self, message: NewMessage, sent_at: SystemTime) -> u64 {
        let NewMessage { from, to, content } = message;
        self.last_id += 1;
        let id = self.last_id;
        let envelope = Envelope {
            id,
            from,
            to: to.clone(),
            content,
            sent_at,
        };
        self.logs.entry(to).or_default().insert(id, envelope);
        id
    }
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // Every update under this lock is a single insert or removal, so a panic elsewhere
        // cannot leave it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn append_all(&self, messages: Vec<NewMessage>, sent_at: SystemTime) -> Appending {
        let mut state = self.lock();
        let first = state.last_id + 1;
        for message in messages {
            state.append(message, sent_at);
        }
        let ids = first..state.last_id + 1;
        std::future::ready(Ok(ids)).boxed()
    }

    fn read_after(
        &self,
        user: &UserName,
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

    fn count_after(&self, user: &UserName, after: u64) -> Result<usize, StoreError> {
        let state = self.lock();
        Ok(state
            .logs
            .get(user)
            .map_or(0, |log| log.range(after + 1..).count()))
    }

    fn cursor(&self, user: &UserName) -> Result<u64, StoreError> {
        Ok(self.lock().cursors.get(user).copied().unwrap_or(0))
    }

    fn advance_cursor(&self, user: &UserName, id: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        let cursor = state.cursors.entry(user.clone()).or_default();
        *cursor = (*cursor).max(id);
        Ok(())
    }

    fn prune(&self, cutoff: SystemTime, max: usize) -> Result<Vec<Pruned>, StoreError> {
        let mut state = self.lock();
        let mut removed = Vec::new();
        state.logs.retain(|user, log| {
            // Ids grow with time: a log's expired messages are a prefix of it.
            while removed.len() < max {
                match log.first_entry() {
                    Some(oldest) if oldest.get().sent_at < cutoff => {
                        removed.push((user.clone(), oldest.remove().id));
                    }
                    _ => break,
                }
            }
            !log.is_empty()
        });
        Ok(removed)
    }

    fn post(&self, message: NewMessage, key: IdempotencyKey, sent_at: SystemTime) -> Posting {
        // Looked up and appended under one lock: concurrent posts of one key append once.
        let mut state = self.lock();
        let pair = (message.from.clone(), key);
        if let Some(record) = state.posts.get(&pair) {
            let recorded = PostOutcome::Recorded(record.clone());
            return std::future::ready(Ok(recorded)).boxed();
        }
        let (to, digest) = (message.to.clone(), content_digest(&message.content));
        let id = state.append(message, sent_at);
        let record = PostRecord {
            id,
            sent_at,
            to,
            digest,
        };
        state.posts.insert(pair.clone(), record);
        state.posts_by_id.insert(id, pair);
        std::future::ready(Ok(PostOutcome::Appended(id))).boxed()
    }

    fn posted(
        &self,
        from: &UserName,
        key: &IdempotencyKey,
    ) -> Result<Option<PostRecord>, StoreError> {
        let pair = (from.clone(), key.clone());
        Ok(self.lock().posts.get(&pair).cloned())
    }

    fn prune_posts(&self, cutoff: SystemTime, max: usize) -> Result<usize, StoreError> {
        let state = &mut *self.lock();
        let mut removed = 0;
        // Ids grow with time: the expired records are the oldest ids.
        while removed < max {
            let Some(oldest) = state.posts_by_id.first_entry() else {
                break;
            };
            let expired = state
                .posts
                .get(oldest.get())
                .is_none_or(|record| record.sent_at < cutoff);
            if !expired {
                break;
            }
            state.posts.remove(&oldest.remove());
            removed += 1;
        }
        Ok(removed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_store_conforms() {
        crate::store::conformance::check(&MemoryStore::default()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_to_the_memory_store_get_distinct_ids() {
        crate::store::conformance::concurrent_appends(std::sync::Arc::new(MemoryStore::default()))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_posts_of_one_key_to_the_memory_store_append_once() {
        crate::store::conformance::concurrent_posts(std::sync::Arc::new(MemoryStore::default()))
            .await;
    }
}
