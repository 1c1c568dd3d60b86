# The TypeScript SDK: the `courier-proto` npm package (gen/ts) and its consumer test.

.PHONY: sdk-ts ts-consumer

# `npm pack` of the generated package, as the registry would receive it.
sdk-ts:
	mkdir -p target/sdk
	cd gen/ts && npm pack --silent --pack-destination ../../target/sdk >/dev/null
	@echo "target/sdk/courier-proto-$(SDK_VERSION).tgz"

# A scratch Node project outside the repository installs the .tgz with Connect v2, type-checks
# against the installed .d.ts and calls every RPC kind over TLS with a token (tests/sdk/ts/run).
ts-consumer: sdk-ts tools
	cargo build --quiet --locked -p courier-server --bins
	tests/sdk/ts/run
