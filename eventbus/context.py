"""The event a handler is applying, so events it appends inherit its tracing ids."""

from contextlib import contextmanager
from contextvars import ContextVar

from eventbus.envelope import Envelope

_current_event: ContextVar[Envelope | None] = ContextVar("eventbus_current_event", default=None)


def current_event() -> Envelope | None:
    return _current_event.get()


@contextmanager
def handling(envelope: Envelope):
    token = _current_event.set(envelope)
    try:
        yield
    finally:
        _current_event.reset(token)
