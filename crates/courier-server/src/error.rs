//! The one error type of the services, and its one mapping to gRPC status codes.

use tonic::{Code, Status};

/// Everything a Courier RPC can fail with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
    /// The message store failed; nothing of the failed operation took effect.
    #[error("{0}")]
    Storage(String),
    /// The server is shutting down; the client may retry elsewhere or later.
    #[error("server is shutting down")]
    ShuttingDown,
}

impl CourierError {
    /// Shorthand for [`CourierError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::Storage(_) => Code::Internal,
            Self::ShuttingDown => Code::Unavailable,
        }
    }
}

impl From<CourierError> for Status {
    fn from(error: CourierError) -> Self {
        Status::new(error.code(), error.to_string())
    }
}

impl From<crate::mailbox::MailboxError> for CourierError {
    fn from(error: crate::mailbox::MailboxError) -> Self {
        match error {
            full @ crate::mailbox::MailboxError::Full { .. } => {
                Self::ResourceExhausted(full.to_string())
            }
            crate::mailbox::MailboxError::Store(error) => {
                tracing::error!(%error, "message store failed");
                Self::Storage(error.to_string())
            }
        }
    }
}
