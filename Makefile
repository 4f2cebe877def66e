# anbar — the two commands are `make demo` and `make test`; everything else supports them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.anbar-installed

.PHONY: demo test stop install lint format dbt-parse docs clean bench redis-server

$(STAMP): pyproject.toml constraints.txt
	@echo "[anbar] creating $(VENV) and installing the pinned dependencies (about a minute) ..."
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "anbar needs Python 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --progress-bar off -c constraints.txt -e '.[dev]'
	@touch $@
	@echo "[anbar] dependencies installed"

install: $(STAMP)

# The demo times its stages from here, the install of the virtual environment included (anbar.devenv.progress).
demo:
	@started=$$(date +%s.%N) && $(MAKE) --no-print-directory install && \
	  ANBAR_DEMO_STARTED_AT=$$started $(BIN)/anbar demo up

test: $(STAMP) dbt-parse redis-server
	$(BIN)/pytest

# The Celery test layer (tests/celery) starts a real Redis as the broker: Debian's redis-server, installed here
# when it is absent (as root, else through sudo). Only the binary is used: the tests start their own server.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "[anbar] installing Debian's redis-server (the broker of the Celery test layer) ..."; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }

# Cosmos renders the warehouse DAG from dbt's manifest, so DAG parsing never runs dbt.
dbt-parse: $(STAMP)
	@$(BIN)/python -m anbar.dbt ensure-manifest

# make test runs on TEST_WORKERS pytest-xdist workers, each with a PostgreSQL, Airflow home and simulators of its
# own (tests/conftest.py); a test module runs whole on one worker (its module fixtures set up once), the modules
# in collection order, slow dbt and end-to-end ones first. TEST_WORKERS=0: serial. (Not --dist loadgroup:
# xdist 3.8 marks a group by renaming the test's node id, which pytest 9.2 no longer lets it do.)
TEST_WORKERS ?= 2
test: export PYTEST_ADDOPTS := $(PYTEST_ADDOPTS) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The benchmarks of issue 7 (bench/run_all.py): a 10,000,000-row ingest against a bare COPY and the naive
# path, the DAG parse of a 20 x 5 registry, dbt month 24 against month 2; each ratio against its target.
# About 25 minutes on 2 cores; BENCH_ARGS=--quick for 200,000 rows. Results: bench/RESULTS.md.
BENCH_ARGS ?=
bench: $(STAMP) dbt-parse
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# dbt docs of the demo warehouse (models, columns, lineage, tests) at http://127.0.0.1:8081.
DOCS_PORT ?= 8081
docs: $(STAMP)
	@test -f .anbar/demo/anbar.env || { echo "[anbar] run make demo first: the docs describe the demo warehouse"; exit 1; }
	set -a && . .anbar/demo/anbar.env && set +a && \
	  $(BIN)/dbt docs generate --project-dir dbt_project --profiles-dir dbt_project \
	    --target-path $(CURDIR)/.anbar/dbt-docs --log-path $(CURDIR)/.anbar/dbt-docs/logs && \
	  $(BIN)/dbt docs serve --project-dir dbt_project --profiles-dir dbt_project \
	    --target-path $(CURDIR)/.anbar/dbt-docs --host 127.0.0.1 --port $(DOCS_PORT) --no-browser

stop:
	@if [ -x $(BIN)/anbar ]; then $(BIN)/anbar demo down; else echo "[anbar] nothing to stop"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint dbt_project/models

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: stop
	rm -rf .anbar dbt_project/target dbt_project/logs
