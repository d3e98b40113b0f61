"""Apply one delivered message: validate, record in the inbox, run the handler.

Every backend delivers through ``deliver``, so the in-process and JetStream
backends share the inbox, retry and dead-letter rules.
"""

import enum
import hashlib
import logging
import time
import traceback
from dataclasses import dataclass

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from eventbus.conf import bus_settings
from eventbus.context import handling
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
from eventbus.registry import BusModule
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

    if delivery > max_deliver:
        # Only a crash or a timeout during the last delivery gets here, since
        # a handler error on that delivery dead-letters the message.
        envelope = _parse_or_none(body)
        return _dead_letter(
            module, subject, body, envelope, delivery, DeadLetterReason.HANDLER_FAILED,
            f"delivered {delivery} times without an outcome; the consumer crashed or "
            f"timed out during delivery {max_deliver}, the last one allowed",
        )

    if len(body) > config.max_event_bytes:
        return _dead_letter(
            module, subject, body, None, delivery, DeadLetterReason.OVERSIZED,
            f"message is {len(body)} bytes; the maximum is {config.max_event_bytes}",
        )

    try:
        envelope = Envelope.from_json(body)
    except InvalidEnvelope as error:
        return _dead_letter(module, subject, body, None, delivery, DeadLetterReason.MALFORMED, error.reason)

    subscription = module.handlers.get(envelope.event_type)
    if subscription is None:
        return _dead_letter(
            module, subject, body, envelope, delivery, DeadLetterReason.UNKNOWN_EVENT_TYPE,
            f"module {module.name!r} has no handler for {envelope.event_type}",
        )

    known_version = subscription.event_type.schema_version
    if envelope.schema_version > known_version:
        return _dead_letter(
            module, subject, body, envelope, delivery, DeadLetterReason.FUTURE_SCHEMA_VERSION,
            f"{envelope.event_type} has schema version {envelope.schema_version}; this "
            f"handler understands up to {known_version}. Deploy the newer code, then replay.",
        )

    if not tenant_is_known(envelope.tenant_id):
        return _dead_letter(
            module, subject, body, envelope, delivery, DeadLetterReason.UNKNOWN_TENANT,
            f"tenant {envelope.tenant_id!r} does not exist; create it with `manage.py tenants create "
            f"{envelope.tenant_id}` and replay, or discard the dead letter if the event is wrong",
        )

    try:
        payload = subscription.event_type.load(envelope.payload)
    except InvalidPayload as error:
        return _dead_letter(
            module, subject, body, envelope, delivery, DeadLetterReason.INVALID_PAYLOAD, str(error)
        )

    metric_labels = {"module": module.name, "event_type": envelope.event_type}
    started = time.perf_counter()
    try:
        applied = apply(module=module, envelope=envelope, handler=subscription.handler, payload=payload)
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


def apply(*, module: BusModule, envelope: Envelope, handler, payload) -> bool:
    """Record ``envelope`` in the inbox and run ``handler`` in one transaction.

    Return False, changing nothing, when the inbox already has the event.
    The inbox row is inserted first, so a second consumer applying the same
    event at once waits on the unique index and then rolls back as a duplicate.
    """
    inbox = module.inbox.objects.using(module.alias)
    try:
        with transaction.atomic(using=module.alias):
            inbox.create(
                event_id=envelope.event_id,
                consumer=module.consumer_name,
                event_type=envelope.event_type,
                aggregate_type=envelope.aggregate_type,
                aggregate_id=envelope.aggregate_id,
                aggregate_version=envelope.aggregate_version,
                tenant_id=envelope.tenant_id,
                processed_at=timezone.now(),
            )
            with handling(envelope):
                handler(envelope, payload)
    except IntegrityError:
        if inbox.filter(event_id=envelope.event_id, consumer=module.consumer_name).exists():
            return False
        raise
    return True


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
