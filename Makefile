# Two entry points: `make demo` (embedded: SQLite and the in-process bus) and
# `make test` (PostgreSQL, NATS JetStream and Redis, started if missing).

PYTHON_BOOTSTRAP ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# Pytest arguments; `make test PYTEST_ARGS="-k relay"` narrows a run.
PYTEST_ARGS ?=
# Chaos soak arguments; `make chaos CHAOS_ARGS="--duration 600 --seed 42"`.
CHAOS_ARGS ?=
# Benchmark arguments; `make bench BENCH_ARGS="--subscriptions 100000"`.
BENCH_ARGS ?=

# Address the web process of `make stack` listens on.
STACK_WEB_ADDRESS ?= 127.0.0.1:8000

.PHONY: install demo test lint check-imports clean stack chaos bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON_BOOTSTRAP) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required; set PYTHON_BOOTSTRAP=/path/to/python3.11")'
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(PYTHON) manage.py demo

lint: install
	$(VENV)/bin/ruff check .

check-imports: install
	$(VENV)/bin/lint-imports

test: install lint check-imports
	$(PYTHON) scripts/testenv.py -- $(PYTHON) -m pytest $(PYTEST_ARGS)

# About ten minutes of bill runs while NATS restarts, consumers and relays are
# killed and database connections cut; exits 1 on any invariant violation.
# Options: .venv/bin/python scripts/chaos.py --help. See docs/reliability.md.
chaos: install
	$(PYTHON) scripts/testenv.py -- $(PYTHON) scripts/chaos.py $(CHAOS_ARGS)

# Every benchmark in bench/, with the raw limits of PostgreSQL and JetStream
# measured in the same run; appends one dated record to docs/benchmarks.md.
# Options: .venv/bin/python bench/run.py --help. See docs/benchmarks.md.
bench: $(VENV)/.bench-installed
	$(PYTHON) scripts/testenv.py -- $(PYTHON) bench/run.py $(BENCH_ARGS)

$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(VENV)/bin/pip install --quiet -e ".[dev,bench]"
	touch $@

# Every process of docker-compose.yml without Docker (Procfile, run by honcho),
# against the PostgreSQL, NATS 2.10+ and Redis at DATABASE_URL, NATS_URL and
# CELERY_BROKER_URL; `scripts/testenv.py -- make stack` provides them. All
# processes write metrics to var/prometheus, so the web's /metrics sums them.
stack: install
	rm -rf var/prometheus && mkdir -p var/prometheus
	EVENT_BUS=nats $(PYTHON) manage.py migrate
	EVENT_BUS=nats $(PYTHON) manage.py bus ensure
	EVENT_BUS=nats PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus STACK_WEB_ADDRESS=$(STACK_WEB_ADDRESS) \
		PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/honcho start --procfile Procfile

clean:
	rm -rf $(VENV) var .pytest_cache
