# The Rust SDK: the published crates and their consumer test.

# courier-wkt, the crate of well-known types that courier-proto depends on, has its own version.
WKT_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' crates/courier-wkt/Cargo.toml)

.PHONY: sdk-rust rust-consumer

# `cargo package` builds each crate from its packaged sources, as a registry would receive it
# (--allow-dirty: `make sdk` packages the work tree as it is).
sdk-rust: tools
	cargo package --quiet --locked --allow-dirty -p courier-wkt -p courier-proto
	mkdir -p target/sdk
	cp target/package/courier-proto-$(SDK_VERSION).crate target/package/courier-wkt-$(WKT_VERSION).crate target/sdk/

rust-consumer: sdk-rust
	cargo build --quiet --locked -p courier-server --bins
	tests/sdk/rust/run
