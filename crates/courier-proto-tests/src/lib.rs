//! Tests of the contract and of the generated `courier-proto` crate; the crate itself is empty.
