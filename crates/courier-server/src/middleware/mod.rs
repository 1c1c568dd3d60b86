//! Tower layers around every RPC, whatever its kind, outermost first: request ids, the `rpc`
//! tracing span ([`trace`]), load shedding, the deadline check ([`deadline`]) and bearer-token
//! authentication ([`auth`]). `server.rs` stacks them.

pub mod auth;
pub mod deadline;
pub mod trace;

/// RPCs anyone may call: health checks and reflection carry no secrets.
pub(crate) fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}
