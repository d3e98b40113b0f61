import pytest
from django.core.exceptions import ImproperlyConfigured

from billing.settings import databases


def test_old_sqlite_named_with_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(databases.sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(databases.sqlite3, "sqlite_version", "3.31.1")

    with pytest.raises(ImproperlyConfigured) as raised:
        databases._sqlite_config(tmp_path / "default.sqlite3")

    assert str(raised.value) == (
        "SQLite 3.31.1 is too old; the embedded setup needs 3.35 or newer for UPDATE ... RETURNING. "
        "Use a Python built with a newer SQLite, or set DATABASE_URL to a PostgreSQL server"
    )


def test_current_sqlite_accepted(tmp_path):
    config = databases._sqlite_config(tmp_path / "default.sqlite3")

    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "default.sqlite3")
