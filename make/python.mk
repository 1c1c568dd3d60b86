# The Python SDK: the generator that buf runs for gen/python, the `courier-proto` wheel, and the
# wheel's consumer test.

# The generator: grpcio-tools, whose protoc writes `_pb2.py`, `.pyi` and `_pb2_grpc.py`, run by
# buf through scripts/protoc-gen-python-grpcio. Its version sets the generated code's runtime
# floors (sdk/python/pyproject.toml). Every package of the virtualenv is pinned, installed with
# --no-deps so that the list is the whole environment.
GRPCIO_TOOLS_VERSION := 1.85.1
PYGEN_VENV := $(TOOLS)/grpcio-tools-$(GRPCIO_TOOLS_VERSION)
PYGEN_PINS := grpcio-tools==$(GRPCIO_TOOLS_VERSION) grpcio==$(GRPCIO_TOOLS_VERSION) protobuf==7.36.2 \
              typing-extensions==4.16.0 setuptools==84.2.1
# The plugin re-executes itself with this Python (see its header).
export COURIER_GRPCIO_TOOLS_PYTHON := $(abspath $(PYGEN_VENV))/bin/python

# The wheel's build: the standard front end, `build`, without isolation, in a virtualenv holding
# the backend that sdk/python/pyproject.toml pins (hatchling; `build` checks it is the one).
PYBUILD_VENV := $(TOOLS)/python-build-1.6.1-hatchling-1.33.0
PYBUILD_PINS := build==1.6.1 hatchling==1.33.0 packaging==26.3 pathspec==1.1.1 pluggy==1.7.0 \
                pyproject_hooks==1.3.3 tomlkit==0.15.2 trove-classifiers==2026.9.21.13

PYTHON_WHEEL := target/sdk/courier_proto-$(SDK_VERSION)-py3-none-any.whl
# The consumer's virtualenv, made anew by every run; its Python runs tests/sdk/python/*.py.
PYTHON_CONSUMER_VENV := target/python-consumer/venv
PYTHON_CONSUMER_PYTHON := $(PYTHON_CONSUMER_VENV)/bin/python

.PHONY: python-tools sdk-python python-consumer-venv python-consumer

# `make tools` installs the Python tools too.
tools: python-tools

# $(call python_venv,DIR,PINS): makes DIR a virtualenv of exactly PINS, unless it already is one
# (DIR/courier-pins, written last, records what it holds).
define python_venv
if [ "$$(cat "$(1)/courier-pins" 2>/dev/null)" != "$(2)" ]; then \
  echo "installing $(2) into $(1)"; \
  rm -rf "$(1)"; python3 -m venv "$(1)"; \
  "$(1)/bin/pip" install --quiet --disable-pip-version-check --no-deps $(2); \
  "$(1)/bin/pip" check --disable-pip-version-check; \
  echo "$(2)" > "$(1)/courier-pins"; \
fi
endef

python-tools:
	@$(call python_venv,$(PYGEN_VENV),$(PYGEN_PINS))
	@$(call python_venv,$(PYBUILD_VENV),$(PYBUILD_PINS))

# The wheel, from the committed gen/python (hatchling writes nothing into it); its timestamps are
# hatchling's fixed reproducible ones, so the same sources give the same bytes.
sdk-python: tools
	@mkdir -p target/sdk && rm -f target/sdk/courier_proto-*.whl
	$(PYBUILD_VENV)/bin/python -m build --quiet --wheel --no-isolation --outdir target/sdk gen/python
	@test -f $(PYTHON_WHEEL) || { echo "the build did not write $(PYTHON_WHEEL)" >&2; exit 1; }
	$(PYBUILD_VENV)/bin/python tests/sdk/python/floors.py $(PYTHON_WHEEL)

# A fresh virtualenv with the wheel installed as a user installs it: pip resolves protobuf and
# grpcio from PyPI (its cache keeps reruns fast).
python-consumer-venv: sdk-python
	rm -rf $(PYTHON_CONSUMER_VENV)
	python3 -m venv $(PYTHON_CONSUMER_VENV)
	$(PYTHON_CONSUMER_VENV)/bin/pip install --quiet --disable-pip-version-check $(PYTHON_WHEEL)

# The consumer test: every RPC kind through grpcio against courier-server over TLS with a token,
# the stubs imported from the installed wheel (tests/sdk/python/consumer.py); then the JSON
# script reads back what it writes and the shared fixture.
python-consumer: python-consumer-venv
	cargo build --quiet --locked -p courier-server --bins
	crates/courier-server/with-demo-server target/python-consumer/server \
	  $(PYTHON_CONSUMER_PYTHON) tests/sdk/python/consumer.py
	$(PYTHON_CONSUMER_PYTHON) tests/sdk/python/json_message.py write > target/python-consumer/message.json
	$(PYTHON_CONSUMER_PYTHON) tests/sdk/python/json_message.py read target/python-consumer/message.json >/dev/null
	$(PYTHON_CONSUMER_PYTHON) tests/sdk/python/json_message.py read tests/sdk/message-fixture.json >/dev/null
