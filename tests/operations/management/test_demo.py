"""The embedded demo: refused elsewhere, and settling end to end in a fresh data folder."""

import json
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from billing.tenancy.selectors import tenant_ids
from tests.support import ROOT

# Seconds one demo run may take; a run of this size takes a few seconds.
DEMO_TIMEOUT_SECONDS = 300


@pytest.mark.django_db(databases="__all__")
def test_demo_refuses_databases_that_are_not_embedded():
    with pytest.raises(CommandError) as raised:
        call_command("demo")

    problems = "; ".join(
        f"database alias {alias!r} uses django.db.backends.postgresql, not SQLite"
        for alias in ("default", "subscriptions", "ar", "payments", "notifications")
    )
    assert str(raised.value) == (
        "the demo writes demo data and runs every step in this process, so it runs only on the "
        f"embedded setup, but {problems}. Unset DATABASE_URL and EVENT_BUS, or pass --force to run it "
        "here anyway"
    )
    assert tenant_ids() == []


def embedded_environment(data_dir) -> dict:
    """The test process's environment less every setting that points away from the embedded setup."""
    removed = ("DATABASE_URL", "EVENT_BUS", "EMAIL_URL", "TEST_DATABASE_PREFIX", "BILLING_ON_TEST_DATABASES")
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in removed and not name.startswith("DATABASE_URL_")
    }
    environment["DJANGO_SETTINGS_MODULE"] = "billing.settings"
    environment["BILLING_DATA_DIR"] = str(data_dir)
    return environment


def run_demo(data_dir) -> dict:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "demo", "--json", "--tenants", "2", "--customers", "12"],
        cwd=ROOT, env=embedded_environment(data_dir), capture_output=True, text=True,
        timeout=DEMO_TIMEOUT_SECONDS, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


@pytest.mark.e2e
def test_demo_settles_on_embedded_setup(tmp_path):
    first = run_demo(tmp_path)

    status = first["status"]
    assert first["settled"] is True
    assert first["periods_billed"] == 24
    assert status["invoices"]["paid"]["USD"]["count"] > 0
    assert status["invoices"]["paid"]["EUR"]["count"] > 0
    assert status["payments"]["succeeded"] > 0
    assert status["payments"]["retry_scheduled"] == 0
    assert status["emails_sent"] > 0
    assert status["outbox_pending"] == {"subscriptions": 0, "ar": 0, "payments": 0, "notifications": 0}
    assert status["dead_letters"] == {"subscriptions": 0, "ar": 0, "payments": 0, "notifications": 0}
    assert sorted(path.name for path in (tmp_path / "db").iterdir() if path.suffix == ".sqlite3") == [
        "ar.sqlite3", "default.sqlite3", "notifications.sqlite3", "payments.sqlite3", "subscriptions.sqlite3",
    ]
    assert len(list((tmp_path / "mail").iterdir())) > 0

    second = run_demo(tmp_path)

    assert second["settled"] is True
    assert second["periods_billed"] == 0
    assert second["status"] == status
