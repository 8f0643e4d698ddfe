# Every target installs what it needs into .venv by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
export HOST PORT

.PHONY: install run run-scaled test test-fast test-unit test-integration test-e2e lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## serve the API on http://$(HOST):$(PORT) (SQLite under ./var by default)
	$(BIN)/smartscheduler serve --host $(HOST) --port $(PORT)

run-scaled: $(STAMP)  ## PostgreSQL + Redis: 2 HTTP workers, a projection worker, a relay
	SMARTSCHEDULER_DATABASE_URL=$${SMARTSCHEDULER_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
	SMARTSCHEDULER_REDIS_URL=$${SMARTSCHEDULER_REDIS_URL:-redis://127.0.0.1:6379/0} \
	SCALED_PORT=$(PORT) $(BIN)/honcho -f Procfile.scaled start

JOBS ?= auto

test: $(STAMP)  ## the whole suite, on every core (JOBS=0 runs it in one process)
	$(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)

test-fast: $(STAMP)  ## skip the slow tests
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow" $(PYTEST_ARGS)

test-unit: $(STAMP)  ## the domain alone: no database, no server
	$(BIN)/python -m pytest -n $(JOBS) tests/domain $(PYTEST_ARGS)

test-integration: $(STAMP)  ## application, read models, HTTP and CLI on SQLite and PostgreSQL
	$(BIN)/python -m pytest -n $(JOBS) tests/application tests/projections tests/web tests/cli tests/test_layers.py $(PYTEST_ARGS)

test-e2e: $(STAMP)  ## real server processes, outages, the console in Chromium
	$(BIN)/python -m pytest -n $(JOBS) tests/e2e $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check domain application projections web smartscheduler tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format domain application projections web smartscheduler tests bench

bench: $(STAMP)  ## print throughput figures against same-run baselines
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null 2>&1; } \
		|| echo "wrk is missing (apt-get install wrk): the serving benchmark will be skipped"
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
