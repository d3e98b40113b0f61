"""The JetStream consumer runner: progress acks and a durable consumer deleted under it."""

import os

import pytest
from django.conf import settings

from eventbus.relay import relay_outbox
from tests.eventbus.conftest import consumer_info, consumers_running, publish_probe, run_nats
from tests.probe import events
from tests.probe.models import ProbeEffect, ProbeSwitch, ProcessedEvent
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ALIAS = "notifications"


def probe_consumer():
    return consumer_info(os.environ["NATS_URL"], "PROBE_EVENTS", "probe")


class TestProgressAcks:
    @pytest.fixture
    def short_ack_wait(self, settings, nats_bus):
        settings.EVENTBUS = {**settings.EVENTBUS, "ACK_WAIT_SECONDS": 1.0}
        from eventbus.backends import get_bus, reset_bus

        reset_bus()
        return get_bus()

    def test_slow_handlers_keep_their_messages(self, short_ack_wait):
        # Each handler takes 2.5 ack waits, and the second message waits in
        # the fetched batch while the first runs. A second runner on the same
        # durable would receive any message whose ack wait ran out.
        ProbeSwitch.objects.using(ALIAS).create(name="slow-seconds", seconds=2.5)
        envelopes = [publish_probe(f"slow {n}", aggregate_id=f"slow-{n}", event_type=events.SLOW) for n in range(2)]
        assert relay_outbox(module="probe", bus=short_ack_wait).published == 2
        assert probe_consumer().config.ack_wait == settings.EVENTBUS["ACK_WAIT_SECONDS"]

        with consumers_running() as holder:
            wait_for(lambda: probe_consumer().num_ack_pending == 2, timeout=10, message="one runner holding both")
            with consumers_running() as competitor:
                wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() >= 2, timeout=20, message="both applied")
                wait_for(lambda: probe_consumer().num_ack_pending == 0, timeout=10, message="both acked")

        info = probe_consumer()
        assert info.delivered.consumer_seq == 2
        assert info.num_redelivered == 0
        assert holder.processed == 2
        assert competitor.processed == 0
        for envelope in envelopes:
            assert ProbeEffect.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1
        assert ProcessedEvent.objects.using(ALIAS).count() == 2


class TestConcurrency:
    @pytest.fixture
    def rendezvous(self):
        from tests.probe.handlers import rendezvous

        rendezvous.reset()
        yield rendezvous
        rendezvous.reset()

    def test_two_aggregates_are_applied_at_the_same_time(self, nats_bus, rendezvous):
        envelopes = [
            publish_probe(f"meet {n}", aggregate_id=f"meet-{n}", event_type=events.RENDEZVOUS) for n in range(2)
        ]
        relay_outbox(module="probe", bus=nats_bus)

        with consumers_running():
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() == 2, timeout=20, message="both applied")

        assert probe_consumer().num_redelivered == 0
        assert {effect.event_id for effect in ProbeEffect.objects.using(ALIAS)} == {e.event_id for e in envelopes}

    def test_single_worker_applies_serially(self, settings, nats_bus, rendezvous):
        settings.EVENTBUS = {**settings.EVENTBUS, "CONSUMER_CONCURRENCY": 1}
        publish_probe("meet alone", aggregate_id="meet-0", event_type=events.RENDEZVOUS)
        publish_probe("meet alone", aggregate_id="meet-1", event_type=events.RENDEZVOUS)
        relay_outbox(module="probe", bus=nats_bus)

        with consumers_running():
            # The first handler waits for a partner that never comes, so the
            # barrier breaks and the handler fails.
            wait_for(lambda: rendezvous.broken, timeout=20, message="barrier broken")
        assert ProbeEffect.objects.using(ALIAS).count() < 2

    def test_one_aggregate_is_applied_in_stream_order(self, nats_bus):
        for version in range(1, 21):
            publish_probe(f"v{version}", aggregate_id="ordered", version=version)
            publish_probe(f"other {version}", aggregate_id=f"other-{version}")
        relay_outbox(module="probe", bus=nats_bus)

        with consumers_running():
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() == 40, timeout=30, message="all applied")

        versions = list(
            ProbeEffect.objects.using(ALIAS).filter(aggregate_id="ordered").order_by("id")
            .values_list("aggregate_version", flat=True)
        )
        assert versions == list(range(1, 21))


class TestDeletedConsumer:
    def test_deleted_consumer_is_declared_again(self, nats_bus):
        first = publish_probe("before")
        relay_outbox(module="probe", bus=nats_bus)

        with consumers_running():
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() == 1, timeout=20, message="first applied")

            async def delete(js):
                return await js.delete_consumer("PROBE_EVENTS", "probe")

            assert run_nats(os.environ["NATS_URL"], delete)
            second = publish_probe("after")
            relay_outbox(module="probe", bus=nats_bus)

            wait_for(
                lambda: ProbeEffect.objects.using(ALIAS).filter(event_id=second.event_id).exists(),
                timeout=40, message="event published after the deletion applied",
            )

        assert probe_consumer().config.durable_name == "probe"
        # The consumer declared again starts from the stream's first message;
        # the inbox skips the one already applied.
        assert ProbeEffect.objects.using(ALIAS).filter(event_id=first.event_id).count() == 1
        assert ProbeEffect.objects.using(ALIAS).filter(event_id=second.event_id).count() == 1
        assert ProcessedEvent.objects.using(ALIAS).count() == 2
