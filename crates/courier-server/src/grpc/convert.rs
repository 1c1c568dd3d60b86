//! Conversions at the edge: requests into validated domain values (or INVALID_ARGUMENT naming
//! the field), domain values into responses, and the metadata Courier adds.

use std::time::Duration;

use courier_common::metadata;
use tonic::metadata::{KeyAndValueRef, MetadataMap, MetadataValue};
use tonic::{Request, Response};

use super::status::CourierError;
use crate::domain::{Envelope, IdempotencyKey, NewMessage, UserName};
use crate::middleware::auth::AuthenticatedUser;
use crate::pb::message::Message;

/// Longest message content accepted, in bytes.
pub const MAX_CONTENT_LEN: usize = 4096;
/// Longest name accepted by Hello, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest `idle_timeout` accepted.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The request id the request-id layer gave this call (the client's, or a fresh one).
pub fn request_id(metadata: &MetadataMap) -> String {
    metadata
        .get(metadata::REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Who is calling: the authenticated user, else the `from` metadata (authentication off).
pub fn caller<T>(request: &Request<T>) -> Result<Option<UserName>, CourierError> {
    if let Some(AuthenticatedUser(user)) = request.extensions().get::<AuthenticatedUser>() {
        return Ok(Some(user.clone()));
    }
    let Some(value) = request.metadata().get(metadata::FROM) else {
        return Ok(None);
    };
    let field = "metadata from";
    let user = value
        .to_str()
        .map_err(|_| CourierError::invalid(field, "is not valid text"))?;
    user_name(field, user).map(Some)
}

/// A user name from `field`, or INVALID_ARGUMENT naming the field.
pub fn user_name(field: &str, name: &str) -> Result<UserName, CourierError> {
    UserName::parse(name).map_err(|error| CourierError::invalid(field, error))
}

/// A message a client asked to send, validated and checked against the caller.
pub fn new_message(
    message: Option<Message>,
    caller: Option<&UserName>,
) -> Result<NewMessage, CourierError> {
    let message = message.ok_or_else(|| CourierError::invalid("message", "is required"))?;
    let from = user_name("message.from", &message.from)?;
    let to = user_name("message.to", &message.to)?;
    if message.content.is_empty() {
        return Err(CourierError::invalid("message.content", "is required"));
    }
    if message.content.len() > MAX_CONTENT_LEN {
        return Err(CourierError::invalid(
            "message.content",
            format!("is longer than {MAX_CONTENT_LEN} bytes"),
        ));
    }
    if !message.id.is_empty() {
        return Err(CourierError::invalid(
            "message.id",
            "is assigned by the server; leave it empty",
        ));
    }
    if message.sent_at.is_some() {
        return Err(CourierError::invalid(
            "message.sent_at",
            "is assigned by the server; leave it unset",
        ));
    }
    if let Some(caller) = caller.filter(|caller| **caller != from) {
        return Err(CourierError::PermissionDenied(format!(
            "message.from is {from:?} but the caller is {caller:?}"
        )));
    }
    Ok(NewMessage {
        from,
        to,
        content: message.content,
    })
}

/// PostMessage's `idempotency_key`: required, 1 to 128 bytes of visible ASCII.
pub fn idempotency_key(key: &str) -> Result<IdempotencyKey, CourierError> {
    IdempotencyKey::parse(key).map_err(|error| CourierError::invalid("idempotency_key", error))
}

/// Hello's name.
pub fn hello_name(name: &str) -> Result<&str, CourierError> {
    if name.is_empty() {
        return Err(CourierError::invalid("name", "is required"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(CourierError::invalid(
            "name",
            format!("is longer than {MAX_NAME_LEN} bytes"),
        ));
    }
    Ok(name)
}

/// `after_id`: empty, or a message id.
pub fn after_id(after_id: &str) -> Result<Option<u64>, CourierError> {
    if after_id.is_empty() {
        return Ok(None);
    }
    // Digits only: `u64::from_str` would also take a leading `+`.
    let invalid = || CourierError::invalid("after_id", "is not a message id");
    if !after_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    after_id.parse().map(Some).map_err(|_| invalid())
}

/// `idle_timeout`: unset, or more than zero and at most [`MAX_IDLE_TIMEOUT`].
pub fn idle_timeout(
    timeout: Option<courier_wkt::Duration>,
) -> Result<Option<Duration>, CourierError> {
    let Some(timeout) = timeout else {
        return Ok(None);
    };
    let field = "idle_timeout";
    let (Ok(seconds), Ok(nanos)) = (u64::try_from(timeout.seconds), u32::try_from(timeout.nanos))
    else {
        return Err(CourierError::invalid(field, "must be a positive duration"));
    };
    if nanos >= 1_000_000_000 {
        return Err(CourierError::invalid(field, "must be a positive duration"));
    }
    let timeout = Duration::new(seconds, nanos);
    if timeout.is_zero() {
        return Err(CourierError::invalid(field, "must be a positive duration"));
    }
    if timeout > MAX_IDLE_TIMEOUT {
        return Err(CourierError::invalid(field, "must be at most 24h"));
    }
    Ok(Some(timeout))
}

/// The wire form of a queued message.
pub fn message(envelope: Envelope) -> Message {
    Message {
        from: envelope.from.to_string(),
        content: envelope.content,
        to: envelope.to.to_string(),
        id: envelope.id.to_string(),
        sent_at: Some(envelope.sent_at.into()),
    }
}

/// A response carrying `body`, with the request's `x-echo-*` metadata (text and `-bin`) copied
/// into its headers.
pub fn respond<T>(request: &MetadataMap, body: T) -> Response<T> {
    let mut response = Response::new(body);
    let headers = response.metadata_mut();
    for entry in request.iter() {
        match entry {
            KeyAndValueRef::Ascii(key, value)
                if key.as_str().starts_with(metadata::ECHO_PREFIX) =>
            {
                headers.insert(key.clone(), value.clone());
            }
            KeyAndValueRef::Binary(key, value)
                if key.as_str().starts_with(metadata::ECHO_PREFIX) =>
            {
                headers.insert_bin(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    response
}

/// The `x-message-count` trailer.
pub fn count_trailer(count: u64) -> MetadataMap {
    let mut trailers = MetadataMap::new();
    trailers.insert(metadata::MESSAGE_COUNT, MetadataValue::from(count));
    trailers
}

#[cfg(test)]
mod tests;
