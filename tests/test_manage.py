"""manage.py itself: how it reports a bad setting or an unusable database."""

import os
import subprocess
import sys

from tests.support import ROOT


def test_bad_setting_one_line_error():
    environment = {**os.environ, "EVENTBUS_CONSUMER_GROUP_SIZE": "abc"}

    finished = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode == 2
    assert finished.stderr == (
        "Configuration error: EVENTBUS_CONSUMER_GROUP_SIZE='abc' is not a whole number; set it to one, "
        "such as 20, or unset it for the default (20)\n"
    )
    assert "Traceback" not in finished.stdout + finished.stderr


def test_unreachable_database_one_line_error():
    environment = {**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:5432/no_such_database"}
    environment = {name: value for name, value in environment.items() if not name.startswith("DATABASE_URL_")}

    finished = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "billing_status"],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode == 2
    assert finished.stderr.startswith("Database error: ")
    assert 'role "nobody" does not exist' in finished.stderr
    assert finished.stderr.endswith(
        "Check that DATABASE_URL names a running server, an existing role and an existing database.\n"
    )
    assert "Traceback" not in finished.stdout + finished.stderr


def test_unmigrated_database_names_migrate(tmp_path):
    environment = {
        name: value for name, value in os.environ.items()
        if not name.startswith("DATABASE_URL")
    }
    environment["BILLING_DATA_DIR"] = str(tmp_path)

    finished = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "billing_status"],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode == 2
    assert finished.stderr == (
        "Database error: no such table: subscriptions_outboxevent\n"
        "The tables do not exist yet; run `manage.py migrate` first.\n"
    )
