#!/usr/bin/env python
"""Django's command-line utility for this billing platform."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError, ProgrammingError, connections

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A bad setting (usually an environment variable) is the operator's
        # to fix; its message names the value and the fix, so no traceback.
        sys.stderr.write(f"Configuration error: {error}\n")
        sys.exit(2)
    except (OperationalError, ProgrammingError) as error:
        if _missing_table(error):
            sys.stderr.write(
                f"Database error: {str(error).strip().splitlines()[0]}\n"
                "The tables do not exist yet; run `manage.py migrate` first.\n"
            )
            sys.exit(2)
        if isinstance(error, ProgrammingError):
            raise
        # No connection opened, so the database could not be reached at all;
        # an error on an open connection keeps its traceback.
        if any(connections[alias].connection is not None for alias in connections):
            raise
        sys.stderr.write(
            f"Database error: {str(error).strip()}\nCheck that DATABASE_URL names a running server, "
            "an existing role and an existing database.\n"
        )
        sys.exit(2)


def _missing_table(error: Exception) -> bool:
    """Return True when ``error`` reports a missing table, on PostgreSQL or SQLite."""
    cause = getattr(error.__cause__, "sqlstate", None)
    return cause == "42P01" or str(error).startswith("no such table")


if __name__ == "__main__":
    main()
