# The chat page (web/): its bundle, embedded by courier-server and committed, the drift check of
# that copy, the browser tests (Debian's Chromium driven by playwright-core) and `make run-web`.

# Where `make web` writes the page; courier-server embeds these files (src/page.rs).
WEB_ASSETS := crates/courier-server/assets
# Debian's Chromium, which the browser tests drive; playwright-core never downloads a browser.
CHROMIUM := /usr/bin/chromium
TSC := node_modules/.bin/tsc
# Where `make run-web` listens; an ephemeral loopback port unless set (WEB_LISTEN=127.0.0.1:8443).
WEB_LISTEN ?= 127.0.0.1:0

.PHONY: web-tools web check-web browser-test run-web

# `make tools` installs Chromium too.
tools: web-tools

# Debian's chromium package when it is missing and this is root with apt-get; otherwise stop,
# naming what to install.
web-tools:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (for make browser-test)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	      { echo "could not install the chromium package: make browser-test needs $(CHROMIUM)" >&2; \
	        exit 1; }; \
	  else \
	    echo "make browser-test needs Chromium at $(CHROMIUM): install Debian's chromium package" \
	         "(as root: apt-get install -y chromium)" >&2; \
	    exit 1; \
	  fi; \
	  [ -x $(CHROMIUM) ] || { echo "the chromium package did not install $(CHROMIUM)" >&2; exit 1; }; \
	fi

# Type-checks web/src and writes the page into $(WEB_ASSETS): commit the result with web/.
web: tools
	$(TSC) -p web
	node web/build.mjs $(WEB_ASSETS)

# Type-checks web/src, builds the page into a scratch folder and fails if the committed copy
# differs (a change to web/, to gen/ts, or to a pinned npm package without `make web`).
check-web: tools
	$(TSC) -p web
	@scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	node web/build.mjs "$$scratch"; \
	if ! diff -rq $(WEB_ASSETS) "$$scratch"; then \
	  echo "$(WEB_ASSETS) is stale or hand-edited: run 'make web' and commit the result" >&2; \
	  exit 1; \
	fi; \
	echo "$(WEB_ASSETS) matches a fresh build of web/"

# The page in Chromium against courier-server with TLS and tokens (tests/browser/page.test.mjs);
# writes target/browser/conversation.png.
browser-test: tools
	cargo build --quiet --locked -p courier-server -p courier-client --bins
	node --test --test-concurrency=1 tests/browser/

# The demo server with TLS and tokens (as run-demo), its page's URL, users and tokens; serves
# until Ctrl-C.
run-web: tools
	cargo build --quiet --locked -p courier-server -p courier-client --bins
	COURIER_DEMO_LISTEN=$(WEB_LISTEN) crates/courier-server/with-demo-server target/web web/run-web
