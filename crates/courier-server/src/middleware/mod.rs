//! Tower layers around every RPC, whatever its kind, outermost first: load shedding
//! ([`shed`]), request ids, tracing ([`trace`]), the status of oversized messages
//! ([`oversized`]), the deadline check ([`deadline`]) and bearer-token authentication
//! ([`auth`]). `server.rs` stacks them.

pub mod auth;
pub mod deadline;
pub mod oversized;
pub mod shed;
pub mod trace;

/// RPCs anyone may call, at any load: health checks and reflection carry no secrets, and a
/// probe must be answered exactly when the server is overloaded.
pub(crate) fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}
