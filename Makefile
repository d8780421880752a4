# Dockyard: `make run` serves the embedded default, `make test` runs every check.
# Everything installs from requirements/*.txt (exact versions with hashes, made by `make lock`
# from pyproject.toml), so every machine runs what CI tested.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
REQ := requirements
DATA ?= ./data
LISTEN ?= 127.0.0.1:5000
# pytest-xdist workers: the tests mostly wait on servers and peers they start, so two per core.
JOBS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 2 )))
PYTEST_ARGS ?=

.PHONY: run install install-test test test-deps lint unit bench lock lock-upgrade clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# pip and setuptools themselves, pinned: the editable install below builds without isolation.
$(VENV)/.build: $(BIN)/python $(REQ)/build.txt
	$(PIP) install -q --require-hashes -r $(REQ)/build.txt
	touch $@

$(VENV)/.runtime: $(VENV)/.build $(REQ)/runtime.txt pyproject.toml
	$(PIP) install -q --require-hashes -r $(REQ)/runtime.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PIP) check
	touch $@

$(VENV)/.test: $(VENV)/.runtime $(REQ)/test.txt
	$(PIP) install -q --require-hashes -r $(REQ)/test.txt
	$(PIP) check
	touch $@

install: $(VENV)/.runtime

install-test: $(VENV)/.test

run: install
	$(BIN)/dockyard serve --data $(DATA) --listen $(LISTEN)

test-deps:
	scripts/test-deps.sh

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Parallel; tests that share a server or depend on order carry an xdist_group mark.
# pytest's exit 5 (no test collected) fails too, said plainly: for this suite it means a broken
# tree or a marker expression that deselects everything, and CI must not pass on nothing.
test: install-test test-deps lint
	$(BIN)/pytest -q -n $(JOBS) --dist loadgroup --durations=20 $(PYTEST_ARGS) || { \
	  status=$$?; [ $$status -ne 5 ] || echo "make test: pytest collected no tests" >&2; \
	  exit $$status; }

# No PostgreSQL, no peers: every test that needs one is marked `peers` (support/rules.py
# checks). In one process: these use the CPU rather than wait, and four workers' start-up cost
# more than they saved (52 s against 74 s on 2 cores).
unit: install-test
	$(BIN)/pytest -q -m "not peers" tests/unit $(PYTEST_ARGS)

bench: install-test test-deps
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/mirror.py
	$(BIN)/python bench/customize.py

# Regenerate requirements/*.txt after a change to pyproject.toml's dependencies or groups:
# pins that still fit are kept, so only what changed moves. `make lock-upgrade` moves all.
lock: $(VENV)/.build
	$(PIP) install -q --require-hashes -r $(REQ)/uv.txt
	UV=$(BIN)/uv scripts/lock.sh

lock-upgrade: $(VENV)/.build
	$(PIP) install -q --require-hashes -r $(REQ)/uv.txt
	UV=$(BIN)/uv scripts/lock.sh --upgrade

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
