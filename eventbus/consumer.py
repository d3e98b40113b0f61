"""Apply one delivered message: validate, record in the inbox, run the handler.

Every backend delivers through ``deliver``, so the in-process and JetStream
backends share the inbox, retry and dead-letter rules.
"""

import enum
import hashlib
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from eventbus.conf import BusSettings, bus_settings
from eventbus.context import deferred_work, handling
from eventbus.envelope import Envelope
from eventbus.errors import InvalidEnvelope, InvalidPayload
from eventbus.metrics import (
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    HANDLER_DURATION,
    event_type_of_subject,
)
from eventbus.models import DeadLetterReason, DeadLetterStatus
from eventbus.outbox import outbox_rows_collected
from eventbus.registry import BusModule, Subscription
from eventbus.tenants import tenant_is_known

logger = logging.getLogger(__name__)


class Disposition(enum.Enum):
    """The transport's next step for a message after ``deliver`` returns."""

    ACK = "ack"
    RETRY = "retry"
    TERMINATE = "terminate"


@dataclass(frozen=True)
class DeliveryResult:
    disposition: Disposition
    # Seconds before redelivery, for RETRY.
    delay: float = 0.0
    duplicate: bool = False
    dead_letter_reason: str = ""


ACKED = DeliveryResult(Disposition.ACK)


@dataclass(frozen=True)
class Incoming:
    """One delivered message: its subject, its body and which delivery this is, counting from 1."""

    subject: str
    body: bytes
    delivery: int
    # The envelope the transport already parsed from ``body``, if any.
    envelope: Envelope | None = None


@dataclass(frozen=True)
class _Rejected:
    """A message that can never be applied, and why."""

    envelope: Envelope | None
    reason: str
    error: str


@dataclass(frozen=True)
class _Ready:
    """A message that passed every check and waits for its handler."""

    envelope: Envelope
    subscription: Subscription
    payload: object


def deliver(
    *,
    module: BusModule,
    subject: str,
    body: bytes,
    delivery: int,
    max_deliver: int | None = None,
) -> DeliveryResult:
    """Apply one message for ``module``; ``delivery`` counts from 1.

    A message that can never be applied (malformed, oversized, unknown type,
    newer schema, unknown tenant, invalid payload) is dead-lettered at once.
    A handler error returns RETRY until the last delivery, then dead-letters
    the message.
    """
    config = bus_settings()
    max_deliver = max_deliver or config.max_deliver
    checked = _check(module, body, delivery, max_deliver, config)
    if isinstance(checked, _Rejected):
        return _dead_letter(module, subject, body, checked.envelope, delivery, checked.reason, checked.error)
    envelope = checked.envelope

    metric_labels = {"module": module.name, "event_type": envelope.event_type}
    started = time.perf_counter()
    try:
        applied = apply(module=module, envelope=envelope, handler=checked.subscription.handler, payload=checked.payload)
    except Exception as error:
        HANDLER_DURATION.labels(**metric_labels).observe(time.perf_counter() - started)
        EVENTS_FAILED.labels(**metric_labels).inc()
        # A cut connection must not poison the next message's transaction.
        _discard_broken_connection(module.alias)
        log_extra = _log_extra(module, envelope, delivery)
        if delivery >= max_deliver:
            logger.exception("Handler failed on its last delivery; dead-lettering", extra=log_extra)
            return _dead_letter(
                module, subject, body, envelope, delivery, DeadLetterReason.HANDLER_FAILED,
                "".join(traceback.format_exception(error)),
            )
        delay = config.redelivery_delay(delivery)
        logger.warning(
            "Handler failed on delivery %s of %s, retrying in %.1f s: %r",
            delivery, max_deliver, delay, error, extra=log_extra,
        )
        return DeliveryResult(Disposition.RETRY, delay=delay)

    HANDLER_DURATION.labels(**metric_labels).observe(time.perf_counter() - started)
    EVENTS_CONSUMED.labels(**metric_labels).inc()
    if not applied:
        logger.info("Skipped duplicate delivery", extra=_log_extra(module, envelope, delivery))
        return DeliveryResult(Disposition.ACK, duplicate=True)
    return ACKED


def deliver_group(
    *,
    module: BusModule,
    messages: Sequence[Incoming],
    deliver_one: Callable[[Incoming], DeliveryResult] | None = None,
) -> list[DeliveryResult]:
    """Apply ``messages`` in stream order in one transaction; return each one's result, in order.

    The outcome is the one ``deliver`` gives each message in turn, with one
    inbox lookup, one inbox insert and one commit for the group instead of
    one of each per message. When any message fails a check, is a
    redelivery, or its handler raises, the group's transaction (if any) rolls
    back and every message goes through ``deliver_one`` (default:
    ``deliver``) in order, so retries and dead letters stay per message.

    NOTE: a group keeps every row lock its handlers take until it commits.
    Two groups that lock the same rows in different orders can deadlock.
    PostgreSQL then aborts one, and its messages are applied one at a time.

    Handlers' ``transaction.on_commit`` callbacks run after the group
    commits. A callback that raises skips the callbacks registered after it,
    so a handler's callback must catch its own errors or be registered with
    ``robust=True``.
    """
    if deliver_one is None:
        def deliver_one(message: Incoming) -> DeliveryResult:
            return deliver(module=module, subject=message.subject, body=message.body, delivery=message.delivery)

    if len(messages) > 1 and all(message.delivery == 1 for message in messages):
        config = bus_settings()
        checked = [
            _check(module, message.body, 1, config.max_deliver, config, message.envelope) for message in messages
        ]
        if all(isinstance(item, _Ready) for item in checked):
            try:
                return _apply_group(module, checked)
            except Exception as error:
                _discard_broken_connection(module.alias)
                logger.info(
                    "A group of %s message(s) failed and is applied one message at a time: %r",
                    len(messages), error, extra={"bus_module": module.name},
                )
    return [deliver_one(message) for message in messages]


def _apply_group(module: BusModule, group: list[_Ready]) -> list[DeliveryResult]:
    """Record the group's new events in the inbox and run their handlers, all in one transaction."""
    inbox = module.inbox.objects.using(module.alias)
    event_ids = [item.envelope.event_id for item in group]
    timings: list[tuple[_Ready, float]] = []
    group_started = time.perf_counter()
    with transaction.atomic(using=module.alias):
        seen = set(
            inbox.filter(consumer=module.consumer_name, event_id__in=event_ids).values_list("event_id", flat=True)
        )
        fresh: list[_Ready] = []
        for item in group:
            if item.envelope.event_id not in seen:
                # The same event twice in one group is applied once.
                seen.add(item.envelope.event_id)
                fresh.append(item)
        # A concurrent consumer that inserts one of these events first makes
        # this insert wait and then fail, and the group falls back to
        # deliver(), which skips that event as a duplicate.
        processed_at = timezone.now()
        inbox.bulk_create([_inbox_row(module, item.envelope, processed_at) for item in fresh])
        # The handlers' outgoing events go into the outbox with one insert.
        with outbox_rows_collected(module), deferred_work():
            for item in fresh:
                started = time.perf_counter()
                with handling(item.envelope):
                    item.subscription.handler(item.envelope, item.payload)
                timings.append((item, time.perf_counter() - started))

    # Each message's handler time plus an equal share of what the group did
    # together: the inbox statements, the deferred work, the commit and the
    # after-commit callbacks. A single delivery's figure covers the same steps.
    shared = time.perf_counter() - group_started - sum(seconds for _, seconds in timings)
    share = shared / len(timings) if timings else 0.0
    applied = {id(item) for item in fresh}
    for item, seconds in timings:
        labels = {"module": module.name, "event_type": item.envelope.event_type}
        HANDLER_DURATION.labels(**labels).observe(seconds + share)
        EVENTS_CONSUMED.labels(**labels).inc()
    results = []
    for item in group:
        if id(item) in applied:
            results.append(ACKED)
        else:
            logger.info("Skipped duplicate delivery", extra=_log_extra(module, item.envelope, 1))
            EVENTS_CONSUMED.labels(module=module.name, event_type=item.envelope.event_type).inc()
            results.append(DeliveryResult(Disposition.ACK, duplicate=True))
    return results


def _check(
    module: BusModule,
    body: bytes,
    delivery: int,
    max_deliver: int,
    config: BusSettings,
    envelope: Envelope | None = None,
) -> "_Ready | _Rejected":
    """Return the message ready for its handler, or why it must be dead-lettered; write nothing.

    ``envelope``, when given, is ``body`` already parsed.
    """
    if delivery > max_deliver:
        # Only a crash or a timeout during the last delivery gets here, since
        # a handler error on that delivery dead-letters the message.
        envelope = _parse_or_none(body)
        return _Rejected(
            envelope, DeadLetterReason.HANDLER_FAILED,
            f"delivered {delivery} times without an outcome; the consumer crashed or "
            f"timed out during delivery {max_deliver}, the last one allowed",
        )

    if len(body) > config.max_event_bytes:
        return _Rejected(
            None, DeadLetterReason.OVERSIZED,
            f"message is {len(body)} bytes; the maximum is {config.max_event_bytes}",
        )

    if envelope is None:
        try:
            envelope = Envelope.from_json(body)
        except InvalidEnvelope as error:
            return _Rejected(None, DeadLetterReason.MALFORMED, error.reason)

    subscription = module.handlers.get(envelope.event_type)
    if subscription is None:
        return _Rejected(
            envelope, DeadLetterReason.UNKNOWN_EVENT_TYPE,
            f"module {module.name!r} has no handler for {envelope.event_type}",
        )

    known_version = subscription.event_type.schema_version
    if envelope.schema_version > known_version:
        return _Rejected(
            envelope, DeadLetterReason.FUTURE_SCHEMA_VERSION,
            f"{envelope.event_type} has schema version {envelope.schema_version}; this "
            f"handler understands up to {known_version}. Deploy the newer code, then replay.",
        )

    if not tenant_is_known(envelope.tenant_id):
        return _Rejected(
            envelope, DeadLetterReason.UNKNOWN_TENANT,
            f"tenant {envelope.tenant_id!r} does not exist; create it with `manage.py tenants create "
            f"{envelope.tenant_id}` and replay, or discard the dead letter if the event is wrong",
        )

    try:
        payload = subscription.event_type.load(envelope.payload)
    except InvalidPayload as error:
        return _Rejected(
            envelope, DeadLetterReason.INVALID_PAYLOAD, str(error)
        )
    return _Ready(envelope, subscription, payload)


def apply(*, module: BusModule, envelope: Envelope, handler, payload) -> bool:
    """Record ``envelope`` in the inbox and run ``handler`` in one transaction.

    Return False, changing nothing, when the inbox already has the event.
    The inbox row is inserted first, so a second consumer applying the same
    event at once waits on the unique index and then rolls back as a duplicate.
    """
    inbox = module.inbox.objects.using(module.alias)
    try:
        with transaction.atomic(using=module.alias):
            _inbox_row(module, envelope, timezone.now()).save(using=module.alias, force_insert=True)
            with deferred_work(), handling(envelope):
                handler(envelope, payload)
    except IntegrityError:
        if inbox.filter(event_id=envelope.event_id, consumer=module.consumer_name).exists():
            return False
        raise
    return True


def _inbox_row(module: BusModule, envelope: Envelope, processed_at):
    return module.inbox(
        event_id=envelope.event_id,
        consumer=module.consumer_name,
        event_type=envelope.event_type,
        aggregate_type=envelope.aggregate_type,
        aggregate_id=envelope.aggregate_id,
        aggregate_version=envelope.aggregate_version,
        tenant_id=envelope.tenant_id,
        processed_at=processed_at,
    )


def _dead_letter(
    module: BusModule,
    subject: str,
    body: bytes,
    envelope: Envelope | None,
    delivery: int,
    reason: str,
    error: str,
) -> DeliveryResult:
    message_key = str(envelope.event_id) if envelope else "sha256:" + hashlib.sha256(body).hexdigest()[:56]
    if envelope is not None:
        log_extra = {**_log_extra(module, envelope, delivery), "message_key": message_key}
    else:
        log_extra = {"bus_module": module.name, "message_key": message_key, "delivery": delivery}
    logger.error(
        "Dead-lettered message on %s: %s: %s",
        subject, reason, error.splitlines()[0] if error else "", extra=log_extra,
    )
    with transaction.atomic(using=module.alias):
        dead_letter, created = module.dead_letters.objects.using(module.alias).get_or_create(
            consumer=module.consumer_name,
            message_key=message_key,
            defaults={
                "subject": subject,
                "event_id": envelope.event_id if envelope else None,
                "event_type": envelope.event_type if envelope else "",
                "tenant_id": envelope.tenant_id if envelope else "",
                "body": body,
                "reason": reason,
                "error": error,
                "deliveries": delivery,
                "created_at": timezone.now(),
            },
        )
        if not created and dead_letter.status != DeadLetterStatus.DEAD:
            # A replayed or discarded message that failed again is dead once more.
            dead_letter.status = DeadLetterStatus.DEAD
            dead_letter.reason = reason
            dead_letter.error = error
            dead_letter.deliveries = delivery
            dead_letter.resolved_at = None
            dead_letter.save(update_fields=["status", "reason", "error", "deliveries", "resolved_at"])
    EVENTS_DEAD_LETTERED.labels(
        module=module.name,
        event_type=envelope.event_type if envelope else event_type_of_subject(subject),
        reason=reason,
    ).inc()
    return DeliveryResult(Disposition.TERMINATE, dead_letter_reason=reason)


def _discard_broken_connection(alias: str) -> None:
    """Close ``alias``'s connection when the database cut it, so the next use reconnects.

    Only this alias and only a broken connection: Django's close_old_connections
    would also close healthy connections past their CONN_MAX_AGE, including the
    in-process relay's, whose session holds the relay lock, and a caller's
    connection inside an open transaction.
    """
    connection = connections[alias]
    if connection.connection is None or connection.in_atomic_block:
        return
    if not connection.is_usable():
        connection.close()


def _parse_or_none(body: bytes) -> Envelope | None:
    try:
        return Envelope.from_json(body)
    except InvalidEnvelope:
        return None


def _log_extra(module: BusModule, envelope: Envelope, delivery: int) -> dict:
    return {
        "bus_module": module.name,
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "tenant_id": envelope.tenant_id,
        "correlation_id": str(envelope.correlation_id),
        "delivery": delivery,
    }
