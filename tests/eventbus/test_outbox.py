"""Appending to and purging a module's outbox, and what a consumer does with bad messages."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from eventbus.consumer import Disposition, deliver
from eventbus.errors import EventTooLarge, InvalidPayload, UnknownModule
from eventbus.models import DeadLetterReason, OutboxState
from eventbus.outbox import NewEvent, outbox_append, outbox_append_many
from eventbus.registry import get_module
from eventbus.relay import outbox_purge
from eventbus.schema import EventType
from tests.eventbus.conftest import publish_probe
from tests.probe import events
from tests.probe.models import DeadLetter, OutboxEvent, ProbeEffect, ProcessedEvent

pytestmark = pytest.mark.django_db(databases="__all__")
ALIAS = "notifications"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Foreign:
    value: str


FOREIGN = EventType("ar.probe.happened", Foreign)


def append(event_type=events.VALUE_SET, payload=None, **changes):
    arguments = {
        "module": "probe",
        "event_type": event_type,
        "aggregate_type": "probe",
        "aggregate_id": "agg-1",
        "aggregate_version": 1,
        "tenant_id": "tenant-a",
        "payload": payload if payload is not None else {"value": "x"},
        "occurred_at": NOW,
        **changes,
    }
    with transaction.atomic(using=ALIAS):
        return outbox_append(**arguments)


class TestOutboxAppend:
    def test_append_stores_the_envelope_as_published_bytes(self):
        envelope = append(payload=events.ValueSet(value="stored"))

        row = OutboxEvent.objects.using(ALIAS).get()
        assert row.event_id == envelope.event_id
        assert row.subject == "probe.events.probe.value.set"
        assert row.state == OutboxState.PENDING
        assert row.body.encode() == envelope.to_json()
        assert json.loads(row.body)["payload"] == {"value": "stored"}
        assert json.loads(row.body)["occurred_at"] == "2026-05-01T12:00:00Z"

    def test_oversized_event_is_rejected(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "MAX_EVENT_BYTES": 1000}

        with pytest.raises(EventTooLarge) as raised:
            append(payload={"value": "x" * 1000})

        body_size = len(
            json.dumps(
                {
                    "aggregate_id": "agg-1", "aggregate_type": "probe", "aggregate_version": 1,
                    "causation_id": None, "correlation_id": str(uuid.UUID(int=0)),
                    "event_id": str(uuid.UUID(int=0)), "event_type": "probe.value.set",
                    "occurred_at": "2026-05-01T12:00:00Z", "payload": {"value": "x" * 1000},
                    "schema_version": 1, "tenant_id": "tenant-a",
                },
                separators=(",", ":"),
            )
        )
        assert raised.value.code == "event_too_large"
        assert str(raised.value) == (
            f"probe.value.set for probe agg-1 is {body_size} bytes; the maximum is 1000 "
            "(EVENTBUS_MAX_EVENT_BYTES)"
        )
        assert OutboxEvent.objects.using(ALIAS).count() == 0

    def test_another_modules_event_type_is_rejected(self):
        with pytest.raises(InvalidPayload) as raised:
            append(event_type=FOREIGN)

        assert str(raised.value) == "module 'probe' cannot publish ar.probe.happened; only 'ar' publishes it"
        assert OutboxEvent.objects.using(ALIAS).count() == 0

    def test_invalid_payload_writes_nothing(self):
        with pytest.raises(InvalidPayload) as raised:
            append(payload={"value": 5})

        assert str(raised.value) == "probe.value.set payload field 'value' must be str, got 5"
        assert OutboxEvent.objects.using(ALIAS).count() == 0

    def test_one_bad_event_rejects_the_whole_batch(self):
        good = NewEvent(events.VALUE_SET, "probe", "agg-1", 1, "tenant-a", {"value": "ok"})
        bad = NewEvent(events.VALUE_SET, "probe", "agg-1", 2, "tenant-a", {"value": None})

        with pytest.raises(InvalidPayload):
            with transaction.atomic(using=ALIAS):
                outbox_append_many(module="probe", events=[good, bad], occurred_at=NOW)

        assert OutboxEvent.objects.using(ALIAS).count() == 0

    def test_unknown_module_is_named(self):
        with pytest.raises(UnknownModule) as raised:
            append(module="billing")

        assert str(raised.value).startswith("unknown bus module 'billing'; registered modules: ")
        assert "probe" in str(raised.value)

    def test_events_share_correlation_and_causation(self):
        correlation_id, causation_id = uuid.uuid4(), uuid.uuid4()
        with transaction.atomic(using=ALIAS):
            envelopes = outbox_append_many(
                module="probe",
                events=[
                    NewEvent(events.VALUE_SET, "probe", "agg-1", 1, "tenant-a", {"value": "one"}),
                    NewEvent(events.VALUE_SET, "probe", "agg-2", 1, "tenant-a", {"value": "two"}),
                ],
                occurred_at=NOW,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )

        assert [envelope.correlation_id for envelope in envelopes] == [correlation_id, correlation_id]
        assert [envelope.causation_id for envelope in envelopes] == [causation_id, causation_id]
        assert OutboxEvent.objects.using(ALIAS).count() == 2


class TestOutboxPurge:
    def test_purge_deletes_only_old_published_rows(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_SECONDS": 3600}
        old_published, recent_published, old_pending = (publish_probe(name).event_id for name in ("a", "b", "c"))
        rows = OutboxEvent.objects.using(ALIAS)
        rows.filter(event_id=old_published).update(state=OutboxState.PUBLISHED, published_at=NOW - timedelta(hours=2))
        rows.filter(event_id=recent_published).update(
            state=OutboxState.PUBLISHED, published_at=NOW - timedelta(minutes=59)
        )
        rows.filter(event_id=old_pending).update(created_at=NOW - timedelta(days=30))

        deleted = outbox_purge(module="probe", now=NOW)

        assert deleted == 1
        assert set(rows.values_list("event_id", flat=True)) == {recent_published, old_pending}


class TestDeliverRejects:
    def deliver_document(self, document: dict, *, delivery: int = 1):
        body = json.dumps(document).encode()
        return deliver(module=get_module("probe"), subject="probe.events.probe.value.set", body=body, delivery=delivery)

    def probe_document(self, **changes) -> dict:
        document = json.loads(publish_probe("template").to_json())
        OutboxEvent.objects.using(ALIAS).all().delete()
        document.update(changes)
        return document

    def test_future_schema_version_is_dead_lettered(self):
        document = self.probe_document(schema_version=2)

        result = self.deliver_document(document)

        assert result.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using(ALIAS).get()
        assert dead.reason == DeadLetterReason.FUTURE_SCHEMA_VERSION
        assert dead.error == (
            "probe.value.set has schema version 2; this handler understands up to 1. "
            "Deploy the newer code, then replay."
        )
        assert str(dead.event_id) == document["event_id"]
        assert ProbeEffect.objects.using(ALIAS).count() == 0
        assert ProcessedEvent.objects.using(ALIAS).count() == 0

    def test_invalid_payload_is_dead_lettered(self):
        document = self.probe_document(payload={"value": 7})

        result = self.deliver_document(document)

        assert result.disposition is Disposition.TERMINATE
        assert result.dead_letter_reason == DeadLetterReason.INVALID_PAYLOAD
        dead = DeadLetter.objects.using(ALIAS).get()
        assert dead.error == "probe.value.set payload field 'value' must be str, got 7"
        assert ProbeEffect.objects.using(ALIAS).count() == 0
        assert ProcessedEvent.objects.using(ALIAS).count() == 0

    def test_delivery_past_the_limit_is_dead_lettered(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "MAX_DELIVER": 3}
        document = self.probe_document()

        result = self.deliver_document(document, delivery=4)

        assert result.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using(ALIAS).get()
        assert dead.reason == DeadLetterReason.HANDLER_FAILED
        assert dead.deliveries == 4
        assert dead.error == (
            "delivered 4 times without an outcome; the consumer crashed or timed out during "
            "delivery 3, the last one allowed"
        )
        assert ProbeEffect.objects.using(ALIAS).count() == 0

    def test_same_bad_message_is_dead_lettered_once(self):
        document = self.probe_document(payload={"value": 7})

        self.deliver_document(document)
        self.deliver_document(document, delivery=2)

        assert DeadLetter.objects.using(ALIAS).count() == 1
