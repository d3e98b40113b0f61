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
_deferred: ContextVar[list[tuple[Callable, Any]] | None] = ContextVar("eventbus_deferred", default=None)


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
    """Call ``callback`` with ``item`` and the items deferred to it next to it, once the delivery's handlers ran.

    The call happens inside the delivery's transaction, after the handler
    of every message of the delivery (one message or a group) returned, so
    work that needs a contended lock can take it for the whole group at the
    end. Deferred items run in the order they were deferred, and
    consecutive items of one callback go to one call, so a group's work
    keeps its messages' order. Outside a delivery, ``callback([item])``
    runs at once. An error from the callback rolls the delivery back like
    a handler error.
    """
    deferred = _deferred.get()
    if deferred is None:
        callback([item])
        return
    deferred.append((callback, item))


@contextmanager
def deferred_work() -> Iterator[None]:
    """Collect the work handlers defer in the block and run it when the block ends without an error."""
    deferred: list[tuple[Callable, Any]] = []
    token = _deferred.set(deferred)
    try:
        yield
        while deferred:
            callback = deferred[0][0]
            count = 1
            while count < len(deferred) and deferred[count][0] == callback:
                count += 1
            items = [item for _, item in deferred[:count]]
            del deferred[:count]
            # Work the callback defers in turn is appended, and runs after the work deferred before it.
            callback(items)
    finally:
        _deferred.reset(token)
