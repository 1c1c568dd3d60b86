//! Bearer-token authentication: the tokens file ([`TokenStore`]), the tower layer that checks
//! `authorization: Bearer <token>` on every call ([`BearerAuth`]), and the [`AuthenticatedUser`]
//! it hands to the handlers in the request's extensions.
//!
//! The tokens file holds SHA-256 hashes, never tokens: a stolen file does not let anyone in.
//! Tokens are random and long, so a fast hash is enough.
//!
//! A presented token is hashed and looked up by its digest. The time that takes depends only on
//! the digest, which an attacker cannot steer towards a stored one without a SHA-256 preimage,
//! so it tells nothing about valid tokens. (A constant-time comparison against every entry, the
//! first design, cost 42% of the server's CPU with 1,000 users: see BENCHMARKS.md.)

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use sha2::{Digest, Sha256};
use tonic::Status;
use tower_http::validate_request::ValidateRequest;

use super::is_public;
use crate::domain::{UserName, UserNameError};

/// The user a request was authenticated as; put into request extensions by [`BearerAuth`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser(pub UserName);

/// Users by the hashes of their tokens, as loaded from the `--tokens` file.
#[derive(Clone)]
pub struct TokenStore {
    users: HashMap<[u8; 32], UserName>,
}

/// Why a tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read tokens file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A line names a user the user-name rule refuses.
    #[error("tokens file line {line}: bad user name")]
    BadUser {
        /// 1-based line number.
        line: usize,
        /// What is wrong with the name.
        #[source]
        source: UserNameError,
    },
    /// A line is not `<user> sha256:<64 hex digits>`.
    #[error("tokens file line {line}: expected `<user> sha256:<64 hex digits>`")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// The file names no user.
    #[error("tokens file has no entries")]
    Empty,
    /// Two lines hold the same hash: one token would stand for two users.
    #[error("tokens file line {line}: the same token hash as line {first}")]
    Duplicate {
        /// 1-based line number of the repeat.
        line: usize,
        /// 1-based line number where the hash first appears.
        first: usize,
    },
}

impl TokenStore {
    /// Parses a tokens file: one `<user> sha256:<hex>` per line; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self, TokenFileError> {
        let mut users = HashMap::new();
        let mut lines_of = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let malformed = TokenFileError::Malformed { line: index + 1 };
            let (user, hash) = line.split_once(char::is_whitespace).ok_or(malformed)?;
            let user = UserName::parse(user).map_err(|source| TokenFileError::BadUser {
                line: index + 1,
                source,
            })?;
            let digest = hash
                .trim()
                .strip_prefix("sha256:")
                .and_then(|hex_digits| hex::decode(hex_digits).ok())
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or(TokenFileError::Malformed { line: index + 1 })?;
            if let Some(first) = lines_of.insert(digest, index + 1) {
                return Err(TokenFileError::Duplicate {
                    line: index + 1,
                    first,
                });
            }
            users.insert(digest, user);
        }
        if users.is_empty() {
            return Err(TokenFileError::Empty);
        }
        Ok(Self { users })
    }

    /// Reads and parses a tokens file.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The user `token` belongs to (see the module's note on timing).
    pub fn authenticate(&self, token: &str) -> Option<&UserName> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.users.get(&digest)
    }
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<_> = self.users.values().collect();
        users.sort();
        f.debug_struct("TokenStore").field("users", &users).finish()
    }
}

/// The tokens-file line for `user` holding `token`.
pub fn token_file_line(user: &str, token: &str) -> String {
    format!(
        "{user} sha256:{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// Checks `authorization: Bearer <token>` and records the user for the handlers.
#[derive(Clone)]
pub struct BearerAuth {
    tokens: Arc<TokenStore>,
}

impl BearerAuth {
    /// Authenticates against `tokens`.
    pub fn new(tokens: Arc<TokenStore>) -> Self {
        Self { tokens }
    }

    fn user_of(&self, headers: &HeaderMap) -> Result<UserName, &'static str> {
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or("missing authorization metadata")?;
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or("authorization must be `Bearer <token>`")?;
        self.tokens
            .authenticate(token)
            .cloned()
            .ok_or("unknown token")
    }
}

impl<B> ValidateRequest<B> for BearerAuth {
    type ResponseBody = tonic::body::Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Self::ResponseBody>> {
        if is_public(request.uri().path()) {
            return Ok(());
        }
        match self.user_of(request.headers()) {
            Ok(user) => {
                request.extensions_mut().insert(AuthenticatedUser(user));
                Ok(())
            }
            // Logged by the trace layer as a failed call (UNAUTHENTICATED), at info: a client can
            // send bad tokens at will, so this is no warning.
            Err(reason) => Err(Status::unauthenticated(reason).into_http()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_their_users_only() {
        let file = format!(
            "# demo users\n{}\n\n{}  # trailing comment\n",
            token_file_line("jack", "jack-secret"),
            token_file_line("mike", "mike-secret")
        );
        let store = TokenStore::parse(&file).unwrap();
        assert_eq!(
            store.authenticate("jack-secret").map(UserName::as_str),
            Some("jack")
        );
        assert_eq!(
            store.authenticate("mike-secret").map(UserName::as_str),
            Some("mike")
        );
        assert_eq!(store.authenticate("jack-secret "), None);
        assert_eq!(store.authenticate(""), None);
        assert!(!format!("{store:?}").contains("sha256"));
    }

    #[test]
    fn malformed_files_are_rejected_with_the_line() {
        let error = TokenStore::parse("jack sha256:00\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "tokens file line 1: expected `<user> sha256:<64 hex digits>`"
        );
        let error = TokenStore::parse("# nothing\n\njack\n").unwrap_err();
        assert!(matches!(error, TokenFileError::Malformed { line: 3 }));
        assert!(matches!(
            TokenStore::parse("# nothing\n"),
            Err(TokenFileError::Empty)
        ));
        let line = token_file_line("ja/ck", "secret");
        let error = TokenStore::parse(&line).unwrap_err();
        assert!(
            matches!(error, TokenFileError::BadUser { line: 1, .. }),
            "{error:?}"
        );
    }
}
