# The three SDK packages together, and the proto3 JSON test across their languages.

SDK_JSON := target/sdk-json
# How each language runs its side of the JSON test: `<runner> write` prints the fixture message
# (tests/sdk/message-fixture.json) as proto3 JSON; `<runner> read FILE` fails unless FILE is that
# message with its timestamp in the canonical form.
JSON_RUST := cargo run --quiet --locked -p courier-proto-tests --example json_message --
JSON_TS := node tests/sdk/ts/json.mjs
JSON_PYTHON := $(PYTHON_CONSUMER_PYTHON) tests/sdk/python/json_message.py

.PHONY: sdk sdk-json

# target/sdk/: courier-proto-<v>.crate (with courier-wkt-<w>.crate, its dependency),
# courier-proto-<v>.tgz and courier_proto-<v>-py3-none-any.whl.
sdk: sdk-rust sdk-ts sdk-python
	@ls -1 target/sdk

# Each language writes the message; each of the other two reads it back and compares.
sdk-json: tools python-consumer-venv
	rm -rf $(SDK_JSON) && mkdir -p $(SDK_JSON)
	$(JSON_RUST) write > $(SDK_JSON)/rust.json
	$(JSON_TS) write > $(SDK_JSON)/ts.json
	$(JSON_PYTHON) write > $(SDK_JSON)/python.json
	@for writer in rust ts python; do \
	  for reader in rust ts python; do \
	    [ "$$writer" = "$$reader" ] && continue; \
	    case $$reader in \
	      rust) run="$(JSON_RUST)" ;; ts) run="$(JSON_TS)" ;; python) run="$(JSON_PYTHON)" ;; \
	    esac; \
	    echo "$$reader reads the JSON $$writer wrote: $$(cat $(SDK_JSON)/$$writer.json)"; \
	    $$run read $(SDK_JSON)/$$writer.json >/dev/null; \
	  done; \
	done
	@echo "sdk-json: Rust, TypeScript and Python read each other's proto3 JSON"
