"""Wake a following relay as soon as an outbox gets rows, with PostgreSQL LISTEN/NOTIFY.

An AFTER INSERT trigger on each outbox table sends NOTIFY on ``CHANNEL``
with the module's name. PostgreSQL delivers the notification when the
inserting transaction commits and drops it when the transaction rolls back,
so a relay woken by it always finds the committed rows. ``relay_outbox
--follow`` listens on a connection of its own and still polls every
``--interval`` seconds, which covers SQLite, a dropped listening connection
and a trigger that is missing.
"""

import contextlib
import logging
import re
import time

import psycopg
from django.db import connections

from eventbus.registry import BusModule

logger = logging.getLogger(__name__)

CHANNEL = "eventbus_outbox"
TRIGGER = "eventbus_outbox_notify"
# Module names become a trigger argument, a quoted SQL literal; they are
# Python identifiers in practice, and this keeps any quote out of the DDL.
MODULE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def install_notify_trigger(module: BusModule) -> bool:
    """Create or replace the NOTIFY trigger on ``module``'s outbox; return False unless on PostgreSQL."""
    connection = connections[module.alias]
    if connection.vendor != "postgresql":
        return False
    if not MODULE_NAME.match(module.name):
        raise ValueError(f"bus module name {module.name!r} must match {MODULE_NAME.pattern} to name a trigger")
    table = connection.ops.quote_name(module.outbox._meta.db_table)
    with connection.cursor() as cursor:
        # The function is created in the alias's schema (its search_path), so
        # each module owns its copy, as it owns its tables.
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_ARGV[0]); RETURN NULL; END $$"
        )
        cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")
        cursor.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}('{module.name}')"
        )
    return True


# Rows changed in an outbox before autovacuum vacuums and analyzes it again,
# whatever its size. Every relayed row turns from pending to published, and
# each such update leaves a dead entry in the partial index on pending rows
# until a vacuum removes it. With PostgreSQL's default (a fifth of the table),
# an outbox of 100,000 rows carried about as many dead entries, and each
# relay claim read them all: 100 ms instead of under 1 ms.
OUTBOX_AUTOVACUUM_ROWS = 2000


def tune_outbox_autovacuum(module: BusModule) -> bool:
    """Make autovacuum vacuum and analyze ``module``'s outbox every OUTBOX_AUTOVACUUM_ROWS changes.

    Return False unless on PostgreSQL.
    """
    connection = connections[module.alias]
    if connection.vendor != "postgresql":
        return False
    table = connection.ops.quote_name(module.outbox._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0, "
            f"autovacuum_vacuum_threshold = {OUTBOX_AUTOVACUUM_ROWS}, autovacuum_analyze_scale_factor = 0, "
            f"autovacuum_analyze_threshold = {OUTBOX_AUTOVACUUM_ROWS})"
        )
    return True


class OutboxListener:
    """A dedicated autocommit connection that LISTENs for outbox inserts of ``modules``.

    ``wait(timeout)`` returns as soon as one of them commits new rows, or
    after ``timeout`` seconds. A broken connection is logged and opened again
    on the next wait; meanwhile ``wait`` only sleeps.
    """

    def __init__(self, modules: list[BusModule]):
        self._modules = {module.name for module in modules}
        # NOTIFY reaches the listeners of one database, whatever their schema,
        # so one connection per distinct database is enough.
        by_database: dict[str, str] = {}
        for module in modules:
            if connections[module.alias].vendor == "postgresql":
                by_database.setdefault(_database_key(module.alias), module.alias)
        self._aliases = list(by_database.values())
        self._connections: dict[str, psycopg.Connection] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._aliases)

    def wait(self, timeout: float) -> set[str]:
        """Block up to ``timeout`` seconds for a notification; return the modules notified.

        NOTE: with modules in several databases only the first database's
        notifications end the wait early; the others are read when it ends.
        """
        self._connect()
        if not self._connections:
            time.sleep(timeout)
            return set()

        notified: set[str] = set()
        for position, alias in enumerate(list(self._connections)):
            connection = self._connections[alias]
            try:
                if position == 0:
                    for notify in connection.notifies(timeout=timeout, stop_after=1):
                        notified.add(notify.payload)
                # Read what else is queued without waiting.
                for notify in connection.notifies(timeout=0):
                    notified.add(notify.payload)
            except psycopg.Error as error:
                logger.warning("Outbox listener on %s failed, polling until it reconnects: %r", alias, error)
                self._discard(alias)
        return notified & self._modules

    def close(self) -> None:
        for alias in list(self._connections):
            self._discard(alias)

    def listen(self) -> None:
        """Start listening; call before the first relay pass so no insert after it goes unnoticed."""
        self._connect()

    def _connect(self) -> None:
        for alias in self._aliases:
            if alias in self._connections:
                continue
            wrapper = connections.create_connection(alias)
            try:
                connection = wrapper.get_new_connection(wrapper.get_connection_params())
                connection.autocommit = True
                connection.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error as error:
                logger.warning("Cannot listen for outbox inserts on %s, polling instead: %r", alias, error)
                continue
            self._connections[alias] = connection

    def _discard(self, alias: str) -> None:
        connection = self._connections.pop(alias, None)
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()


def _database_key(alias: str) -> str:
    settings = connections[alias].settings_dict
    return f"{settings.get('HOST')}:{settings.get('PORT')}/{settings.get('NAME')}"
