"""Helpers for ar tests: deliver events to ar's handlers and read what ar published."""

import dataclasses
import json
import uuid
from datetime import datetime

from ar.models import (
    Customer,
    CustomerCreditEntry,
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    OutboxEvent,
    PaymentApplication,
)
from ar.tests.factories import NOW
from billing.tenancy.services import tenant_ensure
from eventbus.consumer import DeliveryResult, deliver
from eventbus.envelope import Envelope
from eventbus.registry import get_module
from eventbus.schema import EventType

ALIAS = "ar"


def envelope_for(
    event_type: EventType,
    payload,
    *,
    tenant_id: str = "acme",
    occurred_at: datetime = NOW,
    aggregate_type: str = "test",
    aggregate_id: str | None = None,
    aggregate_version: int = 1,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Build the envelope the producing module's outbox would publish for ``payload``."""
    return Envelope(
        event_id=event_id or uuid.uuid4(),
        event_type=event_type.name,
        schema_version=event_type.schema_version,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id or str(uuid.uuid4()),
        aggregate_version=aggregate_version,
        tenant_id=tenant_id,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        occurred_at=occurred_at,
        payload=dataclasses.asdict(payload),
    )


def deliver_envelope(envelope: Envelope, *, delivery: int = 1, max_deliver: int | None = None) -> DeliveryResult:
    """Deliver ``envelope`` to ar's handlers the way every bus backend does, creating its tenant first."""
    tenant_ensure(tenant_id=envelope.tenant_id, now=NOW)
    return deliver(
        module=get_module("ar"),
        subject=envelope.subject,
        body=envelope.to_json(),
        delivery=delivery,
        max_deliver=max_deliver,
    )


def published(event_type: EventType | None = None) -> list[dict]:
    """Return the envelopes in ar's outbox, oldest first, as dicts."""
    rows = OutboxEvent.objects.using(ALIAS).order_by("id")
    if event_type is not None:
        rows = rows.filter(event_type=event_type.name)
    return [json.loads(row.body) for row in rows]


def row_counts() -> dict[str, int]:
    """Return how many rows each ar table holds, to show that a rejected call wrote nothing."""
    models = [
        Customer, CustomerCreditEntry, Invoice, InvoiceLine, InvoiceNumberSequence, PaymentApplication,
        OutboxEvent,
    ]
    return {model.__name__: model.objects.using(ALIAS).count() for model in models}
