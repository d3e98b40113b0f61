"""Pick the bus backend named by ``EVENT_BUS``; one instance per process."""

import os
import threading

from eventbus.backends.base import EventBus, OutgoingMessage, PublishOutcome
from eventbus.conf import bus_settings

__all__ = ["EventBus", "OutgoingMessage", "PublishOutcome", "get_bus", "reset_bus"]

_lock = threading.Lock()
_bus: EventBus | None = None
_bus_pid: int | None = None


def get_bus() -> EventBus:
    """Return this process's bus, creating it on first use (and again after a fork)."""
    global _bus, _bus_pid
    with _lock:
        if _bus is None or _bus_pid != os.getpid():
            _bus = _create(bus_settings().backend)
            _bus_pid = os.getpid()
        return _bus


def reset_bus() -> None:
    """Close and forget this process's bus; tests use it after changing settings."""
    global _bus
    with _lock:
        if _bus is not None and _bus_pid == os.getpid():
            _bus.close()
        _bus = None


def _create(backend: str) -> EventBus:
    if backend == "nats":
        from eventbus.backends.nats import NatsEventBus

        return NatsEventBus(bus_settings())
    from eventbus.backends.inprocess import InProcessEventBus

    return InProcessEventBus(bus_settings())
