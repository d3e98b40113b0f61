"""One relay at a time per module outbox, across processes and machines."""

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections


@contextmanager
def relay_lock(alias: str, module: str) -> Iterator[bool]:
    """Yield True when this process now owns ``module``'s relay, False when another does.

    PostgreSQL: a session advisory lock, which the server releases by itself if
    the holder's connection dies. SQLite: an exclusive ``flock`` on a file next
    to the database, released by the kernel if the holder's process dies.
    """
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with _advisory_lock(connection, f"eventbus.relay.{module}") as acquired:
            yield acquired
    else:
        with _file_lock(connection.settings_dict["NAME"], module) as acquired:
            yield acquired


def _lock_key(name: str) -> int:
    # pg_try_advisory_lock takes a signed 64-bit key.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def _advisory_lock(connection, name: str) -> Iterator[bool]:
    key = _lock_key(name)
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired and connection.is_usable():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


@contextmanager
def _file_lock(database_name: str, module: str) -> Iterator[bool]:
    database_name = str(database_name)
    if database_name.startswith(("file:", ":memory:")) or not database_name:
        # In-memory test databases live in one process: lock a per-name temp file.
        digest = hashlib.sha256(database_name.encode()).hexdigest()[:16]
        path = os.path.join(tempfile.gettempdir(), f"eventbus-relay-{module}-{digest}.lock")
    else:
        path = f"{database_name}.relay.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
