# The front door. Every target works on a fresh machine: it (re)builds the virtualenv when
# pyproject.toml changes and installs Debian's chromium and ffmpeg when they are missing.
VENV ?= .venv
PY := $(VENV)/bin/python
export SUBMISSIONS_HOME ?= $(CURDIR)/var
export PLAYWRIGHT_BROWSERS_PATH ?= $(CURDIR)/var/pw-browsers
export SUBMISSIONS_TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
# Test worker processes for `make test` (pytest-xdist; `auto` for one per core, 0 for none).
TEST_WORKERS ?= 2
BENCH_ARGS ?=

.PHONY: install run ui up status console screenshots test bench soak soak-scheduler soak-scheduler-quick lint format clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed
	bash scripts/install-system-deps.sh $(PY)

## run: the main job on the embedded default (SQLite, local disk, sandbox portals, embedded CRM)
run: install
	$(VENV)/bin/submissions run

## ui: the sandbox portals, the Dagster UI at http://127.0.0.1:3000 and the ops console at
## http://127.0.0.1:8710 (Ctrl-C stops all; add an account first: submissions console-user NAME)
ui: install
	$(VENV)/bin/submissions console & console=$$!; \
	trap 'kill $$console 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/submissions ui

## console: the ops console alone (evidence, review queue) at http://127.0.0.1:8710
console: install
	$(VENV)/bin/submissions console

## screenshots: PNGs of the console's main pages for the README, in docs/console/ (the sandbox,
## a small demo night through the real runner, the console, Chromium's headless shell; ~1 min)
screenshots: install
	$(PY) scripts/screenshots.py

## up: the production shape on one machine: dagster-webserver (http://127.0.0.1:3000),
## dagster-daemon and a code server on PostgreSQL (started if down), job store on the same
## server, sandbox portals
up: install
	bash scripts/ensure-postgres.sh
	$(VENV)/bin/submissions up

## status: the daemon's heartbeats (exit 1 when a daemon thread stopped beating)
status: install
	$(VENV)/bin/submissions status

## test: the whole suite, the 3-minute scheduler soak included, in TEST_WORKERS processes
## (needs PostgreSQL at SUBMISSIONS_TEST_PG_URL; fails without it)
test: install
	bash scripts/ensure-postgres.sh
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

## soak-scheduler-quick: the 3-minute scheduler soak alone (part of `make test` too)
soak-scheduler-quick: install
	bash scripts/ensure-postgres.sh
	$(PY) -m pytest -m scheduler_soak $(PYTEST_ARGS)

## soak-scheduler: the scheduler soak under the daemon (SOAK_MINUTES=60 by default)
SOAK_MINUTES ?= 60
soak-scheduler: install
	bash scripts/ensure-postgres.sh
	$(VENV)/bin/submissions soak --daemon --minutes $(SOAK_MINUTES)

## bench: the benchmark against raw-Playwright baselines, quick (~7 min on 2 quiet cores);
## BENCH_ARGS=--full for the whole matrix (2-2.5 h). Writes var/bench/latest.{json,png,md}
bench: install
	$(VENV)/bin/submissions bench $(BENCH_ARGS)

## soak: 1,000 jobs through the pipeline against faulty portals (SOAK_JOBS=N to change);
## SOAK_DB=postgres: the fleet soak, SOAK_WORKERS worker processes killed every few minutes
SOAK_JOBS ?= 1000
SOAK_DB ?= sqlite
SOAK_WORKERS ?= 3
soak: install
	$(VENV)/bin/submissions soak --jobs $(SOAK_JOBS) --db $(SOAK_DB) --workers $(SOAK_WORKERS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
