"""Streams and durable consumers that drifted from the code, and how `bus ensure` handles them."""

import io
import os

import nats.js.errors
import pytest
from django.core.management import CommandError, call_command
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from eventbus.errors import BusMisconfigured, BusUnavailable
from eventbus.registry import get_module
from tests.eventbus.conftest import consumer_info, run_nats

pytestmark = pytest.mark.django_db(databases="__all__")
PROBE_SUBJECTS = [
    "probe.events.probe.flaky.happened",
    "probe.events.probe.rendezvous.happened",
    "probe.events.probe.slow.happened",
    "probe.events.probe.value.set",
]


def nats_url() -> str:
    return os.environ["NATS_URL"]


def replace_probe_consumer(config: ConsumerConfig) -> None:
    async def work(js):
        await js.delete_consumer("PROBE_EVENTS", "probe")
        await js.add_consumer("PROBE_EVENTS", config)

    run_nats(nats_url(), work)


class TestConsumerDrift:
    def test_ensure_updates_ack_wait_and_filter_subjects(self, nats_bus):
        nats_bus.ensure()
        replace_probe_consumer(
            ConsumerConfig(
                name="probe", durable_name="probe", ack_policy=AckPolicy.EXPLICIT, ack_wait=99.0,
                max_deliver=-1, filter_subjects=["probe.events.probe.value.set"],
            )
        )
        output = io.StringIO()

        call_command("bus", "ensure", stdout=output)

        assert output.getvalue().splitlines() == [
            "updated consumer probe on PROBE_EVENTS: ack_wait 99.0 -> 3.0; filter_subjects "
            "['probe.events.probe.value.set'] -> " + str(PROBE_SUBJECTS),
            "nats bus: 1 change(s); streams and consumers match the code",
        ]
        live = consumer_info(nats_url(), "PROBE_EVENTS", "probe").config
        assert live.ack_wait == 3.0
        assert sorted(live.filter_subjects) == PROBE_SUBJECTS
        assert get_module("probe").filter_subjects("probe") == PROBE_SUBJECTS

    def test_ensure_twice_changes_nothing(self, nats_bus):
        nats_bus.ensure()
        output = io.StringIO()

        call_command("bus", "ensure", stdout=output)

        assert output.getvalue() == "nats bus: 0 change(s); streams and consumers match the code\n"

    def test_ensure_rejects_consumer_with_other_ack_policy(self, nats_bus):
        nats_bus.ensure()
        replace_probe_consumer(
            ConsumerConfig(name="probe", durable_name="probe", ack_policy=AckPolicy.ALL, filter_subjects=PROBE_SUBJECTS)
        )

        with pytest.raises(BusMisconfigured) as raised:
            nats_bus.ensure()

        assert str(raised.value) == (
            "consumer probe on PROBE_EVENTS has deliver policy all and ack policy all, but the "
            "code declares all and explicit, which cannot be changed in place; delete it (nats "
            "consumer rm PROBE_EVENTS probe) and run manage.py bus ensure, which recreates it "
            "from the stream's first message"
        )


class TestStreamDrift:
    def test_memory_stream_is_reported_with_the_fix(self, nats_bus):
        async def work(js):
            await js.add_stream(StreamConfig(name="PROBE_EVENTS", subjects=["probe.events.>"], storage=StorageType.MEMORY))

        run_nats(nats_url(), work)
        expected = (
            "stream PROBE_EVENTS uses memory storage but must be file-backed; move its messages "
            "elsewhere, delete it (nats stream rm PROBE_EVENTS) and run manage.py bus ensure"
        )

        with pytest.raises(BusMisconfigured) as raised:
            nats_bus.ensure()
        with pytest.raises(CommandError) as command_error:
            call_command("bus", "ensure", stdout=io.StringIO())

        assert str(raised.value) == expected
        assert str(command_error.value) == expected


class TestSubjectCoverage:
    def test_consumed_subject_in_a_foreign_stream_is_reported(self, nats_bus):
        from dataclasses import dataclass

        from eventbus.backends.nats import declare
        from eventbus.conf import bus_settings
        from eventbus.registry import BusModule, HandlerRegistry
        from eventbus.schema import EventType

        @dataclass(frozen=True)
        class Ghost:
            value: str

        handlers = HandlerRegistry()
        handlers.on(EventType("ghost.thing.happened", Ghost))(lambda envelope, payload: None)
        probe = get_module("probe")
        consumer = BusModule(
            name="watcher", alias=probe.alias, outbox=probe.outbox, inbox=probe.inbox,
            dead_letters=probe.dead_letters, handlers=handlers,
        )

        async def work(js):
            # A stream that is not GHOST_EVENTS captures the ghost module's subjects.
            await js.add_stream(StreamConfig(name="STRAY", subjects=["ghost.events.>"]))
            return await declare(js, bus_settings(), [consumer])

        with pytest.raises(BusMisconfigured) as raised:
            run_nats(nats_url(), work)

        assert str(raised.value) == (
            "subject ghost.events.ghost.thing.happened, which module 'watcher' consumes, is stored "
            "by STRAY instead of GHOST_EVENTS; register module 'ghost' on the bus and run "
            "manage.py bus ensure"
        )


class Electing:
    """A JetStream context whose ``method`` raises ``error``, as a cluster electing a leader responds."""

    def __init__(self, js, method: str, error: Exception):
        self._js, self._method, self._error = js, method, error

    def __getattr__(self, name):
        if name != self._method:
            return getattr(self._js, name)

        async def failing(*args, **kwargs):
            raise self._error

        return failing


class TestLeaderElection:
    """Responses of a cluster without a leader are transient, so a consumer process retries instead of exiting."""

    def declare_with(self, method: str, error: Exception):
        from eventbus.backends.nats import declare
        from eventbus.conf import bus_settings

        async def work(js):
            return await declare(Electing(js, method, error), bus_settings(), [get_module("probe")])

        return run_nats(nats_url(), work)

    def test_unavailable_response_is_transient(self, nats_bus):
        error = nats.js.errors.ServiceUnavailableError(
            code=503, err_code=10008, description="JetStream system temporarily unavailable",
        )

        with pytest.raises(BusUnavailable, match="JetStream system temporarily unavailable"):
            self.declare_with("stream_info", error)

    def test_bad_request_is_misconfiguration(self, nats_bus):
        error = nats.js.errors.BadRequestError(code=400, err_code=10058, description="stream name already in use")

        with pytest.raises(BusMisconfigured, match="stream name already in use"):
            self.declare_with("stream_info", error)

    def test_missing_stream_after_declare_transient(self, nats_bus):
        error = nats.js.errors.NotFoundError(code=404, err_code=10059, description="stream not found")

        with pytest.raises(BusUnavailable) as raised:
            self.declare_with("find_stream_name_by_subject", error)

        assert "right after declaring PROBE_EVENTS" in str(raised.value)
