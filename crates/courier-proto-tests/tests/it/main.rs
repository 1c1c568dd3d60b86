//! The tests of the contract and of the generated `courier-proto` crate, one binary
//! (`cargo test -p courier-proto-tests --test it`):
//!
//! - [`descriptors`]: the file descriptor sets decode and describe the contract;
//! - [`json_mapping`]: the proto3 JSON mapping, both ways, against hand-written JSON;
//! - [`gates`]: the make targets gate (lint, breaking, check-generated) and the version gate
//!   (`make semver`) asks for the bump each kind of change needs, on temporary copies.

mod descriptors;
mod gates;
mod json_mapping;
