"""Checks on the event flow: outboxes drained, events applied once, emails recorded."""

from collections import Counter
from datetime import datetime

from ar.events import INVOICE_FINALIZED
from billing.invariants.report import CheckResult
from eventbus.models import OutboxState
from eventbus.registry import all_modules
from eventbus.selectors import dead_letter_queryset, outbox_event_queryset, processed_event_queryset
from notifications.selectors import NotificationAuditRow
from payments.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED
from subscriptions.events import SUBSCRIPTION_CANCELED

# The email each event produces, as notifications.handlers records it. The
# invariants tests compare these keys with the notifications registry.
TEMPLATE_FOR_EVENT_TYPE = {
    INVOICE_FINALIZED.name: "invoice_finalized",
    PAYMENT_SUCCEEDED.name: "payment_receipt",
    PAYMENT_FAILED.name: "payment_failed",
    SUBSCRIPTION_CANCELED.name: "subscription_canceled",
}


def check_outboxes_published(*, tenant_id: str | None, cutoff: datetime) -> CheckResult:
    """Find outbox rows still pending that were written before ``cutoff``."""
    result = CheckResult(
        name="outboxes_published",
        description="No outbox row is pending longer than the staleness threshold.",
    )
    for module in all_modules():
        rows = outbox_event_queryset(module=module.name, tenant_id=tenant_id)
        result.rows_checked += rows.count()
        stale = rows.filter(state=OutboxState.PENDING, created_at__lt=cutoff).order_by("id")
        for event_id, event_type, created_at, error in stale.values_list(
            "event_id", "event_type", "created_at", "last_error"
        ):
            detail = f"; last error: {error}" if error else ""
            result.add(
                f"{event_type} pending in the {module.name} outbox since {created_at.isoformat()}{detail}",
                event_id=event_id, bus_module=module.name,
            )
    return result


def check_events_applied(*, tenant_id: str | None, cutoff: datetime) -> CheckResult:
    """Find published events a consuming module neither applied once nor dead-lettered.

    For each module's published outbox rows, every module whose handler
    registry consumes that event type must have the event id exactly once
    in its inbox or in its dead-letter table. Rows published after
    ``cutoff`` may still be on their way and are skipped.
    """
    result = CheckResult(
        name="events_applied",
        description="Every published event is in each consuming module's inbox once, or in its dead letters.",
    )
    modules = all_modules()
    inbox_counts = {
        module.name: Counter(
            str(event_id)
            for event_id in processed_event_queryset(module=module.name, tenant_id=tenant_id)
            .filter(consumer=module.consumer_name)
            .values_list("event_id", flat=True)
        )
        for module in modules
    }
    dead_lettered = {
        module.name: {
            str(event_id)
            for event_id in dead_letter_queryset(module=module.name, tenant_id=tenant_id)
            .filter(consumer=module.consumer_name, event_id__isnull=False)
            .values_list("event_id", flat=True)
        }
        for module in modules
    }

    for producer in modules:
        published = outbox_event_queryset(module=producer.name, tenant_id=tenant_id).filter(
            state=OutboxState.PUBLISHED, published_at__lt=cutoff
        )
        for event_id, event_type in published.order_by("id").values_list("event_id", "event_type"):
            event_id = str(event_id)
            for consumer in modules:
                subscription = consumer.handlers.get(event_type)
                if subscription is None or subscription.event_type.producer != producer.name:
                    continue
                result.rows_checked += 1
                applied = inbox_counts[consumer.name][event_id]
                if applied == 1 or (applied == 0 and event_id in dead_lettered[consumer.name]):
                    continue
                message = (
                    f"{event_type} from {producer.name} is neither in the {consumer.name} inbox "
                    "nor in its dead letters"
                    if applied == 0
                    else f"{event_type} from {producer.name} is in the {consumer.name} inbox {applied} times"
                )
                result.add(message, event_id=event_id, bus_module=consumer.name)
    return result


def check_notifications_recorded(
    *, tenant_id: str | None, notifications: list[NotificationAuditRow], cutoff: datetime
) -> CheckResult:
    """Find events with an email template that left no notification, and stuck pending emails.

    Events published after ``cutoff`` may still be on their way, so they are
    skipped. Pending notifications created after it are skipped too, because
    the send sweep may not have run since.
    """
    result = CheckResult(
        name="notifications_recorded",
        description=(
            "Every event with an email template produced its notification, "
            "and no notification is pending longer than the staleness threshold."
        ),
        rows_checked=len(notifications),
    )
    recorded = {(row.source_event_id, row.template) for row in notifications}

    for producer in all_modules():
        published = outbox_event_queryset(module=producer.name, tenant_id=tenant_id).filter(
            state=OutboxState.PUBLISHED,
            published_at__lt=cutoff,
            event_type__in=list(TEMPLATE_FOR_EVENT_TYPE),
        )
        for event_id, event_type in published.order_by("id").values_list("event_id", "event_type"):
            template = TEMPLATE_FOR_EVENT_TYPE[event_type]
            result.rows_checked += 1
            if (str(event_id), template) not in recorded:
                result.add(f"{event_type} produced no {template} notification", event_id=event_id)

    for row in notifications:
        if row.status == "pending" and row.created_at < cutoff:
            result.add(
                f"{row.template} notification pending since {row.created_at.isoformat()}",
                notification_id=row.notification_id, event_id=row.source_event_id,
            )
    return result
