"""`manage.py run_consumers` processes that are killed or stopped while they hold messages."""

import signal
import subprocess
import time

import pytest
from django.conf import settings

from eventbus.relay import relay_outbox
from tests.eventbus.conftest import consumer_info, publish_probe
from tests.probe import events
from tests.probe.models import ProbeEffect, ProbeSwitch, ProcessedEvent
from tests.support import manage_py_process, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]
ALIAS = "notifications"


@pytest.fixture
def consumer_processes(nats_server, tmp_path):
    """Start `run_consumers --module probe` processes on the throwaway server; kill leftovers."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        bus = settings.EVENTBUS
        environment = {
            "EVENT_BUS": "nats",
            "NATS_URL": nats_server.url,
            "EVENTBUS_ACK_WAIT_SECONDS": str(bus["ACK_WAIT_SECONDS"]),
            "EVENTBUS_MAX_DELIVER": str(bus["MAX_DELIVER"]),
            "EVENTBUS_BACKOFF_SECONDS": ",".join(str(delay) for delay in bus["BACKOFF_SECONDS"]),
            "EVENTBUS_CONSUMER_GROUP_SIZE": str(bus["CONSUMER_GROUP_SIZE"]),
            "EVENTBUS_CONSUMER_CONCURRENCY": str(bus["CONSUMER_CONCURRENCY"]),
        }
        process = manage_py_process(
            "run_consumers", "--module", "probe", env=environment, log_path=tmp_path / f"{name}.log"
        )
        started.append(process)
        return process

    start.logs = tmp_path
    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def probe_consumer(nats_server):
    return consumer_info(nats_server.url, "PROBE_EVENTS", "probe")


def publish_slow(count: int, seconds: float) -> list:
    """Publish ``count`` slow events of one aggregate, which one worker thread applies in order."""
    ProbeSwitch.objects.using(ALIAS).update_or_create(name="slow-seconds", defaults={"seconds": seconds})
    return [
        publish_probe(f"slow {n}", aggregate_id="slow", version=n + 1, event_type=events.SLOW)
        for n in range(count)
    ]


def set_slow_seconds(seconds: float) -> None:
    ProbeSwitch.objects.using(ALIAS).filter(name="slow-seconds").update(seconds=seconds)


def assert_applied_once(envelopes) -> None:
    for envelope in envelopes:
        assert ProbeEffect.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1
    assert ProcessedEvent.objects.using(ALIAS).count() == len(envelopes)


class TestKilledConsumer:
    def test_killed_consumer_messages_go_to_the_next_process(self, restartable_bus, nats_server, consumer_processes):
        envelopes = publish_slow(3, seconds=60)
        assert relay_outbox(module="probe", bus=restartable_bus).published == 3

        first = consumer_processes("first")
        wait_for(lambda: probe_consumer(nats_server).num_ack_pending == 3, timeout=30, message="first holding 3")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        set_slow_seconds(0)
        assert ProbeEffect.objects.using(ALIAS).count() == 0

        consumer_processes("second")
        wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() >= 3, timeout=40, message="second applying all")
        wait_for(lambda: probe_consumer(nats_server).num_ack_pending == 0, timeout=20, message="all acked")

        assert_applied_once(envelopes)
        info = probe_consumer(nats_server)
        assert info.num_redelivered == 0
        # Three first deliveries to the killed process, three redeliveries to the second.
        assert info.delivered.consumer_seq == 6


class TestGracefulShutdown:
    @pytest.fixture
    def long_ack_wait(self, settings, restartable_bus):
        # An ack wait far longer than the test's waits shows that handed-back
        # messages come back at once rather than after it.
        # A group size of 1 applies each message in its own transaction, so
        # the process can stop between two messages of one aggregate.
        settings.EVENTBUS = {**settings.EVENTBUS, "ACK_WAIT_SECONDS": 30.0, "CONSUMER_GROUP_SIZE": 1}
        from eventbus.backends import get_bus, reset_bus

        reset_bus()
        return get_bus()

    def test_sigterm_finishes_current_message_and_hands_back_the_rest(
        self, long_ack_wait, nats_server, consumer_processes
    ):
        envelopes = publish_slow(3, seconds=4)
        assert relay_outbox(module="probe", bus=long_ack_wait).published == 3

        first = consumer_processes("first")
        wait_for(lambda: probe_consumer(nats_server).num_ack_pending == 3, timeout=30, message="first holding 3")
        time.sleep(1)
        first.send_signal(signal.SIGTERM)

        assert first.wait(timeout=20) == 0
        stopped_at = time.monotonic()
        assert ProbeEffect.objects.using(ALIAS).count() == 1
        assert ProbeEffect.objects.using(ALIAS).get().event_id == envelopes[0].event_id
        assert "Stopped after 1 message(s)" in (consumer_processes.logs / "first.log").read_text()

        set_slow_seconds(0)
        consumer_processes("second")
        wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() >= 3, timeout=20, message="second applying the rest")

        assert time.monotonic() - stopped_at < 30
        assert_applied_once(envelopes)

    def test_sigterm_commits_group_in_flight(self, settings, long_ack_wait, nats_server, consumer_processes):
        # One worker thread takes the whole fetch of three as one group.
        settings.EVENTBUS = {**settings.EVENTBUS, "CONSUMER_GROUP_SIZE": 20, "CONSUMER_CONCURRENCY": 1}
        envelopes = publish_slow(3, seconds=2)
        assert relay_outbox(module="probe", bus=long_ack_wait).published == 3

        first = consumer_processes("first")
        wait_for(lambda: probe_consumer(nats_server).num_ack_pending == 3, timeout=30, message="first holding 3")
        time.sleep(1)
        first.send_signal(signal.SIGTERM)

        # The three messages are one group: the process stops once it committed.
        assert first.wait(timeout=20) == 0
        assert "Stopped after 3 message(s)" in (consumer_processes.logs / "first.log").read_text()
        assert_applied_once(envelopes)
        wait_for(lambda: probe_consumer(nats_server).num_ack_pending == 0, timeout=10, message="all acked")
