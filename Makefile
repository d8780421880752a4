# Dockyard: `make run` serves the embedded default, `make test` runs every check.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./data
LISTEN ?= 127.0.0.1:5000

.PHONY: run install test test-deps lint unit bench clean

$(BIN)/dockyard: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/dockyard

run: install
	$(BIN)/dockyard serve --data $(DATA) --listen $(LISTEN)

test-deps:
	scripts/test-deps.sh

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install test-deps lint
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit

bench: install test-deps
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/mirror.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
