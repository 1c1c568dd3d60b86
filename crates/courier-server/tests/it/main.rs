//! Courier's integration tests, in one test binary so the helpers are compiled once and shared.
//!
//! | module | what it covers |
//! | --- | --- |
//! | [`services`] | every RPC kind, metadata both ways, validation, chat, shutdown |
//! | [`security`] | authentication, TLS and mutual TLS, the demo with and without them |
//! | [`limits`], [`transport`] | each limit's answer, backpressure, HTTP/2 and TCP defences |
//! | [`bad_input`] | wrong bytes on the wire, sent as raw HTTP/2 |
//! | [`durability`] | resume, restart, SIGKILL |
//! | [`post`] | PostMessage: idempotency keys (retries, conflicts, races, restarts, expiry), its checks |
//! | [`middleware`] | shedding that spares health and reflection, size limits answered RESOURCE_EXHAUSTED |
//! | [`memory`] | per-user state does not grow with the users clients make up |
//! | [`soak`] | load, then SIGTERM, then a restart that finds everything counted |
//! | [`binary`] | the `courier-server` binary's start and stop |
//! | [`web`] | gRPC-Web by hand over HTTP/1.1 and HTTP/2, plaintext and TLS; CORS |
//! | [`page`] | the chat page at `/`: its files, content types, security headers, 404 and 405 |
//! | [`helpers`] | the servers, clients and raw HTTP/2 the tests share |
//!
//! Run one area with a filter: `cargo test -p courier-server --test it -- limits::`.

mod helpers;

mod bad_input;
mod binary;
mod durability;
mod limits;
mod memory;
mod middleware;
mod page;
mod post;
mod security;
mod services;
mod soak;
mod transport;
mod web;
