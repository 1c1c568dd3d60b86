# Courier: every target CI runs is here. `make test` is the whole gate; `.ci/run` calls it.
# Nothing is assumed on PATH but cargo, node, npm and python3: `make tools` installs the rest,
# pinned: the npm tools (buf, protoc-gen-es, the TypeScript test tools; package.json and
# package-lock.json) into node_modules/, everything else into the tool cache below.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The tool cache: one folder per tool and version, outside the clone, so that every clone on this
# machine (CI's fresh clones included) installs a tool once. Set COURIER_TOOLS to move it.
COURIER_TOOLS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/courier-tools
TOOLS := $(COURIER_TOOLS)
BUF := node_modules/.bin/buf
# name@version of each protoc plugin, installed with `cargo install --locked` into
# $(TOOLS)/<name>-<version>; their bin folders go on the PATH, where buf.gen.yaml finds them.
PLUGINS := protoc-gen-prost@0.5.0 protoc-gen-prost-serde@0.4.0 protoc-gen-tonic@0.5.0 \
           protoc-gen-prost-crate@0.5.0
plugin_root = $(TOOLS)/$(subst @,-,$(1))
empty :=
space := $(empty) $(empty)
export PATH := $(subst $(space),:,$(foreach p,$(PLUGINS),$(call plugin_root,$(p))/bin)):$(PATH)

# The one version of the three SDK packages (Rust crate, npm package, Python wheel).
SDK_VERSION := $(shell cat VERSION)

# The baseline of `make breaking`: the commit recorded on the last line of RELEASES.
# Tests of the gate point it at another module (any buf input) instead.
BASELINE ?= .git\#ref=$(lastword $(shell grep -v '^\#' RELEASES))

# Hand-written crates: the generated gen/rust is left as the plugins write it.
HANDWRITTEN := $(addprefix -p ,$(notdir $(wildcard crates/*)))

export RUSTDOCFLAGS := -D warnings

# Each SDK language and the version gate keep their targets in a file of their own.
include $(wildcard make/*.mk)

.PHONY: help tools lint breaking generate check-generated fmt clippy cargo-test features doc \
        publish-dry-run grpcio test release run-demo fuzz soak bench

help:
	@echo "make run-demo       the services demo: TLS, auth, every RPC kind"
	@echo "make run-web        the chat page on the demo server (TLS, tokens) until Ctrl-C"
	@echo "make test           every gate CI runs (installs its own tools)"
	@echo "make tools          install the pinned buf CLI and protoc plugins (idempotent)"
	@echo "make lint           buf lint + buf format check"
	@echo "make breaking       buf breaking against the last release ($(BASELINE))"
	@echo "make generate       regenerate gen/ from proto/"
	@echo "make check-generated  fail if gen/ differs from a fresh generation"
	@echo "make bench          Courier vs bare tonic; writes BENCHMARKS.md"
	@echo "make fuzz           the request fuzz properties, FUZZ_CASES cases (default 200000)"
	@echo "make soak           the soak test for SOAK_SECS seconds (default 60)"
	@echo "make grpcio         the official Python gRPC client (grpcio) against courier-server"
	@echo "make sdk            the three packages (crate, npm, wheel) into target/sdk/"
	@echo "make web            rebuild the chat page into crates/courier-server/assets/"
	@echo "make semver VERSION=x.y.z  may the module be released as x.y.z? (buf breaking + the crate's API under Cargo's rules)"
	@echo "make release VERSION=x.y.z  release the module and move the baselines"

# Installs what is missing or at the wrong version; does nothing otherwise.
# `npm install --no-save` rather than `npm ci`: the registry these machines reach carries only the
# Linux builds of buf, so the lockfile cannot list the other platforms' optional packages and
# `npm ci` rejects it as out of sync. `npm install` still installs the locked, integrity-checked
# versions and, with --no-save, never rewrites the lockfile.
tools:
	@if ! npm ls --depth=0 >/dev/null 2>&1; then \
	  echo "installing the npm tools pinned in package.json"; \
	  npm install --no-save --no-audit --no-fund --loglevel=error; \
	fi
	@for plugin in $(PLUGINS); do \
	  name=$${plugin%@*}; version=$${plugin#*@}; root="$(TOOLS)/$$name-$$version"; \
	  if [ ! -x "$$root/bin/$$name" ]; then \
	    echo "installing $$name $$version into $$root"; \
	    cargo install --quiet --locked --root "$$root" --version "$$version" "$$name"; \
	  fi; \
	done
	@# h2load and nghttp (Debian's nghttp2-client) for `make bench`, when missing and this is root
	@# with apt-get. Failing to install only warns: no other target needs them.
	@if ! command -v h2load >/dev/null || ! command -v nghttp >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing nghttp2-client (h2load, for make bench)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq nghttp2-client >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq nghttp2-client; } >/dev/null 2>&1 || \
	      echo "warning: could not install nghttp2-client; make bench needs its h2load" >&2; \
	  fi; \
	fi

lint: tools
	$(BUF) lint --error-format=msvs
	$(BUF) format --diff --exit-code

breaking: tools
	@if [ "$$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then \
	  git fetch --quiet --unshallow; \
	fi
	$(BUF) breaking --error-format=msvs --against '$(BASELINE)'

generate: tools
	scripts/generate

# Generates into a scratch directory and compares, so a failing check leaves gen/ untouched.
check-generated: tools
	@scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	scripts/generate "$$scratch"; \
	if ! diff -r gen "$$scratch/gen"; then \
	  echo "gen/ is stale or hand-edited: run 'make generate' and commit the result" >&2; \
	  exit 1; \
	fi; \
	echo "gen/ matches a fresh generation"

fmt: tools
	cargo fmt --check $(HANDWRITTEN)

clippy: tools
	cargo clippy --workspace --all-targets --locked -- -D warnings

cargo-test: tools
	cargo test --workspace --locked

# Each proto package's feature must build without the others.
features: tools
	@for feature in $$(cargo metadata --no-deps --format-version 1 --locked | node -e \
	    "const m = JSON.parse(require('fs').readFileSync(0)); \
	     const p = m.packages.find(p => p.name === 'courier-proto'); \
	     console.log(Object.keys(p.features).filter(f => f !== 'default').join(' '))"); do \
	  echo "courier-proto --no-default-features --features $$feature"; \
	  cargo build --quiet --locked -p courier-proto --no-default-features --features "$$feature"; \
	done

doc: tools
	cargo doc --workspace --no-deps --locked

publish-dry-run: tools
	cargo publish --dry-run --locked -p courier-wkt -p courier-proto

test: lint breaking check-generated fmt clippy cargo-test features doc publish-dry-run rust-consumer \
      ts-consumer python-consumer sdk-json check-web browser-test
	@echo "make test: every gate passed"

# Courier against a bare tonic server of the same contract, in one run; writes BENCHMARKS.md.
# Unary Hello is also driven by h2load, an independent load generator, from core 0 beside the
# harness (it is the harness's child).
BENCH_SECS ?= 5
bench: tools
	@command -v h2load >/dev/null && command -v nghttp >/dev/null || { \
	  echo "make bench needs h2load and nghttp: install the nghttp2-client package" \
	       "(on Debian, as root: apt-get install -y nghttp2-client)" >&2; \
	  exit 1; \
	}
	cargo build --release --locked -p courier-bench
	cargo bench --locked -p courier-server --bench mailbox -- --warm-up-time 1 --measurement-time 3 \
	  | tee target/mailbox-bench.txt
	taskset -c 0 target/release/courier-bench run --seconds $(BENCH_SECS) --out BENCHMARKS.md \
	  --criterion target/mailbox-bench.txt

# The decode-and-validation fuzz properties with many more cases than `make test` runs.
FUZZ_CASES ?= 200000
fuzz: tools
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --release --locked -p courier-server --lib fuzz

# The soak test at length (make test runs a few seconds of it). Loopback only, bounded in time.
SOAK_SECS ?= 60
soak: tools
	SOAK_SECS=$(SOAK_SECS) cargo test --locked -p courier-server --test it -- soak:: --ignored --nocapture

# The demo on a fresh machine: throwaway CA, certificate and tokens; the server with TLS and auth
# on an ephemeral port; the client's demo against it; then a graceful stop (SIGTERM).
run-demo: tools
	cargo build --quiet --locked -p courier-server -p courier-client --bins
	crates/courier-server/with-demo-server target/demo sh -c \
	  'target/debug/courier-client --addr "https://$$COURIER_ADDR" --ca "$$COURIER_CA" \
	     --domain localhost demo --tokens-dir "$$COURIER_TOKENS_DIR"'

# The official Python gRPC runtime (grpcio) against courier-server over TLS with tokens, a client
# we did not write: the Python SDK's consumer test, with the stubs of the `courier-proto` wheel
# installed into a fresh virtualenv (make/python.mk, python-consumer).
grpcio: python-consumer
