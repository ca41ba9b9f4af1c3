# The two commands a user needs: `make run` and `make test`. Everything they need is installed
# from this repository's own files, so a fresh machine (and CI) gets the same result.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: venv run test lint typecheck unit oracle bench clean postgres bench-tracking

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

## run: the main job (validate and plan examples-repo/; later, the daemon)
run: venv
	$(BIN)/reconciler validate examples-repo

## test: lint, type-check and the whole suite
test: venv lint typecheck postgres
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/ruff format --check reconciler

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## oracle: the official polyaxon package, pinned, in its own venv (never a runtime dependency)
oracle: .oracle-venv/.installed

.oracle-venv/.installed: tests/oracle/requirements.txt
	@test -x .oracle-venv/bin/python || $(PYTHON) -m venv .oracle-venv
	.oracle-venv/bin/pip install -q -r tests/oracle/requirements.txt
	@touch $@

## postgres: PostgreSQL server binaries (Debian package) for the tests' throw-away servers
postgres:
	bash scripts/ensure-postgres.sh

bench-tracking: venv postgres
	$(BIN)/python -m bench.tracking_bench

bench: venv oracle
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .oracle-venv .mypy_cache .ruff_cache .pytest_cache
