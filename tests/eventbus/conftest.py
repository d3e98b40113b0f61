import asyncio
import os
import threading
from contextlib import contextmanager

import pytest
from django.db import connections, transaction
from django.utils import timezone

from eventbus.backends import get_bus, reset_bus
from eventbus.outbox import outbox_append
from eventbus.registry import get_module
from eventbus.runner import ConsumerRunner
from tests.probe import events
from tests.support import delete_all_streams

# Short delays keep retry tests fast; production defaults are in settings.
FAST_BUS = {
    "BACKOFF_SECONDS": [0.2, 0.2, 0.2, 0.2],
    "ACK_WAIT_SECONDS": 3.0,
    "MAX_DELIVER": 3,
}


@pytest.fixture(params=["inprocess", "nats"])
def bus(request, settings):
    """The bus under test, with empty streams; parametrized over both backends."""
    backend = request.param
    settings.EVENTBUS = {
        **settings.EVENTBUS,
        **FAST_BUS,
        "BACKEND": backend,
        "NATS_URLS": [os.environ["NATS_URL"]],
    }
    if backend == "nats":
        delete_all_streams(os.environ["NATS_URL"])
    reset_bus()
    yield get_bus()
    reset_bus()


@pytest.fixture
def nats_bus(settings):
    """The NATS backend alone, for behaviour the in-process bus does not have."""
    settings.EVENTBUS = {**settings.EVENTBUS, **FAST_BUS, "BACKEND": "nats", "NATS_URLS": [os.environ["NATS_URL"]]}
    delete_all_streams(os.environ["NATS_URL"])
    reset_bus()
    yield get_bus()
    reset_bus()


def publish_probe(value: str, *, aggregate_id: str = "agg-1", version: int = 1, event_type=events.VALUE_SET):
    with transaction.atomic(using="notifications"):
        return outbox_append(
            module="probe",
            event_type=event_type,
            aggregate_type="probe",
            aggregate_id=aggregate_id,
            aggregate_version=version,
            tenant_id="tenant-a",
            payload={"value": value},
            occurred_at=timezone.now(),
        )


@contextmanager
def consumers_running(modules=("probe",)):
    """Run the JetStream consumer runner on a thread for the duration of the block."""
    runner = ConsumerRunner([get_module(name) for name in modules])
    loop = asyncio.new_event_loop()
    errors = []

    def run():
        try:
            loop.run_until_complete(runner.run())
        except BaseException as error:  # noqa: BLE001 - reported to the test below
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        loop.call_soon_threadsafe(runner.stop)
        thread.join(timeout=30)
        assert not thread.is_alive(), "consumer runner did not stop within 30 s"
        loop.close()
    assert not errors, f"consumer runner failed: {errors[0]!r}"
