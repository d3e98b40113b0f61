"""Append events to a module's outbox inside the caller's transaction."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.utils import timezone

from eventbus.conf import bus_settings
from eventbus.context import current_event
from eventbus.envelope import Envelope
from eventbus.errors import EventTooLarge, InvalidPayload, OutboxOutsideTransaction
from eventbus.registry import BusModule, get_module
from eventbus.schema import EventType


@dataclass(frozen=True)
class NewEvent:
    """One event to append; ``payload`` is the event type's dataclass or an equivalent dict."""

    event_type: EventType
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    tenant_id: str
    payload: Any


def outbox_append(
    *,
    module: str,
    event_type: EventType,
    aggregate_type: str,
    aggregate_id: str,
    aggregate_version: int,
    tenant_id: str,
    payload: Any,
    occurred_at: datetime,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> Envelope:
    """Append one event to ``module``'s outbox and return its envelope.

    Raises ``OutboxOutsideTransaction`` unless called inside
    ``transaction.atomic(using=<module alias>)``, ``InvalidPayload`` when the
    payload does not match ``event_type``, and ``EventTooLarge``.
    """
    event = NewEvent(event_type, aggregate_type, str(aggregate_id), aggregate_version, tenant_id, payload)
    (envelope,) = outbox_append_many(
        module=module,
        events=[event],
        occurred_at=occurred_at,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    return envelope


def outbox_append_many(
    *,
    module: str,
    events: list[NewEvent],
    occurred_at: datetime,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> list[Envelope]:
    """Append ``events`` to ``module``'s outbox with one bulk insert; see ``outbox_append``."""
    bus_module = get_module(module)
    connection = connections[bus_module.alias]
    if not connection.in_atomic_block:
        raise OutboxOutsideTransaction(
            f"outbox_append for module {module!r} was called outside a transaction; "
            f"wrap the service in transaction.atomic(using={bus_module.alias!r})"
        )

    # Events appended while a handler runs continue that handler's trace.
    parent = current_event()
    if correlation_id is None:
        correlation_id = parent.correlation_id if parent else uuid.uuid4()
    if causation_id is None and parent is not None:
        causation_id = parent.event_id

    max_bytes = bus_settings().max_event_bytes
    written_at = timezone.now()
    envelopes, rows = [], []
    for event in events:
        if event.event_type.producer != module:
            raise InvalidPayload(
                f"module {module!r} cannot publish {event.event_type.name}; "
                f"only {event.event_type.producer!r} publishes it"
            )
        envelope = Envelope(
            event_id=uuid.uuid4(),
            event_type=event.event_type.name,
            schema_version=event.event_type.schema_version,
            aggregate_type=event.aggregate_type,
            aggregate_id=str(event.aggregate_id),
            aggregate_version=event.aggregate_version,
            tenant_id=event.tenant_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            occurred_at=occurred_at,
            payload=event.event_type.dump(event.payload),
        )
        # Build through the parser too, so a producer can never write what a
        # consumer would reject.
        body = envelope.to_json()
        Envelope.from_json(body)
        if len(body) > max_bytes:
            raise EventTooLarge(
                f"{envelope.event_type} for {envelope.aggregate_type} {envelope.aggregate_id} is "
                f"{len(body)} bytes; the maximum is {max_bytes} (EVENTBUS_MAX_EVENT_BYTES)"
            )
        envelopes.append(envelope)
        rows.append(
            bus_module.outbox(
                event_id=envelope.event_id,
                event_type=envelope.event_type,
                subject=envelope.subject,
                aggregate_type=envelope.aggregate_type,
                aggregate_id=envelope.aggregate_id,
                aggregate_version=envelope.aggregate_version,
                tenant_id=envelope.tenant_id,
                correlation_id=envelope.correlation_id,
                body=body.decode(),
                created_at=written_at,
            )
        )

    collected = _collected.get()
    if collected is not None and collected[0] == bus_module.alias:
        collected[1].extend(rows)
    else:
        bus_module.outbox.objects.using(bus_module.alias).bulk_create(rows)
    return envelopes


# The alias and the rows collected while ``outbox_rows_collected`` is active on this thread.
_collected: ContextVar[tuple[str, list] | None] = ContextVar("eventbus_outbox_collected", default=None)


@contextmanager
def outbox_rows_collected(module: BusModule) -> Iterator[None]:
    """Insert the rows appended to ``module``'s outbox in the block with one statement at its end.

    Use inside ``transaction.atomic(using=module.alias)``, around work that
    appends many events, such as a group of handlers: the rows keep their
    order and commit with the transaction. When the block raises, nothing is
    inserted and the caller's transaction rolls back.
    """
    token = _collected.set((module.alias, []))
    try:
        yield
        rows = _collected.get()[1]
        if rows:
            module.outbox.objects.using(module.alias).bulk_create(rows)
    finally:
        _collected.reset(token)
