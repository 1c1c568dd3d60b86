//! The writer thread of the redb store: every write goes through it, in group commits.
//!
//! Posts are appends of one message under an idempotency key: the writer looks the key up in
//! the transaction it is writing (which holds every record inserted before it, committed or
//! earlier in this group) and appends only if it is not there, so the check and the append are
//! one atomic step.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use redb::ReadableTable as _;
use tokio::sync::{mpsc, oneshot};

use super::row::RowWriter;
use super::{
    CURSORS, CursorMoves, LAST_ID, LOG_ROWS, META, POSTS, POSTS_BY_ID, lock, post_record, to_parts,
};
use crate::domain::{IdempotencyKey, NewMessage, PostRecord, UserName, content_digest};
use crate::store::{PostOutcome, StoreError};

/// Work for the writer thread.
pub(super) enum Job {
    /// Append messages (or post one), answer once durable.
    Append(PendingAppend),
    /// Write the cursor moves made so far (not durably by itself).
    Cursors,
    /// Make everything so far durable, then answer.
    Flush(std::sync::mpsc::Sender<Result<(), StoreError>>),
}

/// An append waiting for the writer.
pub(super) struct PendingAppend {
    /// One message for a post.
    pub(super) messages: Vec<NewMessage>,
    pub(super) sent_at: SystemTime,
    pub(super) answer: Answer,
}

/// What kind of append it is, and where its outcome goes.
pub(super) enum Answer {
    /// A plain append: its ids.
    Ids(oneshot::Sender<Result<Range<u64>, StoreError>>),
    /// A post of one message under its sender and this key.
    Post(
        IdempotencyKey,
        oneshot::Sender<Result<PostOutcome, StoreError>>,
    ),
}

impl Answer {
    /// Answers what the transaction did, or its failure; the caller may be gone.
    fn send(self, written: Result<Written, StoreError>) {
        match self {
            Self::Ids(answer) => {
                let _ = answer.send(written.map(|written| match written {
                    Written::Appended(ids) => ids,
                    // Only posts find records.
                    Written::Recorded(_) => 0..0,
                }));
            }
            Self::Post(_, answer) => {
                let _ = answer.send(written.map(|written| match written {
                    Written::Appended(ids) => PostOutcome::Appended(ids.start),
                    Written::Recorded(record) => PostOutcome::Recorded(record),
                }));
            }
        }
    }
}

/// What the transaction did with one append.
enum Written {
    /// Appended under these ids.
    Appended(Range<u64>),
    /// A post whose key was recorded already: nothing appended.
    Recorded(PostRecord),
}

/// Messages one commit takes at most: a bound on a transaction's size and on the wait of the
/// appends queued behind it.
pub(super) const MAX_COMMIT: usize = 4096;

/// The writer thread's side of a [`RedbStore`](super::RedbStore).
pub(super) struct Writer {
    pub(super) db: Arc<redb::Database>,
    pub(super) moved_cursors: Arc<Mutex<CursorMoves>>,
}

/// One group of jobs, written in one transaction.
#[derive(Default)]
struct Group {
    appends: Vec<PendingAppend>,
    messages: usize,
    flushes: Vec<std::sync::mpsc::Sender<Result<(), StoreError>>>,
}

impl Writer {
    /// Serves `queue` until every sender is gone, then makes the last cursor moves durable.
    pub(super) fn run(&self, mut queue: mpsc::Receiver<Job>) {
        while let Some(first) = queue.blocking_recv() {
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
        self.commit(Group::default(), true);
    }

    /// Writes `group` and the cursor moves in one transaction and answers each job.
    fn commit(&self, group: Group, durable: bool) {
        // The moves stay readable (as `writing`) until the transaction holding them commits.
        let cursors = {
            let mut moved = lock(&self.moved_cursors);
            let cursors = std::mem::take(&mut moved.pending);
            moved.writing.clone_from(&cursors);
            cursors
        };
        let written = self.write(&group, &cursors, durable);
        {
            let mut moved = lock(&self.moved_cursors);
            if written.is_err() {
                // The cursor moves are tried again with the next commit.
                for (user, id) in cursors {
                    let cursor = moved.pending.entry(user).or_default();
                    *cursor = (*cursor).max(id);
                }
            }
            // Committed (in the database now) or back in `pending`, in one step for readers.
            moved.writing.clear();
        }
        match written {
            Ok(written) => {
                for (append, written) in group.appends.into_iter().zip(written) {
                    append.answer.send(Ok(written));
                }
                for answer in group.flushes {
                    let _ = answer.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(error = %crate::logging::Chain(&error), "the message store could not commit");
                for append in group.appends {
                    append.answer.send(Err(error.clone()));
                }
                for answer in group.flushes {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }

    /// One transaction: the appends in order, each under the next ids (a post only if its key
    /// is not recorded, and then with its record), and the cursor moves. Messages to the same
    /// recipient share rows across the appends of the group.
    fn write(
        &self,
        group: &Group,
        cursors: &HashMap<UserName, u64>,
        durable: bool,
    ) -> Result<Vec<Written>, StoreError> {
        const WHAT: &str = "commit messages";
        let mut write = self.db.begin_write().map_err(StoreError::to(WHAT))?;
        if !durable {
            // Cursor moves alone wait for the next durable commit: a crash before it repeats
            // deliveries, it never skips one.
            write
                .set_durability(redb::Durability::None)
                .map_err(StoreError::to(WHAT))?;
        }
        let mut assigned = Vec::with_capacity(group.appends.len());
        {
            // The post tables, opened only for a group with posts.
            let has_posts = group
                .appends
                .iter()
                .any(|append| matches!(append.answer, Answer::Post(..)));
            let mut post_tables = if has_posts {
                let posts = write.open_table(POSTS).map_err(StoreError::to(WHAT))?;
                let by_id = write
                    .open_table(POSTS_BY_ID)
                    .map_err(StoreError::to(WHAT))?;
                Some((posts, by_id))
            } else {
                None
            };
            let mut meta = write.open_table(META).map_err(StoreError::to(WHAT))?;
            let mut id = meta
                .get(LAST_ID)
                .map_err(StoreError::to(WHAT))?
                .map_or(0, |id| id.value());
            // Each recipient's messages go into rows of their own, in id order; a recipient
            // whose row is full starts another.
            let mut rows: Vec<(&str, RowWriter)> = Vec::new();
            let mut open_row: HashMap<&str, usize> = HashMap::new();
            // The row of the message before: batches mostly go to one recipient.
            let mut last: Option<(&str, usize)> = None;
            for append in &group.appends {
                let sent_at = to_parts(append.sent_at);
                let post = match (&append.answer, append.messages.as_slice(), &mut post_tables) {
                    (Answer::Post(key, _), [message], Some(tables)) => {
                        Some((message, key.as_str(), tables))
                    }
                    _ => None,
                };
                if let Some((message, key, (posts, _))) = &post {
                    let found = posts
                        .get((message.from.as_str(), *key))
                        .map_err(StoreError::to(WHAT))?
                        .map(|record| post_record(record.value()))
                        .transpose()?;
                    if let Some(record) = found {
                        assigned.push(Written::Recorded(record));
                        continue;
                    }
                }
                let first = id + 1;
                for message in &append.messages {
                    id += 1;
                    let to = message.to.as_str();
                    let slot = match last {
                        Some((last_to, slot)) if last_to == to => Some(slot),
                        _ => open_row.get(to).copied(),
                    };
                    let slot = match slot {
                        Some(slot) if !rows[slot].1.is_full() => slot,
                        _ => {
                            rows.push((to, RowWriter::default()));
                            open_row.insert(to, rows.len() - 1);
                            rows.len() - 1
                        }
                    };
                    last = Some((to, slot));
                    rows[slot]
                        .1
                        .push(id, sent_at, message.from.as_str(), &message.content)
                        .map_err(StoreError::to(WHAT))?;
                }
                if let Some((message, key, (posts, by_id))) = post {
                    let from = message.from.as_str();
                    let digest = content_digest(&message.content);
                    let record = (id, sent_at.0, sent_at.1, message.to.as_str(), &digest[..]);
                    posts
                        .insert((from, key), record)
                        .map_err(StoreError::to(WHAT))?;
                    by_id
                        .insert(id, (from, key))
                        .map_err(StoreError::to(WHAT))?;
                }
                assigned.push(Written::Appended(first..id + 1));
            }
            let mut table = write.open_table(LOG_ROWS).map_err(StoreError::to(WHAT))?;
            let mut encoded = Vec::new();
            for (to, row) in &rows {
                row.encode(&mut encoded);
                table
                    .insert((*to, row.last_id()), encoded.as_slice())
                    .map_err(StoreError::to(WHAT))?;
            }
            meta.insert(LAST_ID, id).map_err(StoreError::to(WHAT))?;
            let mut stored = write.open_table(CURSORS).map_err(StoreError::to(WHAT))?;
            for (user, id) in cursors {
                let current = stored
                    .get(user.as_str())
                    .map_err(StoreError::to(WHAT))?
                    .map_or(0, |id| id.value());
                if *id > current {
                    stored
                        .insert(user.as_str(), *id)
                        .map_err(StoreError::to(WHAT))?;
                }
            }
        }
        write.commit().map_err(StoreError::to(WHAT))?;
        Ok(assigned)
    }
}
