//! `courier-common`: what the Courier server and client both need, defined once.
//!
//! - [`pb`]: the generated `courier-proto` packages under short names.
//! - [`metadata`]: the names of the metadata entries Courier adds to the contract
//!   (`x-request-id`, `x-message-count`, …).
//! - [`user_name`]: the rule a user name follows, so the client can refuse a bad name before
//!   sending it and the server refuses it with the same words.
//! - [`Chain`]: an error with all its causes, as both binaries print and log them.
//!
//! It holds names and rules only: no I/O, no tonic.

use std::fmt;

/// Displays an error followed by each of its sources, `top: cause: root cause`, so that a
/// message never stops at "transport error". A cause worded exactly like the one before it is
/// shown once.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            // Layers that wrap an error under the same words (hyper-util's connect errors do)
            // would repeat themselves.
            let text = cause.to_string();
            if text != shown {
                write!(f, ": {text}")?;
                shown = text;
            }
            source = cause.source();
        }
        Ok(())
    }
}

/// The generated types and stubs, under short names.
pub mod pb {
    pub use courier_proto::courier::chat::v1 as chat;
    pub use courier_proto::courier::hello::v1 as hello;
    pub use courier_proto::courier::message::v1 as message;
}

/// Metadata keys Courier's server sends or reads beyond what the contract defines. Another
/// implementation of the contract need not send them; clients treat them as optional.
pub mod metadata {
    /// Request id, sent by the client (or made up by the server) and echoed in the response
    /// headers.
    pub const REQUEST_ID: &str = "x-request-id";
    /// Trailer of a streaming response: how many messages that stream carried.
    pub const MESSAGE_COUNT: &str = "x-message-count";
    /// Names the caller when authentication is off (as in the original tutorial).
    pub const FROM: &str = "from";
    /// Request metadata whose key starts with this comes back in the response headers.
    pub const ECHO_PREFIX: &str = "x-echo-";
}

/// The user-name rule: 1 to [`MAX_LEN`](user_name::MAX_LEN) bytes of ASCII letters, digits,
/// `.`, `_` and `-`.
pub mod user_name {
    /// Longest user name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// How a string breaks the user-name rule. The messages are the server's answers.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
    pub enum UserNameError {
        /// The name is empty.
        #[error("is required")]
        Empty,
        /// The name is longer than [`MAX_LEN`] bytes.
        #[error("is longer than {MAX_LEN} bytes")]
        TooLong,
        /// The name holds a character outside the allowed set.
        #[error("may hold only letters, digits, '.', '_' and '-'")]
        BadCharacter,
    }

    /// Whether `byte` may appear in a user name.
    pub fn is_allowed(byte: u8) -> bool {
        byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
    }

    /// Checks `name` against the rule.
    pub fn check(name: &str) -> Result<(), UserNameError> {
        if name.is_empty() {
            Err(UserNameError::Empty)
        } else if name.len() > MAX_LEN {
            Err(UserNameError::TooLong)
        } else if !name.bytes().all(is_allowed) {
            Err(UserNameError::BadCharacter)
        } else {
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_chain_shows_every_cause() {
            let io = std::io::Error::other("Connection refused");
            #[derive(Debug, thiserror::Error)]
            #[error("cannot connect")]
            struct Top(#[source] std::io::Error);
            assert_eq!(
                crate::Chain(&Top(io)).to_string(),
                "cannot connect: Connection refused"
            );
            #[derive(Debug, thiserror::Error)]
            #[error("cannot connect")]
            struct Again(#[source] Top);
            let io = std::io::Error::other("Connection refused");
            assert_eq!(
                crate::Chain(&Again(Top(io))).to_string(),
                "cannot connect: Connection refused",
                "a cause worded like the one before it is shown once"
            );
        }

        #[test]
        fn the_rule_accepts_and_refuses_exactly() {
            for good in ["jack", "a", "A.b_c-9", &"x".repeat(MAX_LEN)] {
                assert_eq!(check(good), Ok(()), "{good}");
            }
            assert_eq!(check(""), Err(UserNameError::Empty));
            assert_eq!(check(&"x".repeat(MAX_LEN + 1)), Err(UserNameError::TooLong));
            for bad in ["mi ke", "jäck", "a/b", "a:b", "a\0"] {
                assert_eq!(check(bad), Err(UserNameError::BadCharacter), "{bad:?}");
            }
        }
    }
}
