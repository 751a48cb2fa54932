# Hearth — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
export FLASK_APP := wsgi

.PHONY: run install system-packages test test-unit test-integration test-e2e test-services browser lint format bench migrate seed clean messages \
	nginx-package cluster test-cluster drills

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## system-packages: Debian's Pango and a font, which WeasyPrint (the PDF reports, app/exports/renderers)
## loads at run time; installed (root, or sudo) only when dpkg says one is missing. Not Debian: a note.
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core
system-packages:
	@if ! command -v dpkg >/dev/null; then echo "Not Debian: install Pango ($(SYSTEM_PACKAGES)) for the PDF reports"; exit 0; fi; \
	missing=$$(for package in $(SYSTEM_PACKAGES); do dpkg -s $$package 2>/dev/null | grep -q "^Status: install ok installed" || echo $$package; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

install: $(STAMP) system-packages

## run: install, migrate, make sure an admin exists (DEMO=1: and demo data), then serve web + workers;
## once they are up, a box says where Hearth is and the first run's admin sign-in (also in
## instance/admin-credentials.txt, mode 0600). Ctrl-C stops everything and exits 0 (scripts/run.py).
run: install
	@mkdir -p instance
	$(FLASK) db upgrade
	$(FLASK) seed-admin --credentials-file instance/admin-credentials.txt
	@if [ "$(DEMO)" = 1 ]; then $(FLASK) demo seed; fi
	@PORT=$(PORT) $(BIN)/python scripts/run.py --port $(PORT) --credentials instance/admin-credentials.txt

migrate: install
	$(FLASK) db upgrade

seed: install
	$(FLASK) seed-admin

## messages: extract every marked string (babel.cfg) into translations/messages.pot, merge it into each
## language's translations/<lang>/LC_MESSAGES/messages.po, compile the .mo files. Commit the .po and .mo
## (a fresh clone serves translated pages with no build step); tests/unit/test_i18n.py fails when they lag.
## Idempotent: run again with no string changed, it changes no file. New language: see docs/architecture.md.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_ngettext:1,2 \
	  --add-location=file --sort-output --omit-header --no-wrap -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --ignore-pot-creation-date --no-fuzzy-matching --ignore-obsolete --no-wrap
	$(BIN)/pybabel compile -d translations --statistics

## browser: Debian's Chromium for the Playwright tests (never a downloaded browser)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

## nginx-package: Debian's nginx, the reverse proxy of `make cluster`, `make test-cluster` and `make drills`
## (they run it in the foreground with their own config on a loopback port, never the system service)
nginx-package:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; fi; }

## cluster: Hearth scaled out on this machine (cluster/): nginx on CLUSTER_PORT (default 8080; a PORT given
## on the command line or in the environment wins, `make cluster PORT=9000`) balancing two gunicorn instances,
## one consumer per queue per instance, PostgreSQL (database hearth_cluster) and Redis (started if down), S3
## (moto) and an SMTP sink; seeds the admin and prints where everything is. Ctrl-C stops it all and exits 0.
CLUSTER_PORT ?= 8080
cluster: install nginx-package
	$(BIN)/python -m cluster --port $(if $(filter command line environment,$(origin PORT)),$(PORT),$(CLUSTER_PORT))

## test-cluster: consistency across instances through nginx (tests/cluster; `make test` skips that folder)
test-cluster: install nginx-package
	$(BIN)/pytest tests/cluster -q

## drills: fault drills under load with figures (drills/; DRILLS_ARGS=--short: each fault once, ~5 min)
drills: install nginx-package
	$(BIN)/python -m drills $(DRILLS_ARGS)

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
