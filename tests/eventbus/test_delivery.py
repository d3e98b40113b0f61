"""The bus contract, on both backends: nothing lost, nothing applied twice."""

import json
import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from billing.tenancy.services import tenant_ensure
from eventbus.backends import OutgoingMessage
from eventbus.dead_letters import dead_letter_replay
from eventbus.errors import OutboxOutsideTransaction
from eventbus.models import DeadLetterReason, DeadLetterStatus, OutboxState
from eventbus.relay import relay_outbox
from tests.eventbus.conftest import consumers_running, publish_probe
from tests.probe import events
from tests.probe.models import (
    DeadLetter,
    OutboxEvent,
    ProbeCounter,
    ProbeEffect,
    ProbeSwitch,
    ProcessedEvent,
)
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ALIAS = "notifications"


def effects(**filters):
    return ProbeEffect.objects.using(ALIAS).filter(**filters)


def settle(bus, condition, *, timeout=20.0):
    """Wait for ``condition`` while consumers run (JetStream) or at once (in-process)."""
    if bus.name == "inprocess":
        assert condition(), "in-process delivery did not reach the expected state"
        return
    with consumers_running():
        wait_for(condition, timeout=timeout, message="consumers reaching the expected state")


class TestNothingLost:
    def test_event_relayed_before_consumer_exists_is_delivered(self, bus):
        envelope = publish_probe("first")

        result = relay_outbox(module="probe", bus=bus)

        assert result.published == 1
        assert OutboxEvent.objects.using(ALIAS).get().state == OutboxState.PUBLISHED
        settle(bus, lambda: effects(event_id=envelope.event_id).count() == 1)
        assert ProcessedEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1

    def test_outbox_append_outside_transaction_is_rejected(self, bus):
        from django.utils import timezone

        from eventbus.outbox import outbox_append

        with pytest.raises(OutboxOutsideTransaction) as raised:
            outbox_append(
                module="probe", event_type=events.VALUE_SET, aggregate_type="probe",
                aggregate_id="a", aggregate_version=1, tenant_id="t", payload={"value": "x"},
                occurred_at=timezone.now(),
            )

        assert "transaction.atomic(using='notifications')" in str(raised.value)
        assert OutboxEvent.objects.using(ALIAS).count() == 0

    def test_rolled_back_transaction_leaves_no_event(self, bus):
        with pytest.raises(RuntimeError):
            with transaction.atomic(using=ALIAS):
                publish_probe("never")
                raise RuntimeError("business rule failed")

        assert OutboxEvent.objects.using(ALIAS).count() == 0


class TestNoDuplicateEffect:
    def test_relay_crash_after_publish_causes_no_duplicate(self, bus):
        envelope = publish_probe("once")

        def crash(outcomes):
            raise KeyboardInterrupt("relay killed after publish, before marking rows")

        with pytest.raises(KeyboardInterrupt):
            relay_outbox(module="probe", bus=bus, after_publish=crash)
        assert OutboxEvent.objects.using(ALIAS).get().state == OutboxState.PENDING

        second = relay_outbox(module="probe", bus=bus)

        assert second.published == 1
        if bus.name == "nats":
            from tests.support import stream_message_count

            assert stream_message_count(bus._config.nats_urls[0], "PROBE_EVENTS") == 1
        settle(bus, lambda: effects(event_id=envelope.event_id).count() == 1)
        assert effects(event_id=envelope.event_id).count() == 1

    def test_duplicate_delivery_is_applied_once(self, bus):
        envelope = publish_probe("dup")
        row = OutboxEvent.objects.using(ALIAS).get()
        relay_outbox(module="probe", bus=bus)

        # The same bytes under a new message id get past the stream's
        # de-duplication, as a redelivery would.
        bus.publish_batch([OutgoingMessage(row.subject, str(uuid.uuid4()), row.body.encode())])

        settle(bus, lambda: ProcessedEvent.objects.using(ALIAS).count() == 1 and effects().count() == 1)
        assert effects(event_id=envelope.event_id).count() == 1


class TestRetriesAndDeadLetters:
    def test_handler_error_retries_then_dead_letters_then_replays(self, bus):
        ProbeSwitch.objects.using(ALIAS).create(name="flaky-fails")
        envelope = publish_probe("flaky", event_type=events.FLAKY)
        relay_outbox(module="probe", bus=bus)

        settle(bus, lambda: DeadLetter.objects.using(ALIAS).filter(event_id=envelope.event_id).exists())
        dead = DeadLetter.objects.using(ALIAS).get(event_id=envelope.event_id)
        assert dead.reason == DeadLetterReason.HANDLER_FAILED
        assert dead.deliveries == 3
        assert "failing on purpose for flaky" in dead.error
        assert effects().count() == 0
        assert ProcessedEvent.objects.using(ALIAS).count() == 0

        ProbeSwitch.objects.using(ALIAS).filter(name="flaky-fails").delete()
        result = dead_letter_replay(module="probe", dead_letter_id=dead.id)

        assert result.applied
        assert effects(event_id=envelope.event_id).count() == 1
        dead.refresh_from_db()
        assert dead.status == DeadLetterStatus.REPLAYED

    @pytest.mark.parametrize(
        ("body", "reason", "fragment"),
        [
            (b"\xff\xfe not json", DeadLetterReason.MALFORMED, "message is not JSON"),
            (json.dumps({"event_id": str(uuid.uuid4())}).encode(), DeadLetterReason.MALFORMED, "missing field(s)"),
            (None, DeadLetterReason.UNKNOWN_EVENT_TYPE, "no handler for probe.unknown.happened"),
            (b"x" * 300_000, DeadLetterReason.OVERSIZED, "the maximum is"),
        ],
        ids=["not-json", "missing-fields", "unknown-type", "oversized"],
    )
    def test_bad_message_is_dead_lettered_while_good_ones_flow(self, bus, body, reason, fragment):
        if body is None:
            good = publish_probe("template")
            document = json.loads(OutboxEvent.objects.using(ALIAS).get(event_id=good.event_id).body)
            document.update(event_type="probe.unknown.happened", event_id=str(uuid.uuid4()))
            body = json.dumps(document).encode()
            OutboxEvent.objects.using(ALIAS).all().delete()
        subject = "probe.events.probe.value.set"

        bus.publish_batch([OutgoingMessage(subject, str(uuid.uuid4()), body)])
        good = publish_probe("after the bad one")
        relay_outbox(module="probe", bus=bus)

        settle(bus, lambda: effects(event_id=good.event_id).exists() and DeadLetter.objects.using(ALIAS).exists())
        dead = DeadLetter.objects.using(ALIAS).get()
        assert dead.reason == reason
        assert fragment in dead.error
        assert bytes(dead.body) == body


def probe_body(**changes) -> bytes:
    """Return the bytes of a valid probe envelope with ``changes`` applied, leaving no outbox row."""
    template = publish_probe("template")
    document = json.loads(OutboxEvent.objects.using(ALIAS).get(event_id=template.event_id).body)
    OutboxEvent.objects.using(ALIAS).all().delete()
    document.update(event_id=str(uuid.uuid4()), **changes)
    return json.dumps(document).encode()


class TestEnvelopesThatCannotApply:
    def test_unknown_tenant_dead_lettered_then_replayed(self, bus):
        # A new id per run: the process caches tenant ids that exist.
        tenant_id = f"ghost-{uuid.uuid4().hex[:12]}"
        body = probe_body(tenant_id=tenant_id)
        event_id = uuid.UUID(json.loads(body)["event_id"])

        bus.publish_batch([OutgoingMessage("probe.events.probe.value.set", str(event_id), body)])
        good = publish_probe("after the unknown tenant")
        relay_outbox(module="probe", bus=bus)

        settle(bus, lambda: effects(event_id=good.event_id).exists() and DeadLetter.objects.using(ALIAS).exists())
        dead = DeadLetter.objects.using(ALIAS).get()
        assert dead.reason == DeadLetterReason.UNKNOWN_TENANT
        assert dead.error == (
            f"tenant {tenant_id!r} does not exist; create it with `manage.py tenants create {tenant_id}` "
            "and replay, or discard the dead letter if the event is wrong"
        )
        assert dead.event_id == event_id
        assert dead.tenant_id == tenant_id
        assert dead.deliveries == 1
        assert bytes(dead.body) == body
        assert effects(event_id=event_id).count() == 0
        assert not ProcessedEvent.objects.using(ALIAS).filter(event_id=event_id).exists()

        tenant_ensure(tenant_id=tenant_id, now=timezone.now())
        result = dead_letter_replay(module="probe", dead_letter_id=dead.id)

        assert result.applied
        assert effects(event_id=event_id).count() == 1

    def test_future_schema_version_dead_lettered(self, bus):
        body = probe_body(schema_version=2)

        bus.publish_batch([OutgoingMessage("probe.events.probe.value.set", str(uuid.uuid4()), body)])
        good = publish_probe("after the newer version")
        relay_outbox(module="probe", bus=bus)

        settle(bus, lambda: effects(event_id=good.event_id).exists() and DeadLetter.objects.using(ALIAS).exists())
        dead = DeadLetter.objects.using(ALIAS).get()
        assert dead.reason == DeadLetterReason.FUTURE_SCHEMA_VERSION
        assert dead.error == (
            "probe.value.set has schema version 2; this handler understands up to 1. "
            "Deploy the newer code, then replay."
        )
        assert ProcessedEvent.objects.using(ALIAS).count() == 1


class TestOrdering:
    def test_stale_redelivery_does_not_overwrite_newer_state(self, bus):
        publish_probe("v1", aggregate_id="order-1", version=1)
        publish_probe("v2", aggregate_id="order-1", version=2)
        relay_outbox(module="probe", bus=bus)
        settle(bus, lambda: effects().count() == 2)

        older = OutboxEvent.objects.using(ALIAS).get(aggregate_version=1)
        # Replay v1 as a new message, as a redelivery after v2 would arrive.
        redelivered = json.loads(older.body)
        redelivered["event_id"] = str(uuid.uuid4())
        bus.publish_batch([OutgoingMessage(older.subject, redelivered["event_id"], json.dumps(redelivered).encode())])

        settle(bus, lambda: effects().count() == 3)
        counter = ProbeCounter.objects.using(ALIAS).get(aggregate_id="order-1")
        assert counter.version == 2
        assert counter.value == "v2"
