//! Reads of the redb store, each in its own read transaction on the caller's thread: readers
//! never wait for the writer.
//!
//! A log's messages after some id are in the rows keyed from (user, id + 1) on (rows are keyed
//! by their last id): the first of them may begin with older messages, which are skipped.

use redb::ReadableDatabase as _;

use super::row::Row;
use super::{CURSORS, LOG_ROWS, POSTS, from_parts, post_record};
use crate::domain::{Envelope, IdempotencyKey, PostRecord, UserName};
use crate::store::StoreError;

/// The rows of `user`'s log holding ids above `after`, in order.
fn rows_after(
    rows: &redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>,
    user: &UserName,
    after: u64,
) -> Result<redb::Range<'static, (&'static str, u64), &'static [u8]>, redb::StorageError> {
    rows.range((user.as_str(), after.saturating_add(1))..=(user.as_str(), u64::MAX))
}

/// Up to `limit` messages of `user`'s log after `after`, in id order.
pub(super) fn read_after(
    db: &redb::Database,
    user: &UserName,
    after: u64,
    limit: usize,
) -> Result<Vec<Envelope>, StoreError> {
    const WHAT: &str = "read messages";
    let read = db.begin_read().map_err(StoreError::to(WHAT))?;
    let rows = read.open_table(LOG_ROWS).map_err(StoreError::to(WHAT))?;
    let mut found = Vec::new();
    // Messages of a row often share their sender: its name is checked once.
    let mut last_from: Option<UserName> = None;
    for entry in rows_after(&rows, user, after).map_err(StoreError::to(WHAT))? {
        if found.len() >= limit {
            break;
        }
        let (_, value) = entry.map_err(StoreError::to(WHAT))?;
        let row = Row::parse(value.value()).map_err(StoreError::to(WHAT))?;
        let start = row.first_after(after);
        let end = row.len().min(start.saturating_add(limit - found.len()));
        for i in start..end {
            let message = row.message(i).map_err(StoreError::to(WHAT))?;
            let from = match &last_from {
                Some(name) if name.as_str() == message.from => name.clone(),
                // Only names that followed the rule were ever written.
                _ => {
                    UserName::parse(message.from).map_err(StoreError::to("read a sender's name"))?
                }
            };
            last_from = Some(from.clone());
            found.push(Envelope {
                id: message.id,
                from,
                to: user.clone(),
                content: message.content.to_owned(),
                sent_at: from_parts(message.sent_at.0, message.sent_at.1),
            });
        }
    }
    Ok(found)
}

/// How many messages of `user`'s log lie after `after`.
pub(super) fn count_after(
    db: &redb::Database,
    user: &UserName,
    after: u64,
) -> Result<usize, StoreError> {
    const WHAT: &str = "count messages";
    let read = db.begin_read().map_err(StoreError::to(WHAT))?;
    let rows = read.open_table(LOG_ROWS).map_err(StoreError::to(WHAT))?;
    let mut count = 0;
    for entry in rows_after(&rows, user, after).map_err(StoreError::to(WHAT))? {
        let (_, value) = entry.map_err(StoreError::to(WHAT))?;
        let row = Row::parse(value.value()).map_err(StoreError::to(WHAT))?;
        count += row.len() - row.first_after(after);
    }
    Ok(count)
}

/// `user`'s delivery cursor as last written.
pub(super) fn cursor(db: &redb::Database, user: &UserName) -> Result<u64, StoreError> {
    const WHAT: &str = "read a delivery cursor";
    let read = db.begin_read().map_err(StoreError::to(WHAT))?;
    let cursors = read.open_table(CURSORS).map_err(StoreError::to(WHAT))?;
    Ok(cursors
        .get(user.as_str())
        .map_err(StoreError::to(WHAT))?
        .map_or(0, |id| id.value()))
}

/// The record of what `from` posted under `key`, if kept.
pub(super) fn posted(
    db: &redb::Database,
    from: &UserName,
    key: &IdempotencyKey,
) -> Result<Option<PostRecord>, StoreError> {
    const WHAT: &str = "read a post record";
    let read = db.begin_read().map_err(StoreError::to(WHAT))?;
    let posts = read.open_table(POSTS).map_err(StoreError::to(WHAT))?;
    let found = posts
        .get((from.as_str(), key.as_str()))
        .map_err(StoreError::to(WHAT))?;
    found.map(|value| post_record(value.value())).transpose()
}
