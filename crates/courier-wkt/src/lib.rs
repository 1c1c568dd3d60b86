//! Protobuf well-known types for the generated `courier-proto` crate, with canonical proto3 JSON.
//!
//! `courier-proto` maps every `google.protobuf` type here (`extern_path=.google.protobuf=::courier_wkt`
//! in `buf.gen.yaml`). Everything is [`pbjson_types`] re-exported except [`Timestamp`]:
//! pbjson-types 0.9 writes a timestamp's UTC offset as `+00:00`, while the proto3 JSON mapping's
//! canonical form ends in `Z` and uses 0, 3, 6 or 9 fractional digits, as protobuf-es, Python's
//! `json_format` and Go's `protojson` write it. This crate is hand-written because no maintained
//! crate offers prost 0.14 well-known types with that form without compiling protos at build time;
//! when pbjson-types writes `Z` itself, [`Timestamp`] becomes a re-export.

pub use pbjson_types::*;

mod timestamp;

pub use timestamp::{Timestamp, TimestampError};
