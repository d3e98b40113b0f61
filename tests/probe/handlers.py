import threading
import time

from eventbus.registry import HandlerRegistry
from tests.probe import events
from tests.probe.models import ProbeCounter, ProbeEffect, ProbeSwitch

registry = HandlerRegistry()
ALIAS = "notifications"


def _record(envelope, payload) -> None:
    ProbeEffect.objects.using(ALIAS).create(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        aggregate_id=envelope.aggregate_id,
        aggregate_version=envelope.aggregate_version,
        value=payload.value,
    )


@registry.on(events.VALUE_SET)
def handle_value_set(envelope, payload) -> None:
    _record(envelope, payload)
    counter = ProbeCounter.objects.using(ALIAS).select_for_update().filter(aggregate_id=envelope.aggregate_id).first()
    if counter is None:
        ProbeCounter.objects.using(ALIAS).create(
            aggregate_id=envelope.aggregate_id, version=envelope.aggregate_version, value=payload.value
        )
    elif envelope.aggregate_version > counter.version:
        counter.version = envelope.aggregate_version
        counter.value = payload.value
        counter.save(update_fields=["version", "value"])
    # An older version arriving late (a redelivery) is recorded but does not
    # overwrite newer state.


@registry.on(events.FLAKY)
def handle_flaky(envelope, payload) -> None:
    if ProbeSwitch.objects.using(ALIAS).filter(name="flaky-fails").exists():
        raise RuntimeError(f"probe handler failing on purpose for {payload.value}")
    _record(envelope, payload)


@registry.on(events.SLOW)
def handle_slow(envelope, payload) -> None:
    switch = ProbeSwitch.objects.using(ALIAS).filter(name="slow-seconds").first()
    time.sleep(switch.seconds if switch else 0)
    _record(envelope, payload)


# Two RENDEZVOUS handlers finish only when they run at the same time, on two
# worker threads of one process. Otherwise the barrier times out and raises.
rendezvous = threading.Barrier(2, timeout=10)


@registry.on(events.RENDEZVOUS)
def handle_rendezvous(envelope, payload) -> None:
    rendezvous.wait()
    _record(envelope, payload)
