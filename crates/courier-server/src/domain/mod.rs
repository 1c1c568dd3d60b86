//! The domain: users, messages and their mailboxes. It knows nothing of gRPC or of how messages
//! are stored; the gRPC edge ([`crate::grpc`]) hands it validated values, and the storage
//! ([`crate::store`]) implements the [`Store`](crate::store::Store) trait it works over.
//!
//! - [`UserName`], a name that follows the user-name rule (`courier_common::user_name`).
//! - [`NewMessage`] and [`Envelope`]: a message before and after the server queued it.
//! - [`mailbox`], per-user queues with competing consumers and delivery cursors.

pub mod mailbox;

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

pub use courier_common::user_name::UserNameError;
pub use mailbox::{Enqueued, Mailbox, MailboxError, Mailboxes, Receipt, Taken};

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
}
