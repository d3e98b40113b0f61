"""Work that runs once a transaction commits, gathered into one call per transaction.

A handler that charges a payment or sends an email must do it after its
transaction commits (``transaction.on_commit``), never inside it. When the
consumer applies a group of messages in one transaction, each handler would
register its own callback, and each callback would open its own
transactions. ``on_commit_collect`` gathers the items of one callback
function into a single call instead, so the work after the commit can share
its transactions too.
"""

from collections.abc import Callable
from typing import Any

from django.db import transaction


class _Collected:
    """One registered on-commit callback and the items gathered for it so far."""

    def __init__(self, callback: Callable[[list], None]):
        self.callback = callback
        self.items: list = []
        # Django logs a failing robust callback by its __qualname__.
        self.__qualname__ = f"{getattr(callback, '__qualname__', repr(callback))} (collected)"

    def __call__(self) -> None:
        items, self.items = self.items, []
        self.callback(items)


def on_commit_collect(callback: Callable[[list], None], item: Any, *, using: str, robust: bool = False) -> None:
    """Call ``callback`` with ``item`` and every other item collected for it once the transaction commits.

    Items collected under the same savepoints share one call, in the order they
    were collected. An item collected inside a savepoint that rolls back is
    dropped with that savepoint, as Django drops ``on_commit`` callbacks.
    Outside a transaction, ``callback([item])`` runs at once. ``robust`` is
    passed to ``transaction.on_commit``: a robust callback that raises is
    logged and the other callbacks still run.
    """
    connection = transaction.get_connection(using)
    if connection.in_atomic_block:
        savepoints = set(connection.savepoint_ids)
        for registered_savepoints, registered, _ in reversed(connection.run_on_commit):
            if (
                isinstance(registered, _Collected)
                and registered.callback is callback
                and registered_savepoints == savepoints
            ):
                registered.items.append(item)
                return
    collected = _Collected(callback)
    collected.items.append(item)
    transaction.on_commit(collected, using=using, robust=robust)
