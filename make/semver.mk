# The release gate and the release. (Being rewritten for issue 10: `make semver VERSION=x.y.z`.)

# Sets the crate version, regenerates, commits, then records that commit as the new baseline.
release: test
	@[ -n "$(VERSION)" ] || { echo "usage: make release VERSION=x.y.z" >&2; exit 1; }
	@[ -z "$$(git status --porcelain)" ] || { echo "release needs a clean work tree" >&2; exit 1; }
	sed -i 's/^version = ".*"/version = "$(VERSION)"/' gen.Cargo.toml
	sed -i 's/^courier-proto = { path = "gen", version = ".*" }/courier-proto = { path = "gen", version = "$(VERSION)" }/' Cargo.toml
	$(MAKE) generate
	cargo update --quiet --workspace
	git add -A gen.Cargo.toml Cargo.toml Cargo.lock gen
	git commit --quiet --allow-empty -m "Release courier-proto $(VERSION)"
	echo "$(VERSION) $$(git rev-parse HEAD)" >> RELEASES
	git add RELEASES
	git commit --quiet -m "Record release $(VERSION) as the breaking-change baseline"
	@echo "released $(VERSION); publish with: cargo publish -p courier-proto"

