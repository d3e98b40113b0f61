"""A NATS server restart while the relay and a consumer run: nothing is lost."""

import time

import pytest

from eventbus.models import OutboxState
from eventbus.relay import relay_outbox
from tests.eventbus.conftest import (
    consumer_info,
    consumers_running,
    publish_probe,
    stream_envelopes,
)
from tests.probe import events
from tests.probe.models import OutboxEvent, ProbeCounter, ProbeEffect, ProbeSwitch, ProcessedEvent
from tests.support import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]
ALIAS = "notifications"
# Seconds the server stays down, long enough for both clients to notice.
OUTAGE_SECONDS = 3


def publish_round(round_number: int) -> list:
    """Append two versions for each of five aggregates, interleaved."""
    envelopes = []
    for version in (1, 2):
        for aggregate in range(5):
            envelopes.append(
                publish_probe(
                    f"round {round_number} v{version}",
                    aggregate_id=f"agg-{aggregate}",
                    version=2 * (round_number - 1) + version,
                )
            )
    return envelopes


def relay_until_drained(bus) -> None:
    def drained():
        relay_outbox(module="probe", bus=bus)
        return not OutboxEvent.objects.using(ALIAS).filter(state=OutboxState.PENDING).exists()

    wait_for(drained, timeout=30, interval=0.3, message="outbox drained after the restart")


class TestNatsRestart:
    def test_restart_loses_nothing_and_consumer_resumes(self, restartable_bus, nats_server, caplog):
        bus = restartable_bus
        with consumers_running() as runner:
            before = publish_round(1)
            assert relay_outbox(module="probe", bus=bus).published == 10
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() == 10, timeout=20, message="round 1 applied")

            nats_server.stop()
            during = publish_round(2)
            outage = relay_outbox(module="probe", bus=bus)

            assert outage.published == 0
            assert outage.failed == 5
            assert outage.held == 5
            failed_rows = OutboxEvent.objects.using(ALIAS).filter(state=OutboxState.PENDING).exclude(last_error="")
            assert failed_rows.count() == 5
            assert all("not connected to NATS" in row.last_error for row in failed_rows)

            time.sleep(OUTAGE_SECONDS)
            nats_server.start()
            relay_until_drained(bus)
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() == 20, timeout=30, message="round 2 applied")

            # The same runner, never restarted, goes on consuming.
            after = publish_round(3)
            relay_until_drained(bus)
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() == 30, timeout=20, message="round 3 applied")
            assert runner.processed == 30

        event_ids = {envelope.event_id for envelope in before + during + after}
        assert set(ProbeEffect.objects.using(ALIAS).values_list("event_id", flat=True)) == event_ids
        assert ProcessedEvent.objects.using(ALIAS).count() == 30
        assert len(stream_envelopes(nats_server.url, "PROBE_EVENTS")) == 30
        assert "Reconnected to NATS at 127.0.0.1" in caplog.text
        for counter in ProbeCounter.objects.using(ALIAS).all():
            assert counter.version == 6
            assert counter.value == "round 3 v2"

    def test_restart_during_slow_handlers_applies_each_once(self, restartable_bus, nats_server):
        ProbeSwitch.objects.using(ALIAS).create(name="slow-seconds", seconds=1.0)
        envelopes = [publish_probe(f"slow {n}", aggregate_id=f"slow-{n}", event_type=events.SLOW) for n in range(4)]
        assert relay_outbox(module="probe", bus=restartable_bus).published == 4

        with consumers_running():
            wait_for(
                lambda: consumer_info(nats_server.url, "PROBE_EVENTS", "probe").num_ack_pending == 4,
                timeout=20, message="the consumer holding every message",
            )
            # The first handler is running; its ack goes out while the server is down.
            nats_server.stop()
            time.sleep(OUTAGE_SECONDS)
            nats_server.start()

            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() >= 4, timeout=40, message="slow events applied")
            wait_for(
                lambda: consumer_info(nats_server.url, "PROBE_EVENTS", "probe").num_ack_pending == 0,
                timeout=30, message="every message acknowledged",
            )

        for envelope in envelopes:
            assert ProbeEffect.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1
        assert ProcessedEvent.objects.using(ALIAS).count() == 4
