import asyncio
import json
import logging
import os
import threading
from contextlib import contextmanager

import nats
import pytest
from django.db import connections, transaction
from django.utils import timezone

from billing.tenancy.services import tenant_ensure
from eventbus.backends import get_bus, reset_bus
from eventbus.outbox import outbox_append
from eventbus.registry import get_module
from eventbus.runner import ConsumerRunner
from tests.probe import events
from tests.support import NatsServer, delete_all_streams

logger = logging.getLogger(__name__)

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
    # Consumers dead-letter an event of a tenant that does not exist.
    tenant_ensure(tenant_id="tenant-a", now=timezone.now())
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
            # Logged too, so a test whose own wait fails first still shows why the runner stopped.
            logger.exception("Consumer runner of the test stopped with an error")
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


@pytest.fixture
def nats_server():
    """A throwaway nats-server that a test may stop and start; never the shared one."""
    server = NatsServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def restartable_bus(settings, nats_server):
    """The NATS backend on the throwaway server of ``nats_server``."""
    settings.EVENTBUS = {**settings.EVENTBUS, **FAST_BUS, "BACKEND": "nats", "NATS_URLS": [nats_server.url]}
    reset_bus()
    yield get_bus()
    reset_bus()


def run_nats(url: str, work):
    """Run ``work(js)`` against the server at ``url`` on a short-lived connection."""

    async def run():
        client = await nats.connect(url)
        try:
            return await work(client.jetstream())
        finally:
            await client.close()

    return asyncio.run(run())


def consumer_info(url: str, stream: str, consumer: str):
    async def work(js):
        return await js.consumer_info(stream, consumer)

    return run_nats(url, work)


def stream_envelopes(url: str, stream: str) -> list[dict]:
    """Return every envelope stored in ``stream``, in stream order."""

    async def work(js):
        info = await js.stream_info(stream)
        documents = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(stream, sequence)
            documents.append(json.loads(message.data))
        return documents

    return run_nats(url, work)
