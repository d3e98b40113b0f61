"""Build ``DATABASES`` from ``DATABASE_URL`` and ``DATABASE_URL_<MODULE>``."""

import sqlite3
from collections.abc import Mapping
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from billing.modules import DOMAIN_MODULES, schema_for_alias

# Seconds a connection is kept between requests; long-running relays and
# consumers check health before reuse (CONN_HEALTH_CHECKS).
CONN_MAX_AGE = 60

# SQLite waits this many seconds for another process's write lock, which the
# embedded setup needs when a relay and a web process write at once.
SQLITE_TIMEOUT_SECONDS = 30
# INSERT/UPDATE ... RETURNING, which the services use, came in SQLite 3.35.
MIN_SQLITE_VERSION = (3, 35)


def build_databases(environ: Mapping[str, str], data_dir: Path) -> dict[str, dict]:
    """Return one database alias per module plus ``default``.

    Without ``DATABASE_URL`` every alias is an SQLite file under ``data_dir``.
    With it, every alias shares that database, each module in its own
    PostgreSQL schema, unless ``DATABASE_URL_<MODULE>`` points it elsewhere.
    """
    test_prefix = environ.get("TEST_DATABASE_PREFIX", "test_billing")
    base_url = environ.get("DATABASE_URL", "").strip()
    databases = {}

    for alias in ("default", *DOMAIN_MODULES):
        url = environ.get(f"DATABASE_URL_{alias.upper()}", "").strip() or base_url
        if url:
            config = _parse_url(url, alias)
        else:
            config = _sqlite_config(data_dir / f"{alias}.sqlite3")

        if config["ENGINE"] == "django.db.backends.postgresql":
            config.setdefault("OPTIONS", {})["options"] = f"-c search_path={schema_for_alias(alias)}"
            # Each alias gets its own test database: Django migrates only one
            # alias per distinct test database, and each module owns its tables.
            config["TEST"] = {"NAME": f"{test_prefix}_{alias}"}
        databases[alias] = config

    return databases


def _parse_url(url: str, alias: str) -> dict:
    variable = "DATABASE_URL" if alias == "default" else f"DATABASE_URL_{alias.upper()}"
    try:
        config = dj_database_url.parse(url, conn_max_age=CONN_MAX_AGE, conn_health_checks=True)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"{variable}={url!r} is not a database URL ({error}); "
            "use postgres://USER@HOST:PORT/NAME or sqlite:///PATH"
        ) from error

    if config["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
        raise ImproperlyConfigured(
            f"{variable} uses {config['ENGINE']}, which this project does not support; "
            "use PostgreSQL (postgres://...) or SQLite (sqlite:///...)"
        )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        return _sqlite_config(Path(config["NAME"]))
    return config


def _sqlite_config(path: Path) -> dict:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise ImproperlyConfigured(
            f"SQLite {sqlite3.sqlite_version} is too old; the embedded setup needs "
            f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer for UPDATE ... RETURNING. Use a Python "
            "built with a newer SQLite, or set DATABASE_URL to a PostgreSQL server"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": SQLITE_TIMEOUT_SECONDS,
            # Take the write lock at BEGIN, so two writers queue instead of
            # failing with "database is locked" on upgrade from a read lock.
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
