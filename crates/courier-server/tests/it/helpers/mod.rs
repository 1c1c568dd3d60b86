//! What the integration tests share, each written once:
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`server`] | a Courier server in this process on `127.0.0.1:0`, set up as a test needs |
//! | [`client`] | calls through `courier-client`, and the statuses a client may legitimately see |
//! | [`raw`] | raw HTTP/2 and gRPC framing, for input that must be wrong in exactly one way |
//! | [`process`] | the real `courier-server` binary, for tests that signal or kill it |
//! | [`checks`] | what a test checks of the messages that arrived |
//! | [`web`] | gRPC-Web frames and HTTP/1.1 and HTTP/2 clients, plaintext or TLS |

pub(crate) mod checks;
pub(crate) mod client;
pub(crate) mod process;
pub(crate) mod raw;
pub(crate) mod server;
pub(crate) mod web;
