//! Reads of the redb store, each in its own read transaction on the caller's thread: readers
//! never wait for the writer.

use super::{CURSORS, MESSAGES, from_parts};
use crate::domain::{Envelope, UserName};
use crate::store::StoreError;
use redb::ReadableDatabase as _;

/// Up to `limit` messages of `user`'s log after `after`, in id order.
pub(super) fn read_after(
    db: &redb::Database,
    user: &UserName,
    after: u64,
    limit: usize,
) -> Result<Vec<Envelope>, StoreError> {
    const WHAT: &str = "read messages";
    let read = db.begin_read().map_err(StoreError::to(WHAT))?;
    let messages = read.open_table(MESSAGES).map_err(StoreError::to(WHAT))?;
    let mut found = Vec::new();
    for entry in messages
        .range((user.as_str(), after + 1)..=(user.as_str(), u64::MAX))
        .map_err(StoreError::to(WHAT))?
        .take(limit)
    {
        let (key, value) = entry.map_err(StoreError::to(WHAT))?;
        let (_, id) = key.value();
        let (from, content, seconds, nanos) = value.value();
        found.push(Envelope {
            id,
            // Only names that followed the rule were ever written.
            from: UserName::parse(from).map_err(StoreError::to("read a sender's name"))?,
            to: user.clone(),
            content: content.to_owned(),
            sent_at: from_parts(seconds, nanos),
        });
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
    let messages = read.open_table(MESSAGES).map_err(StoreError::to(WHAT))?;
    let range = messages
        .range((user.as_str(), after + 1)..=(user.as_str(), u64::MAX))
        .map_err(StoreError::to(WHAT))?;
    Ok(range.count())
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
