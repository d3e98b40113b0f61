"""The modules on the bus: their database alias, concrete tables and handlers.

Each domain app registers itself from ``AppConfig.ready()``; the relay, the
consumers and the commands find everything here, so this package never
imports a domain module.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventbus.envelope import Envelope
from eventbus.errors import UnknownModule
from eventbus.schema import EventType

Handler = Callable[[Envelope, Any], None]


@dataclass(frozen=True)
class Subscription:
    event_type: EventType
    handler: Handler


class HandlerRegistry:
    """The event types one module consumes and the function that applies each."""

    def __init__(self):
        self._subscriptions: dict[str, Subscription] = {}

    def on(self, event_type: EventType) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if event_type.name in self._subscriptions:
                raise ValueError(f"{event_type.name} already has a handler in this module")
            self._subscriptions[event_type.name] = Subscription(event_type, handler)
            return handler

        return register

    def get(self, event_type_name: str) -> Subscription | None:
        return self._subscriptions.get(event_type_name)

    def event_types(self) -> list[EventType]:
        return [subscription.event_type for subscription in self._subscriptions.values()]

    def producers(self) -> list[str]:
        return sorted({event_type.producer for event_type in self.event_types()})


@dataclass
class BusModule:
    """A module's place on the bus."""

    name: str
    alias: str
    outbox: type
    inbox: type
    dead_letters: type
    handlers: HandlerRegistry = field(default_factory=HandlerRegistry)

    @property
    def stream(self) -> str:
        return stream_name(self.name)

    @property
    def consumer_name(self) -> str:
        """Durable consumer name this module uses on every stream it reads."""
        return self.name

    def filter_subjects(self, producer: str) -> list[str]:
        return sorted(
            f"{producer}.events.{event_type.name}"
            for event_type in self.handlers.event_types()
            if event_type.producer == producer
        )


def stream_name(module_name: str) -> str:
    return f"{module_name.upper()}_EVENTS"


_modules: dict[str, BusModule] = {}


def register_module(module: BusModule) -> None:
    _modules[module.name] = module


def get_module(name: str) -> BusModule:
    try:
        return _modules[name]
    except KeyError:
        known = ", ".join(sorted(_modules)) or "none"
        raise UnknownModule(f"unknown bus module {name!r}; registered modules: {known}") from None


def all_modules() -> list[BusModule]:
    return list(_modules.values())
