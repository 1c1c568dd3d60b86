//! The encoding of one row of the `log_rows` table: messages of one recipient, written by one
//! commit, in id order.
//!
//! Written by hand rather than with a serialization crate: the layout is a handful of
//! fixed-width little-endian fields and it is what makes rows cheap to use. A fixed-width index
//! lets a reader find the first message after an id by binary search, count messages without
//! touching their text, and slice out one message's text without decoding the others; pruning
//! drops a prefix by copying the rest. Decoding checks every length and offset against the
//! bytes it has and every text for UTF-8, so a damaged row is an error, never a panic.
//!
//! ```text
//! version  u8 = 1
//! count    u32                   messages in the row, at least one
//! index    count × 24 bytes      per message, in increasing id order:
//!            id        u64
//!            seconds   u64       sent_at since the Unix epoch
//!            nanos     u32
//!            end       u32       where the message's entry ends in `body`
//! body     count entries, back to back, each:
//!            from_len  u8
//!            from      from_len bytes of UTF-8
//!            content   UTF-8, up to `end`
//! ```

/// The layout's version, the row's first byte.
const VERSION: u8 = 1;
/// Version and count.
const HEADER: usize = 1 + 4;
/// One message's index entry: id, seconds, nanos, end.
const ENTRY: usize = 8 + 8 + 4 + 4;

/// A row takes at most this many messages; a commit with more for one recipient writes several
/// rows. It bounds what a read of one message fetches and what pruning rewrites.
pub(super) const MAX_MESSAGES: usize = 1024;
/// A row takes no more messages once its body has this many bytes (a single message may
/// exceed it: a row always takes at least one).
pub(super) const MAX_BODY: usize = 64 * 1024;

/// A row that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub(super) enum RowError {
    /// Stored bytes that do not follow the layout.
    #[error("a stored row of messages is malformed: {0}")]
    Malformed(&'static str),
    /// A message too large for the layout's fields.
    #[error("a message does not fit a row: {0}")]
    TooLarge(&'static str),
}

/// A message as found in a row, borrowing its text from the row.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stored<'a> {
    pub(super) id: u64,
    /// Seconds and nanoseconds since the Unix epoch.
    pub(super) sent_at: (u64, u32),
    pub(super) from: &'a str,
    pub(super) content: &'a str,
}

/// Builds one row, message by message.
#[derive(Default)]
pub(super) struct RowWriter {
    index: Vec<u8>,
    body: Vec<u8>,
    count: usize,
    last_id: u64,
}

impl RowWriter {
    /// Adds a message; its id must be above those added before.
    pub(super) fn push(
        &mut self,
        id: u64,
        (seconds, nanos): (u64, u32),
        from: &str,
        content: &str,
    ) -> Result<(), RowError> {
        debug_assert!(
            self.count == 0 || id > self.last_id,
            "ids increase in a row"
        );
        let from_len = u8::try_from(from.len()).map_err(|_| RowError::TooLarge("sender name"))?;
        let end = u32::try_from(self.body.len() + 1 + from.len() + content.len())
            .map_err(|_| RowError::TooLarge("content"))?;
        self.body.push(from_len);
        self.body.extend_from_slice(from.as_bytes());
        self.body.extend_from_slice(content.as_bytes());
        self.index.extend_from_slice(&id.to_le_bytes());
        self.index.extend_from_slice(&seconds.to_le_bytes());
        self.index.extend_from_slice(&nanos.to_le_bytes());
        self.index.extend_from_slice(&end.to_le_bytes());
        self.count += 1;
        self.last_id = id;
        Ok(())
    }

    /// Whether the row should take no more messages.
    pub(super) fn is_full(&self) -> bool {
        self.count >= MAX_MESSAGES || self.body.len() >= MAX_BODY
    }

    /// The id of the last message added: the row's key.
    pub(super) fn last_id(&self) -> u64 {
        self.last_id
    }

    /// The row's bytes, in `out` (cleared first).
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(HEADER + self.index.len() + self.body.len());
        out.push(VERSION);
        // At most MAX_MESSAGES messages: the count fits.
        out.extend_from_slice(&(self.count as u32).to_le_bytes());
        out.extend_from_slice(&self.index);
        out.extend_from_slice(&self.body);
    }
}

/// A stored row, read in place.
#[derive(Clone, Copy)]
pub(super) struct Row<'a> {
    count: usize,
    index: &'a [u8],
    body: &'a [u8],
}

impl<'a> Row<'a> {
    /// Reads the row's header and index; messages are checked as they are read.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, RowError> {
        let (&version, rest) = bytes.split_first().ok_or(RowError::Malformed("empty"))?;
        if version != VERSION {
            return Err(RowError::Malformed("unknown version"));
        }
        let (count, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(RowError::Malformed("no count"))?;
        let count = u32::from_le_bytes(*count) as usize;
        if count == 0 {
            return Err(RowError::Malformed("no messages"));
        }
        let index_len = count
            .checked_mul(ENTRY)
            .filter(|&len| len <= rest.len())
            .ok_or(RowError::Malformed("index cut short"))?;
        let (index, body) = rest.split_at(index_len);
        Ok(Self { count, index, body })
    }

    /// Messages in the row (at least one).
    pub(super) fn len(&self) -> usize {
        self.count
    }

    fn field<const N: usize>(&self, message: usize, offset: usize) -> [u8; N] {
        let at = message * ENTRY + offset;
        let mut field = [0; N];
        // `parse` checked that the index holds `count` entries.
        field.copy_from_slice(&self.index[at..at + N]);
        field
    }

    /// The id of message `i`.
    pub(super) fn id(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.field(i, 0))
    }

    /// When message `i` was sent: seconds and nanoseconds since the Unix epoch.
    pub(super) fn sent_at(&self, i: usize) -> (u64, u32) {
        (
            u64::from_le_bytes(self.field(i, 8)),
            u32::from_le_bytes(self.field(i, 16)),
        )
    }

    fn end(&self, i: usize) -> usize {
        u32::from_le_bytes(self.field(i, 20)) as usize
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.end(i - 1) }
    }

    /// The position of the first message with an id above `after` (`len()` if none).
    pub(super) fn first_after(&self, after: u64) -> usize {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.id(middle) <= after {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// How many messages from the start were sent before `cutoff` (seconds, nanoseconds),
    /// stopping at the first that was not.
    pub(super) fn sent_before(&self, cutoff: (u64, u32)) -> usize {
        (0..self.count)
            .take_while(|&i| self.sent_at(i) < cutoff)
            .count()
    }

    /// Message `i`, its text checked.
    pub(super) fn message(&self, i: usize) -> Result<Stored<'a>, RowError> {
        let (start, end) = (self.start(i), self.end(i));
        let entry = self
            .body
            .get(start..end)
            .ok_or(RowError::Malformed("entry out of bounds"))?;
        let (&from_len, entry) = entry
            .split_first()
            .ok_or(RowError::Malformed("empty entry"))?;
        let (from, content) = entry
            .split_at_checked(from_len.into())
            .ok_or(RowError::Malformed("sender name cut short"))?;
        let text = |bytes| std::str::from_utf8(bytes).map_err(|_| RowError::Malformed("not UTF-8"));
        Ok(Stored {
            id: self.id(i),
            sent_at: self.sent_at(i),
            from: text(from)?,
            content: text(content)?,
        })
    }

    /// The row without its first `skip` messages (fewer than `len()`), encoded.
    pub(super) fn without_first(&self, skip: usize) -> Result<Vec<u8>, RowError> {
        debug_assert!(skip < self.count, "a row keeps at least one message");
        let base = self.start(skip);
        let body = self
            .body
            .get(base..self.end(self.count - 1))
            .ok_or(RowError::Malformed("entry out of bounds"))?;
        let kept = self.count - skip;
        let mut out = Vec::with_capacity(HEADER + kept * ENTRY + body.len());
        out.push(VERSION);
        out.extend_from_slice(&(kept as u32).to_le_bytes());
        for i in skip..self.count {
            let entry = &self.index[i * ENTRY..(i + 1) * ENTRY];
            out.extend_from_slice(&entry[..20]);
            let end = self
                .end(i)
                .checked_sub(base)
                .ok_or(RowError::Malformed("entries out of order"))?;
            // Below the old end, which fitted.
            out.extend_from_slice(&(end as u32).to_le_bytes());
        }
        out.extend_from_slice(body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(messages: &[(u64, &str, &str)]) -> Vec<u8> {
        let mut writer = RowWriter::default();
        for &(id, from, content) in messages {
            writer
                .push(id, (id * 10, id as u32), from, content)
                .unwrap();
        }
        let mut out = Vec::new();
        writer.encode(&mut out);
        out
    }

    fn all(bytes: &[u8]) -> Vec<(u64, String, String)> {
        let row = Row::parse(bytes).unwrap();
        (0..row.len())
            .map(|i| {
                let m = row.message(i).unwrap();
                assert_eq!(m.sent_at, (m.id * 10, m.id as u32));
                (m.id, m.from.to_owned(), m.content.to_owned())
            })
            .collect()
    }

    #[test]
    fn a_row_reads_back_what_was_written() {
        let bytes = row(&[(3, "jack", "hi"), (5, "amy", ""), (9, "jack", "é ü")]);
        assert_eq!(
            all(&bytes),
            [
                (3, "jack".into(), "hi".into()),
                (5, "amy".into(), String::new()),
                (9, "jack".into(), "é ü".into())
            ]
        );
        let parsed = Row::parse(&bytes).unwrap();
        assert_eq!(
            [0, 3, 4, 5, 8, 9].map(|after| parsed.first_after(after)),
            [0, 1, 1, 2, 2, 3]
        );
        assert_eq!(parsed.sent_before((50, 0)), 1);
        assert_eq!(parsed.sent_before((50, 6)), 2);
        assert_eq!(parsed.sent_before((1000, 0)), 3);
    }

    #[test]
    fn dropping_a_prefix_keeps_the_rest() {
        let bytes = row(&[(1, "a", "one"), (2, "bb", "two"), (4, "c", "four")]);
        let parsed = Row::parse(&bytes).unwrap();
        assert_eq!(
            all(&parsed.without_first(1).unwrap()),
            [
                (2, "bb".into(), "two".into()),
                (4, "c".into(), "four".into())
            ]
        );
        assert_eq!(
            all(&parsed.without_first(2).unwrap()),
            [(4, "c".into(), "four".into())]
        );
    }

    #[test]
    fn damaged_rows_are_errors_not_panics() {
        let bytes = row(&[(1, "jack", "hello"), (2, "jack", "world")]);
        for cut in 0..bytes.len() {
            if let Ok(parsed) = Row::parse(&bytes[..cut]) {
                for i in 0..parsed.len() {
                    let _ = parsed.message(i);
                    if i > 0 {
                        let _ = parsed.without_first(i);
                    }
                }
            }
        }
        let mut bad = bytes.clone();
        bad[0] = 7;
        assert!(Row::parse(&bad).is_err(), "unknown version");
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 0xff;
        assert!(Row::parse(&bad).unwrap().message(1).is_err(), "not UTF-8");
        let mut bad = bytes;
        // The first message's end past the body.
        bad[HEADER + 20..HEADER + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Row::parse(&bad).unwrap().message(0).is_err());
        assert!(Row::parse(&bad).unwrap().message(1).is_err());
    }

    #[test]
    fn a_row_fills_up() {
        let mut writer = RowWriter::default();
        for id in 1..=MAX_MESSAGES as u64 {
            assert!(!writer.is_full());
            writer.push(id, (0, 0), "a", "b").unwrap();
        }
        assert!(writer.is_full());
        let mut big = RowWriter::default();
        big.push(1, (0, 0), "a", &"x".repeat(MAX_BODY)).unwrap();
        assert!(big.is_full());
        assert!(
            RowWriter::default()
                .push(1, (0, 0), &"n".repeat(256), "")
                .is_err()
        );
    }
}
