//! `courier-server`: the Courier services over the generated `courier-proto` stubs.
//!
//! The modules follow the architecture from the inside out; each depends only on those above
//! it:
//!
//! | module | its place |
//! | --- | --- |
//! | [`pb`] | the generated contract (from `courier-common`) |
//! | [`domain`] | users, messages, per-user mailboxes; knows nothing of gRPC or storage |
//! | [`store`] | where the mailboxes' messages live: the [`Store`](store::Store) trait, memory, redb |
//! | [`grpc`] | the gRPC edge: one module per proto package, conversions, status mapping |
//! | [`middleware`] | tower layers around every call: request id, tracing, shedding, auth |
//! | [`page`] | the chat page at `/`, embedded, picked out before the gRPC-Web translation |
//! | [`config`] | [`Config`] and [`Limits`] |
//! | [`server`] | [`run`]: the edge, middleware, health and reflection on a listener |
//! | [`logging`] | where log lines go, off the calls' path |
//! | [`dev_pki`] | throwaway certificates and tokens for the demo and tests |
//!
//! The `courier-server` binary only parses arguments, checks the configuration, binds and
//! calls [`Prepared::serve`].

pub mod config;
pub mod dev_pki;
pub mod domain;
pub mod grpc;
pub mod logging;
pub mod middleware;
pub mod page;
pub mod server;
pub mod store;

pub use courier_common::pb;

pub use config::{Config, DEFAULT_RETENTION, Limits, TlsFiles};
pub use server::{Prepared, ServeError, run};
