//! Tower layers around every RPC, whatever its kind, outermost first: gRPC-Web translation and
//! CORS ([`web`]), request ids, the call deadline ([`deadline`]), load shedding ([`shed`]),
//! tracing ([`trace`]), the status of oversized messages ([`oversized`]), the check of
//! `grpc-timeout` ([`deadline`]) and bearer-token authentication ([`auth`]). `server.rs` stacks
//! them.

pub mod auth;
pub mod deadline;
pub mod oversized;
pub mod shed;
pub mod trace;
pub mod web;

/// RPCs anyone may call, at any load: health checks and reflection carry no secrets, and a
/// probe must be answered exactly when the server is overloaded.
pub(crate) fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}
