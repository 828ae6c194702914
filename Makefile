# nanodistro — everything a fresh Debian machine needs, as root.
#   make run    build the example catalog and its images, and show the result
#   make test   lint, type-check and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint typecheck pytest venv sysdeps tools apk-tools clean bench

run: venv sysdeps
	$(BIN)/nanodistro --help >/dev/null
	bash scripts/run-examples.sh

test: venv sysdeps tools apk-tools lint typecheck pytest

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

sysdeps:
	bash scripts/install-system-deps.sh

tools:
	bash scripts/install-oci-tools.sh $(CURDIR)/.tools

apk-tools:
	bash scripts/install-apk-tools.sh $(CURDIR)/.tools

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest -q

bench: venv
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
