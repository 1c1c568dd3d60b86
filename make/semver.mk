# The release gate and the release: versions that tell the truth.
#
# `make semver VERSION=x.y.z` says whether the module may be released as x.y.z, and why not
# otherwise (scripts/semver-check): the wire must pass `buf breaking` against the last release, and
# x.y.z must be at least the bump that the Rust API requires under Cargo's rules, as
# cargo-semver-checks (pinned below) and scripts/semver-lints find it comparing gen/rust with the
# crate of the last release in RELEASES. The npm package and the Python wheel take the same version.
# `make release VERSION=x.y.z` runs the gate first and commits nothing when it refuses.

.PHONY: semver semver-tools

# `make tools` installs it with the other tools, so that no test installs it on the way.
tools: semver-tools

CARGO_SEMVER_CHECKS_VERSION := 0.51.0
CARGO_SEMVER_CHECKS := $(TOOLS)/cargo-semver-checks-$(CARGO_SEMVER_CHECKS_VERSION)

# Where the gate builds rustdoc JSON (both sides share the dependency builds, kept between runs).
# The mutation tests point it at the repository's own, so that their copies reuse those builds.
SEMVER_TARGET_DIR ?= $(CURDIR)/target/semver
# The crate baseline: empty for the tree of the commit on the last line of RELEASES; the tests give
# an unmodified copy of the repository instead (as they give `make breaking` a BASELINE).
SEMVER_BASELINE ?=

# cargo-semver-checks, pinned, into the tool cache like the protoc plugins (about 8 minutes to build
# on two cores, once per machine). Its 0.51 line supports rustc 1.93 and later.
semver-tools:
	@if [ ! -x "$(CARGO_SEMVER_CHECKS)/bin/cargo-semver-checks" ]; then \
	  echo "installing cargo-semver-checks $(CARGO_SEMVER_CHECKS_VERSION) into $(CARGO_SEMVER_CHECKS)"; \
	  cargo install --quiet --locked --root "$(CARGO_SEMVER_CHECKS)" \
	    --version "$(CARGO_SEMVER_CHECKS_VERSION)" cargo-semver-checks; \
	fi

# gen/ must be what proto/ generates, or the gate would judge another API than the release's.
semver: tools semver-tools
	@[ -n "$(VERSION)" ] || { echo "usage: make semver VERSION=x.y.z" >&2; exit 2; }
	@$(MAKE) check-generated >/dev/null || { \
	  echo "make semver: gen/ is not what proto/ generates: run 'make generate' first" >&2; exit 1; }
	@PATH="$(CARGO_SEMVER_CHECKS)/bin:$$PATH" BUF="$(BUF)" BASELINE='$(BASELINE)' \
	  SEMVER_BASELINE="$(SEMVER_BASELINE)" SEMVER_TARGET_DIR="$(SEMVER_TARGET_DIR)" \
	  scripts/semver-check "$(VERSION)"

# The gate first: nothing is written or committed unless `make semver` and `make test` pass. Then
# the version goes into VERSION, gen/ is regenerated (the crate, npm and Python manifests take it),
# Cargo.lock follows, and that commit is recorded in RELEASES, the baseline of the next release.
release:
	@[ -n "$(VERSION)" ] || { echo "usage: make release VERSION=x.y.z" >&2; exit 2; }
	@[ -z "$$(git status --porcelain)" ] || { echo "release needs a clean work tree" >&2; exit 1; }
	$(MAKE) semver VERSION=$(VERSION)
	$(MAKE) test
	echo "$(VERSION)" > VERSION
	$(MAKE) generate
	cargo update --quiet --workspace
	git add -A VERSION Cargo.lock gen
	git commit --quiet -m "Release courier-proto $(VERSION) (crate, npm package and Python wheel)"
	echo "$(VERSION) $$(git rev-parse HEAD)" >> RELEASES
	git add RELEASES
	git commit --quiet -m "Record release $(VERSION) as the baseline of make breaking and make semver"
	@echo "released $(VERSION); publish the artifacts of: make sdk"
