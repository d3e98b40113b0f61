from dataclasses import dataclass

from eventbus.schema import EventType


@dataclass(frozen=True)
class ValueSet:
    value: str


@dataclass(frozen=True)
class Flaky:
    value: str


@dataclass(frozen=True)
class Slow:
    value: str


VALUE_SET = EventType("probe.value.set", ValueSet)
FLAKY = EventType("probe.flaky.happened", Flaky)
SLOW = EventType("probe.slow.happened", Slow)
RENDEZVOUS = EventType("probe.rendezvous.happened", ValueSet)
# Declared but never handled: the consumer must dead-letter it.
UNHANDLED = EventType("probe.unhandled.happened", ValueSet)
