//! The domain: users, messages and their mailboxes. It knows nothing of gRPC or of how messages
//! are stored; the gRPC edge ([`crate::grpc`]) hands it validated values, and the storage
//! ([`crate::store`]) implements the [`Store`](crate::store::Store) trait it works over.
//!
//! - [`UserName`], a name that follows the user-name rule (`courier_common::user_name`).
//! - [`NewMessage`] and [`Envelope`]: a message before and after the server queued it.
//! - [`IdempotencyKey`] and [`PostRecord`]: what makes a PostMessage safe to retry.
//! - [`mailbox`], per-user queues with competing consumers and delivery cursors.

pub mod mailbox;

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

pub use courier_common::user_name::UserNameError;
pub use mailbox::{Enqueued, Mailbox, MailboxError, Mailboxes, Posted, Receipt, Taken};

/// A user name that follows the rule of `courier_common::user_name`: 1 to 64 bytes of ASCII
/// letters, digits, `.`, `_` and `-`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(Arc<str>);

impl UserName {
    /// Checks `name` against the rule.
    pub fn parse(name: &str) -> Result<Self, UserNameError> {
        courier_common::user_name::check(name)?;
        Ok(Self(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for UserName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for UserName {
    type Error = UserNameError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::parse(name)
    }
}

/// A message to queue: sender, recipient, text. Built by the edge after validation; it moves
/// into the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// Sender.
    pub from: UserName,
    /// Recipient: the log it goes to.
    pub to: UserName,
    /// The text.
    pub content: String,
}

/// A queued message with the fields the server assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Server-assigned, unique and increasing across the server's lifetime.
    pub id: u64,
    /// Sender.
    pub from: UserName,
    /// Recipient; the log the envelope is in.
    pub to: UserName,
    /// The text.
    pub content: String,
    /// When the server queued it.
    pub sent_at: SystemTime,
}

/// Longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Why a text is not an [`IdempotencyKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    /// Nothing was given.
    #[error("is required (a new one, such as a UUID, for each new message)")]
    Empty,
    /// More than [`MAX_IDEMPOTENCY_KEY_LEN`] bytes.
    #[error("is longer than {MAX_IDEMPOTENCY_KEY_LEN} bytes")]
    TooLong,
    /// A byte outside visible ASCII.
    #[error("must be visible ASCII characters (\"!\" to \"~\", no spaces), such as a UUID")]
    BadCharacter,
}

/// The key a sender gives a posted message so that retrying the post never queues it twice:
/// 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] bytes of visible ASCII (`!` to `~`). Keys are scoped to
/// their sender: the same key from two senders names two posts. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(Arc<str>);

impl IdempotencyKey {
    /// Checks `key` against the rule.
    pub fn parse(key: &str) -> Result<Self, IdempotencyKeyError> {
        if key.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(IdempotencyKeyError::TooLong);
        }
        if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(IdempotencyKeyError::BadCharacter);
        }
        Ok(Self(key.into()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 digest of a message's content: what a [`PostRecord`] keeps of it, so a record
/// stays small whatever the content's size.
pub type ContentDigest = [u8; 32];

/// The digest of `content`.
pub fn content_digest(content: &str) -> ContentDigest {
    Sha256::digest(content.as_bytes()).into()
}

/// What the store keeps of a message posted under an [`IdempotencyKey`], under its sender and
/// key, for as long as the message is retained: enough to answer a retry with the first result
/// and to tell a retry from another message under the same key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostRecord {
    /// The id the message got.
    pub id: u64,
    /// When it was queued.
    pub sent_at: SystemTime,
    /// Its recipient.
    pub to: UserName,
    /// Its content's digest.
    pub digest: ContentDigest,
}

impl PostRecord {
    /// The record of `envelope`, as queued.
    pub fn of(envelope: &Envelope) -> Self {
        Self {
            id: envelope.id,
            sent_at: envelope.sent_at,
            to: envelope.to.clone(),
            digest: content_digest(&envelope.content),
        }
    }

    /// Whether `message` is the one recorded (same recipient, same content); its sender is the
    /// record's by construction.
    pub fn is_for(&self, message: &NewMessage) -> bool {
        self.to == message.to && self.digest == content_digest(&message.content)
    }

    /// The recorded message as first queued: `message` (the same, see [`PostRecord::is_for`])
    /// with the id and time the record holds.
    pub fn envelope(&self, message: NewMessage) -> Envelope {
        Envelope {
            id: self.id,
            from: message.from,
            to: message.to,
            content: message.content,
            sent_at: self.sent_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_the_shared_rule() {
        assert_eq!(
            UserName::parse("jack.b-1_x").unwrap().as_str(),
            "jack.b-1_x"
        );
        assert_eq!(UserName::parse(""), Err(UserNameError::Empty));
        assert_eq!(UserName::parse("mi ke"), Err(UserNameError::BadCharacter));
        assert_eq!(
            UserName::parse(&"x".repeat(65)),
            Err(UserNameError::TooLong)
        );
    }

    #[test]
    fn idempotency_keys_are_1_to_128_bytes_of_visible_ascii() {
        let uuid = "0b6f4f8e-5a3c-4c1e-9f7d-2a1b3c4d5e6f";
        assert_eq!(IdempotencyKey::parse(uuid).unwrap().as_str(), uuid);
        assert!(IdempotencyKey::parse("!~").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        assert_eq!(IdempotencyKey::parse(""), Err(IdempotencyKeyError::Empty));
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(129)),
            Err(IdempotencyKeyError::TooLong)
        );
        for bad in ["a b", "tab\t", "new\nline", "\u{7f}", "é", "nul\0"] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(IdempotencyKeyError::BadCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_post_record_tells_its_message_from_another() {
        let (jack, mike, nina) = (
            UserName::parse("jack").unwrap(),
            UserName::parse("mike").unwrap(),
            UserName::parse("nina").unwrap(),
        );
        let message = |to: &UserName, content: &str| NewMessage {
            from: jack.clone(),
            to: to.clone(),
            content: content.into(),
        };
        let sent_at = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        let envelope = Envelope {
            id: 42,
            from: jack.clone(),
            to: mike.clone(),
            content: "hi".into(),
            sent_at,
        };
        let record = PostRecord::of(&envelope);
        assert!(record.is_for(&message(&mike, "hi")));
        assert!(!record.is_for(&message(&mike, "hi!")));
        assert!(!record.is_for(&message(&nina, "hi")));
        assert_eq!(record.envelope(message(&mike, "hi")), envelope);
    }
}
