"""The event a handler is applying, and work its handlers leave for the end of its transaction.

Events a handler appends inherit the tracing ids of the event it applies.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from eventbus.envelope import Envelope

_current_event: ContextVar[Envelope | None] = ContextVar("eventbus_current_event", default=None)
# The work deferred in the current delivery: each callback with its items, in order of first use.
_deferred: ContextVar[dict[Callable, list] | None] = ContextVar("eventbus_deferred", default=None)


def current_event() -> Envelope | None:
    return _current_event.get()


@contextmanager
def handling(envelope: Envelope):
    token = _current_event.set(envelope)
    try:
        yield
    finally:
        _current_event.reset(token)


def defer_to_delivery_end(callback: Callable[[list], None], item: Any) -> None:
    """Call ``callback`` with ``item`` and every other item deferred to it, once the delivery's handlers ran.

    The call happens inside the delivery's transaction, after the handler
    of every message of the delivery (one message or a group) returned, so
    work that needs a contended lock can take it for the whole group at the
    end. Outside a delivery, ``callback([item])`` runs at once. An error
    from the callback rolls the delivery back like a handler error.
    """
    deferred = _deferred.get()
    if deferred is None:
        callback([item])
        return
    deferred.setdefault(callback, []).append(item)


@contextmanager
def deferred_work() -> Iterator[None]:
    """Collect the work handlers defer in the block and run it when the block ends without an error."""
    deferred: dict[Callable, list] = {}
    token = _deferred.set(deferred)
    try:
        yield
        while deferred:
            callback = next(iter(deferred))
            callback(deferred.pop(callback))
    finally:
        _deferred.reset(token)
