//! Brings a database written by the earlier layout, one B-tree row per message, to the current
//! one at open.
//!
//! The earlier layout kept messages in the table `messages`, (recipient, id) → (from, content,
//! sent_at seconds, nanos); its `cursors` and `meta` (`last_id`) tables are the current ones,
//! untouched. Migration moves the messages into `log_rows` in chunks of at most [`CHUNK`]
//! messages, each chunk one transaction that writes the rows *and* removes the messages it
//! moved, and deletes `messages` with the last chunk. So a migration cut short (a crash, a
//! failed disk) leaves a database that holds every message exactly once, in one table or the
//! other, and the next open carries on where it stopped. The store serves nothing before the
//! migration is complete.

use redb::{
    ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition,
    TableHandle as _,
};

use super::row::RowWriter;
use super::{LOG_ROWS, StoreError};

/// The earlier layout's messages: (recipient, id) → (from, content, sent_at seconds, nanos).
const OLD_MESSAGES: TableDefinition<(&str, u64), (&str, &str, u64, u32)> =
    TableDefinition::new("messages");

/// Messages moved per transaction: bounds a migration step's memory and write size.
pub(super) const CHUNK: usize = 65_536;

/// What one step moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Step {
    messages: usize,
    rows: usize,
    /// The old table is gone: the migration is complete.
    done: bool,
}

/// Migrates `db` if it holds the earlier layout, `chunk` messages per transaction, and logs
/// what was moved; does nothing to a database in the current layout.
pub(super) fn migrate(db: &redb::Database, chunk: usize) -> Result<(), StoreError> {
    const WHAT: &str = "migrate the message store";
    {
        let read = db.begin_read().map_err(StoreError::to(WHAT))?;
        let old = match read.open_table(OLD_MESSAGES) {
            Ok(old) => old,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(error) => return Err(StoreError::failed(WHAT, error)),
        };
        let waiting = old.len().map_err(StoreError::to(WHAT))?;
        tracing::info!(
            messages = waiting,
            "migrating the message store from one row per message to rows per recipient and \
             commit, {chunk} messages per transaction; an interrupted migration carries on at \
             the next start"
        );
    }
    let (mut messages, mut rows, mut transactions) = (0, 0, 0);
    while let Some(step) = migrate_chunk(db, chunk)? {
        messages += step.messages;
        rows += step.rows;
        transactions += 1;
        if step.done {
            tracing::info!(
                messages,
                rows,
                transactions,
                "migrated the message store from one row per message (table `messages`) to rows \
                 per recipient and commit (table `log_rows`); delivery cursors and the last id \
                 were kept as they were"
            );
            break;
        }
    }
    Ok(())
}

/// Moves up to `chunk` messages (at least one) of the old table, in one transaction, deleting
/// the table once it is empty. `None` when there is no old table.
fn migrate_chunk(db: &redb::Database, chunk: usize) -> Result<Option<Step>, StoreError> {
    const WHAT: &str = "migrate the message store";
    let chunk = chunk.max(1);
    let write = db.begin_write().map_err(StoreError::to(WHAT))?;
    let has_old = write
        .list_tables()
        .map_err(StoreError::to(WHAT))?
        .any(|table| table.name() == OLD_MESSAGES.name());
    if !has_old {
        return Ok(None);
    }
    let mut step = Step::default();
    {
        let mut old = write
            .open_table(OLD_MESSAGES)
            .map_err(StoreError::to(WHAT))?;
        // In key order: each recipient's messages in id order, recipient after recipient.
        let mut rows: Vec<(String, RowWriter)> = Vec::new();
        for entry in old.iter().map_err(StoreError::to(WHAT))?.take(chunk) {
            let (key, value) = entry.map_err(StoreError::to(WHAT))?;
            let (to, id) = key.value();
            let (from, content, seconds, nanos) = value.value();
            let same_row = matches!(rows.last(), Some((name, row)) if name == to && !row.is_full());
            if !same_row {
                rows.push((to.to_owned(), RowWriter::default()));
            }
            if let Some((_, row)) = rows.last_mut() {
                row.push(id, (seconds, nanos), from, content)
                    .map_err(StoreError::to(WHAT))?;
            }
            step.messages += 1;
        }
        let mut new = write.open_table(LOG_ROWS).map_err(StoreError::to(WHAT))?;
        let mut encoded = Vec::new();
        for (to, row) in &rows {
            row.encode(&mut encoded);
            new.insert((to.as_str(), row.last_id()), encoded.as_slice())
                .map_err(StoreError::to(WHAT))?;
        }
        step.rows = rows.len();
        // The messages moved are the table's first ones, up to the last row's last message.
        if let Some((to, row)) = rows.last() {
            old.retain_in(..=(to.as_str(), row.last_id()), |_, _| false)
                .map_err(StoreError::to(WHAT))?;
        }
        step.done = old.is_empty().map_err(StoreError::to(WHAT))?;
    }
    if step.done {
        write
            .delete_table(OLD_MESSAGES)
            .map_err(StoreError::to(WHAT))?;
    }
    write.commit().map_err(StoreError::to(WHAT))?;
    Ok(Some(step))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::domain::{Envelope, UserName};
    use crate::store::{RedbStore, Store};

    /// The earlier layout's cursors and counters, as it defined them.
    const OLD_CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
    const OLD_META: TableDefinition<&str, u64> = TableDefinition::new("meta");

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    /// Old-layout contents: many messages for mike (several rows' worth), a few for others,
    /// with gaps in the ids (pruned or sent to others) and varied times.
    fn old_messages() -> Vec<Envelope> {
        let mut messages = Vec::new();
        let mut id = 10;
        for n in 0..2_500u64 {
            id += 1 + n % 3;
            let (to, from) = match n % 10 {
                0 => ("nina", "jack"),
                1 => ("jack", "mike"),
                _ => ("mike", if n % 4 == 0 { "amy" } else { "jack" }),
            };
            messages.push(Envelope {
                id,
                from: user(from),
                to: user(to),
                content: format!("message {n} ✓"),
                sent_at: UNIX_EPOCH + Duration::new(1_700_000_000 + n / 7, (n * 1_000_003) as u32),
            });
        }
        messages
    }

    const OLD_LAST_ID: u64 = 9_000;

    fn old_cursors() -> [(&'static str, u64); 3] {
        [("mike", 1_234), ("jack", 77), ("zoe", 5)]
    }

    /// Writes an old-layout database into `dir`, with redb directly, as the earlier version did.
    fn write_old_database(dir: &Path, messages: &[Envelope]) {
        let db = redb::Database::create(dir.join("courier.redb")).unwrap();
        let write = db.begin_write().unwrap();
        {
            let mut table = write.open_table(OLD_MESSAGES).unwrap();
            for message in messages {
                let since = message.sent_at.duration_since(UNIX_EPOCH).unwrap();
                table
                    .insert(
                        (message.to.as_str(), message.id),
                        (
                            message.from.as_str(),
                            message.content.as_str(),
                            since.as_secs(),
                            since.subsec_nanos(),
                        ),
                    )
                    .unwrap();
            }
            let mut cursors = write.open_table(OLD_CURSORS).unwrap();
            for (name, id) in old_cursors() {
                cursors.insert(name, id).unwrap();
            }
            let mut meta = write.open_table(OLD_META).unwrap();
            meta.insert("last_id", OLD_LAST_ID).unwrap();
        }
        write.commit().unwrap();
    }

    fn table_names(dir: &Path) -> Vec<String> {
        let db = redb::Database::open(dir.join("courier.redb")).unwrap();
        let read = db.begin_read().unwrap();
        read.list_tables()
            .unwrap()
            .map(|table| table.name().to_owned())
            .collect()
    }

    /// Every old message, cursor and the last id, as the store answers them.
    async fn assert_everything_kept(store: &RedbStore, messages: &[Envelope]) {
        for name in ["mike", "jack", "nina"] {
            let expected: Vec<Envelope> = messages
                .iter()
                .filter(|message| message.to.as_str() == name)
                .cloned()
                .collect();
            let name = user(name);
            assert_eq!(store.read_after(&name, 0, usize::MAX).unwrap(), expected);
            assert_eq!(store.count_after(&name, 0).unwrap(), expected.len());
            let middle = &expected[expected.len() / 2];
            assert_eq!(
                store.read_after(&name, middle.id - 1, 3).unwrap(),
                expected[expected.len() / 2..][..3]
            );
            assert_eq!(
                store.count_after(&name, middle.id).unwrap(),
                expected.len() - expected.len() / 2 - 1
            );
        }
        for (name, id) in old_cursors() {
            assert_eq!(store.cursor(&user(name)).unwrap(), id);
        }
        let next = store
            .append_all(
                vec![crate::store::conformance::message("jack", "mike", "new")],
                SystemTime::now(),
            )
            .await
            .unwrap();
        assert_eq!(next, OLD_LAST_ID + 1..OLD_LAST_ID + 2, "ids carry on");
    }

    #[tokio::test]
    async fn an_old_database_opens_with_every_message_cursor_and_the_last_id() {
        let dir = tempfile::tempdir().unwrap();
        let messages = old_messages();
        write_old_database(dir.path(), &messages);
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert_everything_kept(&store, &messages).await;
        }
        let tables = table_names(dir.path());
        assert!(!tables.contains(&"messages".to_owned()), "{tables:?}");
        // Opening again migrates nothing and loses nothing.
        let store = RedbStore::open(dir.path()).unwrap();
        let mike = store.read_after(&user("mike"), 0, usize::MAX).unwrap();
        assert_eq!(mike.last().unwrap().content, "new");
        assert_eq!(
            mike.len(),
            messages.iter().filter(|m| m.to.as_str() == "mike").count() + 1
        );
    }

    #[tokio::test]
    async fn a_migration_cut_short_carries_on_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let messages = old_messages();
        write_old_database(dir.path(), &messages);
        {
            let db = redb::Database::create(dir.path().join("courier.redb")).unwrap();
            // Two steps, the second ending inside mike's log; then the "crash".
            for _ in 0..2 {
                let step = migrate_chunk(&db, 700).unwrap().unwrap();
                assert_eq!(step.messages, 700);
                assert!(!step.done);
            }
            let read = db.begin_read().unwrap();
            let left = read.open_table(OLD_MESSAGES).unwrap().len().unwrap();
            assert_eq!(
                left as usize,
                messages.len() - 1_400,
                "moved ones are removed"
            );
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_everything_kept(&store, &messages).await;
    }

    #[test]
    fn small_chunks_move_everything() {
        let dir = tempfile::tempdir().unwrap();
        let messages = old_messages();
        write_old_database(dir.path(), &messages);
        let db = redb::Database::create(dir.path().join("courier.redb")).unwrap();
        let mut steps = Vec::new();
        while let Some(step) = migrate_chunk(&db, 333).unwrap() {
            steps.push(step);
        }
        assert_eq!(
            steps.iter().map(|step| step.messages).sum::<usize>(),
            messages.len()
        );
        assert!(steps.last().unwrap().done);
        assert!(steps.iter().rev().skip(1).all(|step| !step.done));
        assert_eq!(migrate_chunk(&db, 333).unwrap(), None, "nothing left to do");
    }
}
