"""deliver_group: several messages in one transaction, with the outcomes deliver gives each."""

import time

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from eventbus.consumer import Disposition, Incoming, deliver, deliver_group
from eventbus.envelope import Envelope
from eventbus.models import DeadLetterReason
from eventbus.registry import get_module
from tests.eventbus.conftest import publish_probe
from tests.probe import events
from tests.probe.models import DeadLetter, ProbeCounter, ProbeEffect, ProbeSwitch, ProcessedEvent

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ALIAS = "notifications"


def incoming(envelope, delivery: int = 1) -> Incoming:
    return Incoming(subject=envelope.subject, body=envelope.to_json(), delivery=delivery)


def probe_events(count: int, **options) -> list:
    return [publish_probe(f"value-{number}", aggregate_id=f"agg-{number}", **options) for number in range(count)]


@pytest.fixture
def probe():
    return get_module("probe")


class TestGroupApplied:
    def test_parsed_envelopes_not_parsed_again(self, probe, monkeypatch):
        envelopes = probe_events(3)
        bodies = [envelope.to_json() for envelope in envelopes]
        parsed = []
        from_json = Envelope.from_json
        monkeypatch.setattr(Envelope, "from_json", lambda data: parsed.append(data) or from_json(data))

        results = deliver_group(
            module=probe,
            messages=[
                Incoming(subject=envelope.subject, body=body, delivery=1, envelope=envelope)
                for envelope, body in zip(envelopes, bodies, strict=True)
            ],
        )

        assert [result.disposition for result in results] == [Disposition.ACK] * 3
        assert [data for data in parsed if data in bodies] == []

    def test_every_message_applied_once(self, probe):
        envelopes = probe_events(5)

        results = deliver_group(module=probe, messages=[incoming(envelope) for envelope in envelopes])

        assert [result.disposition for result in results] == [Disposition.ACK] * 5
        assert not any(result.duplicate for result in results)
        for envelope in envelopes:
            assert ProbeEffect.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1
            assert ProcessedEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1

    def test_group_statement_count(self, probe):
        envelopes = probe_events(10)
        connection = connections[ALIAS]

        with CaptureQueriesContext(connection) as one_by_one:
            for envelope in envelopes[:5]:
                deliver(module=probe, subject=envelope.subject, body=envelope.to_json(), delivery=1)
        with CaptureQueriesContext(connection) as grouped:
            deliver_group(module=probe, messages=[incoming(envelope) for envelope in envelopes[5:]])

        # The probe handler issues three queries. Alone, each message adds
        # BEGIN, its inbox insert and COMMIT; a group adds BEGIN, one inbox
        # lookup, one inbox insert and COMMIT in all.
        assert len(one_by_one) == 5 * (3 + 3)
        assert len(grouped) == 5 * 3 + 4
        assert [query["sql"] for query in grouped.captured_queries].count("COMMIT") == 1

    def test_duration_includes_group_share(self, probe, monkeypatch):
        """The histogram covers the group's shared work, such as its inbox insert, not only the handlers."""
        from prometheus_client import REGISTRY

        import eventbus.consumer as consumer

        envelopes = probe_events(4)
        labels = {"module": "probe", "event_type": envelopes[0].event_type}
        before = REGISTRY.get_sample_value("eventbus_handler_duration_seconds_sum", labels) or 0.0
        inbox_row = consumer._inbox_row

        def slow_inbox_row(*args):
            time.sleep(0.05)
            return inbox_row(*args)

        monkeypatch.setattr(consumer, "_inbox_row", slow_inbox_row)

        deliver_group(module=probe, messages=[incoming(envelope) for envelope in envelopes])

        after = REGISTRY.get_sample_value("eventbus_handler_duration_seconds_sum", labels)
        assert after - before >= 4 * 0.05

    def test_aggregate_order_kept(self, probe):
        first = publish_probe("older", aggregate_id="agg-1", version=1)
        second = publish_probe("newer", aggregate_id="agg-1", version=2)

        deliver_group(module=probe, messages=[incoming(first), incoming(second)])

        counter = ProbeCounter.objects.using(ALIAS).get(aggregate_id="agg-1")
        assert (counter.version, counter.value) == (2, "newer")

    def test_inbox_event_is_duplicate(self, probe):
        applied, new = probe_events(2)
        deliver(module=probe, subject=applied.subject, body=applied.to_json(), delivery=1)

        results = deliver_group(module=probe, messages=[incoming(applied), incoming(new)])

        assert [(result.disposition, result.duplicate) for result in results] == [
            (Disposition.ACK, True),
            (Disposition.ACK, False),
        ]
        assert ProbeEffect.objects.using(ALIAS).filter(event_id=applied.event_id).count() == 1
        assert ProbeEffect.objects.using(ALIAS).filter(event_id=new.event_id).count() == 1

    def test_repeated_event_applied_once(self, probe):
        (envelope,) = probe_events(1)
        other = publish_probe("other", aggregate_id="agg-other")

        results = deliver_group(module=probe, messages=[incoming(envelope), incoming(other), incoming(envelope)])

        assert [result.duplicate for result in results] == [False, False, True]
        assert ProbeEffect.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1


class TestGroupFallsBack:
    def test_failing_handler_retried_alone(self, probe):
        ProbeSwitch.objects.using(ALIAS).create(name="flaky-fails")
        before = publish_probe("before", aggregate_id="agg-1")
        failing = publish_probe("failing", aggregate_id="agg-2", event_type=events.FLAKY)
        after = publish_probe("after", aggregate_id="agg-3")

        results = deliver_group(module=probe, messages=[incoming(before), incoming(failing), incoming(after)])

        assert [result.disposition for result in results] == [Disposition.ACK, Disposition.RETRY, Disposition.ACK]
        assert set(ProbeEffect.objects.using(ALIAS).values_list("value", flat=True)) == {"before", "after"}
        assert not ProcessedEvent.objects.using(ALIAS).filter(event_id=failing.event_id).exists()

    def test_malformed_message_dead_lettered_once(self, probe):
        good = publish_probe("good")
        malformed = Incoming(subject="probe.events.probe.value.set", body=b"{not json", delivery=1)

        results = deliver_group(module=probe, messages=[incoming(good), malformed])

        assert [result.disposition for result in results] == [Disposition.ACK, Disposition.TERMINATE]
        assert DeadLetter.objects.using(ALIAS).get().reason == DeadLetterReason.MALFORMED
        assert ProbeEffect.objects.using(ALIAS).get().event_id == good.event_id

    def test_redelivery_applied_alone(self, probe):
        first, second = probe_events(2)
        seen = []

        def deliver_one(message):
            seen.append(message)
            return deliver(module=probe, subject=message.subject, body=message.body, delivery=message.delivery)

        messages = [incoming(first), incoming(second, delivery=2)]
        deliver_group(module=probe, messages=messages, deliver_one=deliver_one)

        assert seen == messages
        assert ProbeEffect.objects.using(ALIAS).count() == 2
