# Hearth — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
export FLASK_APP := wsgi

.PHONY: run install test test-unit test-integration test-e2e test-services browser lint format bench migrate seed clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## run: install, migrate, make sure an admin exists (DEMO=1: and demo data), then serve web + workers (Ctrl-C stops all)
run: install
	@mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) seed-admin
	@if [ "$(DEMO)" = 1 ]; then $(FLASK) demo seed; fi
	@echo "Hearth on http://127.0.0.1:$(PORT)  (Ctrl-C stops the web server and every worker)"
	PORT=$(PORT) $(BIN)/honcho start -f Procfile.dev -p $(PORT)

migrate: install
	$(FLASK) db upgrade

seed: install
	$(FLASK) seed-admin

## browser: Debian's Chromium for the Playwright tests (never a downloaded browser)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

## test: the whole suite on the embedded profile (SQLite, in-process cache, SQLite huey)
test: install browser
	$(BIN)/pytest tests -q

test-unit: install
	$(BIN)/pytest tests/unit -q

test-integration: install
	$(BIN)/pytest tests/integration -q

test-e2e: install browser
	$(BIN)/pytest tests/e2e -q

## test-services: the same suite on PostgreSQL + Redis (TEST_PROFILE=services)
test-services: install browser
	TEST_PROFILE=services $(BIN)/pytest tests -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: what the stack costs on the production profile (gunicorn 2x4, page/JSON also 4x4): pages, pipeline, API list, cache, login, queue, start-up (~10 min; BENCH_ARGS=--quick)
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
