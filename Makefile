# Two entry points: `make demo` (embedded: SQLite and the in-process bus) and
# `make test` (PostgreSQL, NATS JetStream and Redis, started if missing).

PYTHON_BOOTSTRAP ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# Pytest arguments; `make test PYTEST_ARGS="-k relay"` narrows a run.
PYTEST_ARGS ?=

.PHONY: install demo test lint check-imports clean

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

clean:
	rm -rf $(VENV) var .pytest_cache
