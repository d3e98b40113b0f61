"""Session-wide checks and fixtures shared by every app's tests.

The suite needs a real PostgreSQL and a JetStream nats-server. `make test`
provides both through scripts/testenv.py; a run without them stops at once
with instructions instead of skipping tests.
"""

import os

import pytest


def pytest_configure(config):
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        pytest.exit(
            "the tests need PostgreSQL and NATS JetStream: run `make test`, or run pytest through "
            "`scripts/testenv.py -- pytest ...`, which starts what is missing "
            f"(DATABASE_URL is {database_url or 'not set'})",
            returncode=3,
        )
    if not os.environ.get("NATS_URL"):
        pytest.exit("NATS_URL is not set: run pytest through `scripts/testenv.py -- pytest ...`", returncode=3)
