"""The relay: order per aggregate through failed publishes, one relay per module, late commits."""

import os
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from eventbus.backends import EventBus, OutgoingMessage, PublishOutcome
from eventbus.models import OutboxState
from eventbus.registry import get_module
from eventbus.relay import claim_query, relay_outbox
from tests.eventbus.conftest import consumer_info, publish_probe, run_nats, stream_envelopes
from tests.probe.models import OutboxEvent, ProbeCounter

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ALIAS = "notifications"
INJECTED_ERROR = "publish failed (injected)"


class FaultyBus(EventBus):
    """The real bus, except that publishes of ``fail_once`` ids report one failure each.

    With ``send_failed`` the message still reaches the real bus, as when the
    PubAck is lost on the way back; without it the message never leaves.
    """

    name = "faulty"

    def __init__(self, bus: EventBus, fail_once: set[str], *, send_failed: bool):
        self.bus = bus
        self.fail_once = set(fail_once)
        self.send_failed = send_failed
        # Event ids in the order they were handed to the real bus.
        self.sent: list[str] = []

    def ensure(self) -> list[str]:
        return self.bus.ensure()

    def status(self) -> list[dict]:
        return self.bus.status()

    def publish_batch(self, messages: list[OutgoingMessage]) -> list[PublishOutcome]:
        failing = {message.event_id for message in messages if message.event_id in self.fail_once}
        self.fail_once -= failing
        forwarded = [message for message in messages if self.send_failed or message.event_id not in failing]
        self.sent.extend(message.event_id for message in forwarded)
        outcomes = {outcome.event_id: outcome for outcome in self.bus.publish_batch(forwarded)}
        return [
            PublishOutcome(message.event_id, stored=False, error=INJECTED_ERROR)
            if message.event_id in failing
            else outcomes[message.event_id]
            for message in messages
        ]


def publish_interleaved() -> dict[tuple[str, int], str]:
    """Append versions 1 to 3 of aggregates a, b and c, interleaved; return their event ids."""
    event_ids = {}
    for version in (1, 2, 3):
        for aggregate in ("a", "b", "c"):
            envelope = publish_probe(f"{aggregate}{version}", aggregate_id=aggregate, version=version)
            event_ids[(aggregate, version)] = str(envelope.event_id)
    return event_ids


def versions_in_order(event_ids: dict, sent: list[str]) -> dict[str, list[int]]:
    """Return each aggregate's versions in the order their first publish reached the bus."""
    position = {event_id: key for key, event_id in event_ids.items()}
    order: dict[str, list[int]] = {}
    for event_id in sent:
        aggregate, version = position[event_id]
        if version not in order.setdefault(aggregate, []):
            order[aggregate].append(version)
    return order


class TestRelayOrder:
    @pytest.mark.parametrize("send_failed", [False, True], ids=["publish-rejected", "puback-lost"])
    def test_failed_publish_holds_later_events_of_its_aggregate(self, bus, send_failed):
        event_ids = publish_interleaved()
        faulty = FaultyBus(bus, {event_ids[("a", 2)]}, send_failed=send_failed)

        first = relay_outbox(module="probe", bus=faulty)

        assert (first.published, first.failed, first.held) == (7, 1, 1)
        assert first.errors == [INJECTED_ERROR]
        pending = OutboxEvent.objects.using(ALIAS).filter(state=OutboxState.PENDING).order_by("id")
        assert [(row.aggregate_id, row.aggregate_version) for row in pending] == [("a", 2), ("a", 3)]
        assert pending[0].last_error == INJECTED_ERROR
        assert pending[0].publish_attempts == 1
        assert pending[0].next_attempt_at is not None
        assert event_ids[("a", 3)] not in faulty.sent

        # Still inside the backoff: a2 waits and a3 waits behind it.
        second = relay_outbox(module="probe", bus=faulty)

        assert (second.published, second.held) == (0, 2)

        third = relay_outbox(module="probe", bus=faulty, now=lambda: timezone.now() + timedelta(minutes=5))

        assert (third.published, third.failed) == (2, 0)
        assert not OutboxEvent.objects.using(ALIAS).filter(state=OutboxState.PENDING).exists()
        assert versions_in_order(event_ids, faulty.sent) == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}
        if bus.name == "nats":
            stored = stream_envelopes(os.environ["NATS_URL"], "PROBE_EVENTS")
            assert len(stored) == 9
            order = versions_in_order(event_ids, [document["event_id"] for document in stored])
            assert order == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}
        else:
            for aggregate in ("a", "b", "c"):
                assert ProbeCounter.objects.using(ALIAS).get(aggregate_id=aggregate).value == f"{aggregate}3"


class RecordingBus(EventBus):
    """The real bus, recording what is published and how many publishes overlap.

    The first publish waits until ``release`` is set, so a second relay tries
    to take the lock while the first one has it.
    """

    name = "recording"

    def __init__(self, bus: EventBus, release: threading.Event):
        self.bus = bus
        self.release = release
        self.published: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._counter_lock = threading.Lock()
        self._first_call = True

    def ensure(self) -> list[str]:
        return self.bus.ensure()

    def status(self) -> list[dict]:
        return self.bus.status()

    def publish_batch(self, messages: list[OutgoingMessage]) -> list[PublishOutcome]:
        with self._counter_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            first, self._first_call = self._first_call, False
        try:
            if first:
                assert self.release.wait(timeout=20), "the second relay never reported locked_out"
            time.sleep(0.01)
            outcomes = self.bus.publish_batch(messages)
            self.published.extend(outcome.event_id for outcome in outcomes if outcome.stored)
            return outcomes
        finally:
            with self._counter_lock:
                self.in_flight -= 1


class TestTwoRelays:
    def test_only_one_relay_publishes_at_a_time(self, nats_bus):
        for index in range(60):
            publish_probe(f"v{index}", aggregate_id=f"agg-{index % 7}", version=index // 7 + 1)
        locked_out = threading.Event()
        recording = RecordingBus(nats_bus, locked_out)
        results, errors = [], []
        start = threading.Barrier(2)

        def relay_until_drained():
            try:
                start.wait(timeout=10)
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    result = relay_outbox(module="probe", bus=recording, batch_size=10)
                    results.append(result)
                    if result.locked_out:
                        locked_out.set()
                    if not OutboxEvent.objects.using(ALIAS).filter(state=OutboxState.PENDING).exists():
                        return
                    time.sleep(0.01)
            except BaseException as error:  # noqa: BLE001 - reported to the test below
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=relay_until_drained) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        assert any(result.locked_out for result in results)
        assert recording.max_in_flight == 1
        assert len(recording.published) == 60
        assert len(set(recording.published)) == 60
        assert sum(result.published for result in results) == 60
        assert len(stream_envelopes(os.environ["NATS_URL"], "PROBE_EVENTS")) == 60

    def test_row_committed_after_higher_id_is_published(self, nats_bus):
        appended, committed = threading.Event(), threading.Event()
        late = {}

        def append_and_commit_late():
            try:
                with transaction.atomic(using=ALIAS):
                    late["envelope"] = publish_probe("late", aggregate_id="late")
                    appended.set()
                    committed.wait(timeout=20)
            finally:
                connections.close_all()

        writer = threading.Thread(target=append_and_commit_late)
        writer.start()
        assert appended.wait(timeout=10)
        early = publish_probe("early", aggregate_id="early")

        first = relay_outbox(module="probe", bus=nats_bus)
        committed.set()
        writer.join(timeout=10)
        second = relay_outbox(module="probe", bus=nats_bus)

        late_row = OutboxEvent.objects.using(ALIAS).get(event_id=late["envelope"].event_id)
        early_row = OutboxEvent.objects.using(ALIAS).get(event_id=early.event_id)
        assert late_row.id < early_row.id
        assert first.published == 1
        assert second.published == 1
        assert late_row.state == OutboxState.PUBLISHED
        assert early_row.state == OutboxState.PUBLISHED
        stored = [document["event_id"] for document in stream_envelopes(os.environ["NATS_URL"], "PROBE_EVENTS")]
        assert stored == [str(early.event_id), str(late["envelope"].event_id)]


class TestDeletedStream:
    def test_relay_declares_a_deleted_stream_again(self, nats_bus):
        publish_probe("before")
        assert relay_outbox(module="probe", bus=nats_bus).published == 1

        async def delete(js):
            return await js.delete_stream("PROBE_EVENTS")

        assert run_nats(os.environ["NATS_URL"], delete)
        publish_probe("after")

        failed = relay_outbox(module="probe", bus=nats_bus)
        retried = relay_outbox(module="probe", bus=nats_bus, now=lambda: timezone.now() + timedelta(minutes=5))

        assert (failed.published, failed.failed) == (0, 1)
        assert failed.errors == ["no stream stores subject probe.events.probe.value.set; run manage.py bus ensure"]
        assert retried.published == 1
        assert [document["payload"]["value"] for document in stream_envelopes(os.environ["NATS_URL"], "PROBE_EVENTS")] == ["after"]
        assert consumer_info(os.environ["NATS_URL"], "PROBE_EVENTS", "probe").num_pending == 1


class TestQueryCount:
    def queries_to_relay(self, bus, events: int) -> int:
        for number in range(events):
            publish_probe(f"value {number}", aggregate_id=f"count-{events}-{number}")
        with CaptureQueriesContext(connections[ALIAS]) as queries:
            assert relay_outbox(module="probe", bus=bus).published == events
        return len(queries)

    def test_wave_queries_independent_of_rows(self, nats_bus):
        # Claim, one UPDATE per wave and the advisory lock: nothing per row.
        assert self.queries_to_relay(nats_bus, 50) == self.queries_to_relay(nats_bus, 5)

    def test_claim_reads_the_pending_index(self, nats_bus):
        for number in range(5):
            publish_probe(f"value {number}", aggregate_id=f"index-{number}")
        OutboxEvent.objects.using(ALIAS).update(state=OutboxState.PUBLISHED)
        OutboxEvent.objects.using(ALIAS).bulk_create(
            OutboxEvent(
                event_id=uuid.uuid4(), event_type="probe.value.set", subject="probe.events.probe.value.set",
                aggregate_type="probe", aggregate_id=f"old-{number}", aggregate_version=1, tenant_id="tenant-a",
                correlation_id=uuid.uuid4(), body="{}", state=OutboxState.PUBLISHED, created_at=timezone.now(),
            )
            for number in range(5000)
        )
        publish_probe("pending", aggregate_id="index-pending")
        with connections[ALIAS].cursor() as cursor:
            cursor.execute(f"ANALYZE {OutboxEvent._meta.db_table}")

        plan = claim_query(get_module("probe"), 500).explain()

        assert "probe_outbox_pending" in plan
