//! The edge's one error type, [`CourierError`], and its one mapping to `tonic::Status`.
//!
//! Storage failures reach clients as INTERNAL with the request id and nothing of the cause;
//! the cause, with its whole chain, goes to the log line of that call.

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use crate::domain::MailboxError;
use crate::logging::{Capped, Chain};

/// Everything a Courier RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CourierError {
    /// A field is missing or malformed; names the field.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// Path of the field, such as `message.to`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller acts for another user than the one it is authenticated as.
    #[error("{0}")]
    PermissionDenied(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// A limit was reached: a full queue, too many open streams.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request cannot be done in the state the server holds, and retrying it unchanged
    /// will not help: an idempotency key used for another message.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The server failed (its store); nothing of the failed operation took effect.
    #[error("internal error")]
    Internal(#[source] MailboxError),
    /// The server is shutting down; the client may retry elsewhere or later.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The client's stream of messages failed: a message over the size limit, a broken frame.
    /// The client is told this status (with the stream's trailers); a client that went away is
    /// told nothing, having nobody to tell.
    #[error("{}", .0.message())]
    Inbound(Status),
}

impl CourierError {
    /// Shorthand for [`CourierError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl ToString) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// The gRPC code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Internal(_) => Code::Internal,
            Self::ShuttingDown => Code::Unavailable,
            Self::Inbound(status) => status.code(),
        }
    }

    /// The status for a call whose request id is `request_id`.
    pub fn into_status(self, request_id: &str) -> Status {
        self.into_status_with(request_id, MetadataMap::new())
    }

    /// The status for a call whose request id is `request_id`, carrying `trailers`. An internal
    /// error is logged here, with its causes; the client gets only the request id.
    pub fn into_status_with(self, request_id: &str, trailers: MetadataMap) -> Status {
        let message = match &self {
            Self::Internal(cause) => {
                // With the request id the client is told, as the call's span is off at info.
                tracing::error!(
                    error = %Chain(cause),
                    request_id = %Capped(request_id),
                    "internal error"
                );
                format!(
                    "internal error; the server's log has the details under request id {request_id}"
                )
            }
            other => other.to_string(),
        };
        Status::with_metadata(self.code(), message, trailers)
    }
}

impl From<MailboxError> for CourierError {
    fn from(error: MailboxError) -> Self {
        match error {
            full @ MailboxError::Full { .. } => Self::ResourceExhausted(full.to_string()),
            reused @ MailboxError::KeyReused { .. } => Self::FailedPrecondition(reused.to_string()),
            store @ MailboxError::Store(_) => Self::Internal(store),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn internal_errors_tell_the_client_the_request_id_and_nothing_else() {
        let cause = std::io::Error::other("disk on fire at /var/lib/courier");
        let error = CourierError::from(MailboxError::Store(StoreError::failed(
            "commit messages",
            cause,
        )));
        let status = error.into_status("req-42");
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "internal error; the server's log has the details under request id req-42"
        );
    }

    #[test]
    fn the_cause_chain_is_kept_for_the_log() {
        let cause = std::io::Error::other("disk on fire");
        let error = CourierError::from(MailboxError::Store(StoreError::failed(
            "commit messages",
            cause,
        )));
        assert_eq!(
            Chain(&error).to_string(),
            "internal error: the message store failed: storage failed to commit messages: disk on fire"
        );
    }
}
