# The two commands a newcomer needs are `make run` and `make test`; the rest serve them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: run test lint format dev dev-postgres migrate services node-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Each stamp is remade when the packaging changes, so a pull that adds a dependency installs it.
$(VENV)/.installed-run: pyproject.toml setup.cfg | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml setup.cfg | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

$(DAGSTER_HOME):
	mkdir -p $@
	# Dagster's default SQLite storage in this folder; no usage statistics sent from here.
	printf 'telemetry:\n  enabled: false\n' > $@/dagster.yaml

## run: install into .venv and run the nightly job on the embedded default (SQLite, in-process)
run: $(VENV)/.installed-run | $(DAGSTER_HOME)
	$(BIN)/perf-platform run

## test: install the dev extras, check the servers, lint, and pass the whole suite
test: $(VENV)/.installed-dev services node-deps lint
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## services: PostgreSQL and Redis must answer; start them when installed but stopped
services:
	@bash scripts/ensure_services.sh

node-deps:
	@bash scripts/ensure_node_deps.sh

## migrate: apply the database migrations to PERF_PLATFORM_DATABASE_URL
migrate: $(VENV)/.installed-run
	$(BIN)/perf-platform migrate

## dev: the Dagster UI on the embedded default, instance in .dagster_home
dev: $(VENV)/.installed-run | $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

## dev-postgres: the Dagster UI with its instance on PostgreSQL (dagster.yaml, DAGSTER_PG_URL)
dev-postgres: $(VENV)/.installed-run
	mkdir -p .dagster_home/postgres
	cp dagster.yaml .dagster_home/postgres/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster_home/postgres $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .dagster_home data .pytest_cache .ruff_cache
