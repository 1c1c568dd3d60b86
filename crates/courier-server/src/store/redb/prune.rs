//! Removal of expired messages from the redb store, in bounded chunks: each call removes at
//! most `max` messages in one write transaction, so neither its memory nor the writer's wait
//! grows with the backlog.

use std::ops::Bound;
use std::time::SystemTime;

use redb::ReadableTable as _;

use super::{MESSAGES, to_parts};
use crate::domain::UserName;
use crate::store::{Pruned, StoreError};

/// Removes up to `max` messages sent before `cutoff`; answers which.
pub(super) fn prune(
    db: &redb::Database,
    cutoff: SystemTime,
    max: usize,
) -> Result<Vec<Pruned>, StoreError> {
    const WHAT: &str = "prune expired messages";
    let (cutoff_seconds, _) = to_parts(cutoff);
    let write = db.begin_write().map_err(StoreError::to(WHAT))?;
    let mut expired: Vec<Pruned> = Vec::new();
    {
        let mut messages = write.open_table(MESSAGES).map_err(StoreError::to(WHAT))?;
        // Ids grow with time, so each log's expired messages are a prefix of it. The logs are
        // visited in turn, each found by seeking past the one before.
        let mut previous: Option<String> = None;
        while expired.len() < max {
            let next = match &previous {
                None => messages.first(),
                Some(user) => messages
                    .range::<(&str, u64)>((
                        Bound::Excluded((user.as_str(), u64::MAX)),
                        Bound::Unbounded,
                    ))
                    .and_then(|mut after| after.next().transpose()),
            }
            .map_err(StoreError::to(WHAT))?;
            let Some((key, _)) = next else { break };
            let name = key.value().0.to_owned();
            let user = UserName::parse(&name).map_err(StoreError::to("read a recipient's name"))?;
            for entry in messages
                .range((name.as_str(), 0)..=(name.as_str(), u64::MAX))
                .map_err(StoreError::to(WHAT))?
            {
                let (key, value) = entry.map_err(StoreError::to(WHAT))?;
                let (_, _, seconds, _) = value.value();
                if seconds >= cutoff_seconds || expired.len() == max {
                    break;
                }
                expired.push((user.clone(), key.value().1));
            }
            previous = Some(name);
        }
        for (user, id) in &expired {
            messages
                .remove((user.as_str(), *id))
                .map_err(StoreError::to(WHAT))?;
        }
    }
    write.commit().map_err(StoreError::to(WHAT))?;
    Ok(expired)
}
