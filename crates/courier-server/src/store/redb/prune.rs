//! Removal of expired messages and post records from the redb store, in bounded chunks: each
//! call removes at most `max` messages (or records) in one write transaction, so neither its
//! memory nor the writer's wait grows with the backlog.
//!
//! Ids grow with time, so each log's expired messages are a prefix of it: whole rows, then
//! perhaps the start of one more. A row whose messages all expired is removed; a row that keeps
//! some (still current, or beyond the chunk's `max`) is rewritten without the others, under the
//! same key (its last id). So a chunk counts messages, exactly as the [`Store`] contract says.
//!
//! [`Store`]: crate::store::Store

use std::ops::Bound;
use std::time::SystemTime;

use redb::ReadableTable as _;

use super::row::Row;
use super::{LOG_ROWS, POSTS, POSTS_BY_ID, to_parts};
use crate::domain::UserName;
use crate::store::{Pruned, StoreError};

/// What becomes of a row keyed (recipient, last id).
struct Change {
    user: UserName,
    last_id: u64,
    /// The row's remaining messages, encoded; `None` removes the row.
    kept: Option<Vec<u8>>,
}

/// Removes up to `max` messages sent before `cutoff`; answers which.
pub(super) fn prune(
    db: &redb::Database,
    cutoff: SystemTime,
    max: usize,
) -> Result<Vec<Pruned>, StoreError> {
    const WHAT: &str = "prune expired messages";
    let cutoff = to_parts(cutoff);
    let write = db.begin_write().map_err(StoreError::to(WHAT))?;
    let mut expired: Vec<Pruned> = Vec::new();
    {
        let mut rows = write.open_table(LOG_ROWS).map_err(StoreError::to(WHAT))?;
        let mut changes = Vec::new();
        // The logs are visited in turn, each found by seeking past the one before.
        let mut previous: Option<UserName> = None;
        while expired.len() < max {
            let next = match &previous {
                None => rows.first(),
                Some(user) => rows
                    .range::<(&str, u64)>((
                        Bound::Excluded((user.as_str(), u64::MAX)),
                        Bound::Unbounded,
                    ))
                    .and_then(|mut after| after.next().transpose()),
            }
            .map_err(StoreError::to(WHAT))?;
            let Some((key, _)) = next else { break };
            let user = UserName::parse(key.value().0)
                .map_err(StoreError::to("read a recipient's name"))?;
            for entry in rows
                .range((user.as_str(), 0)..=(user.as_str(), u64::MAX))
                .map_err(StoreError::to(WHAT))?
            {
                let (key, value) = entry.map_err(StoreError::to(WHAT))?;
                let row = Row::parse(value.value()).map_err(StoreError::to(WHAT))?;
                let removed = row.sent_before(cutoff).min(max - expired.len());
                expired.extend((0..removed).map(|i| (user.clone(), row.id(i))));
                let last_id = key.value().1;
                if removed == row.len() {
                    changes.push(Change {
                        user: user.clone(),
                        last_id,
                        kept: None,
                    });
                    continue;
                }
                if removed > 0 {
                    let kept = row.without_first(removed).map_err(StoreError::to(WHAT))?;
                    changes.push(Change {
                        user: user.clone(),
                        last_id,
                        kept: Some(kept),
                    });
                }
                // A message stays: the log's expired prefix ends here, or the chunk is full.
                break;
            }
            previous = Some(user);
        }
        for Change {
            user,
            last_id,
            kept,
        } in &changes
        {
            let key = (user.as_str(), *last_id);
            match kept {
                None => rows.remove(key).map(drop),
                Some(kept) => rows.insert(key, kept.as_slice()).map(drop),
            }
            .map_err(StoreError::to(WHAT))?;
        }
    }
    write.commit().map_err(StoreError::to(WHAT))?;
    Ok(expired)
}

/// Removes up to `max` post records whose message was sent before `cutoff`, oldest id first
/// (ids grow with time); answers how many. A chunk that finds nothing to remove writes nothing.
pub(super) fn prune_posts(
    db: &redb::Database,
    cutoff: SystemTime,
    max: usize,
) -> Result<usize, StoreError> {
    const WHAT: &str = "prune expired post records";
    let cutoff = to_parts(cutoff);
    let write = db.begin_write().map_err(StoreError::to(WHAT))?;
    let mut expired: Vec<(u64, String, String)> = Vec::new();
    {
        let mut posts = write.open_table(POSTS).map_err(StoreError::to(WHAT))?;
        let mut by_id = write
            .open_table(POSTS_BY_ID)
            .map_err(StoreError::to(WHAT))?;
        for entry in by_id.iter().map_err(StoreError::to(WHAT))?.take(max) {
            let (id, pair) = entry.map_err(StoreError::to(WHAT))?;
            let (from, key) = pair.value();
            let sent_at = posts
                .get((from, key))
                .map_err(StoreError::to(WHAT))?
                .map(|record| {
                    let (_, seconds, nanos, _, _) = record.value();
                    (seconds, nanos)
                });
            // An index entry without its record has nothing to keep.
            if sent_at.is_some_and(|sent_at| sent_at >= cutoff) {
                break;
            }
            expired.push((id.value(), from.to_owned(), key.to_owned()));
        }
        for (id, from, key) in &expired {
            by_id.remove(*id).map_err(StoreError::to(WHAT))?;
            posts
                .remove((from.as_str(), key.as_str()))
                .map_err(StoreError::to(WHAT))?;
        }
    }
    if expired.is_empty() {
        write.abort().map_err(StoreError::to(WHAT))?;
    } else {
        write.commit().map_err(StoreError::to(WHAT))?;
    }
    Ok(expired.len())
}
