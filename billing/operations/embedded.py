"""Tell whether this process runs the embedded setup: SQLite files and the in-process bus."""

from django.conf import settings

from eventbus.conf import bus_settings

SQLITE_ENGINE = "django.db.backends.sqlite3"


def embedded_setup_problems() -> list[str]:
    """Return why the configured databases and bus are not the embedded setup; empty when they are."""
    problems = []
    for alias, config in settings.DATABASES.items():
        if config["ENGINE"] != SQLITE_ENGINE:
            problems.append(f"database alias {alias!r} uses {config['ENGINE']}, not SQLite")
    backend = bus_settings().backend
    if backend != "inprocess":
        problems.append(f"the event bus is {backend!r}, not 'inprocess' (EVENT_BUS)")
    return problems
