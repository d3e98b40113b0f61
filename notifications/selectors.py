"""Reads of the delivery log, for other modules, the admin, commands and tests."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet

from notifications.errors import NotificationNotFound
from notifications.models import Notification, NotificationStatus, NotificationTemplate

ALIAS = "notifications"


def _notifications() -> QuerySet[Notification]:
    return Notification.objects.using(ALIAS)


def notification_get(*, notification_id: str) -> Notification:
    """Return one notification. Raises ``NotificationNotFound`` when no row has that id."""
    try:
        return _notifications().get(id=notification_id)
    except (Notification.DoesNotExist, ValidationError):
        raise NotificationNotFound(str(notification_id)) from None


def notification_list(
    *,
    tenant_id: str | None = None,
    status: str | None = None,
    template: str | None = None,
    source_event_id: str | None = None,
    customer_id: str | None = None,
) -> QuerySet[Notification]:
    """Return notifications matching every filter given, oldest first."""
    queryset = _notifications()
    if tenant_id is not None:
        queryset = queryset.filter(tenant_id=tenant_id)
    if status is not None:
        queryset = queryset.filter(status=status)
    if template is not None:
        queryset = queryset.filter(template=template)
    if source_event_id is not None:
        queryset = queryset.filter(source_event_id=source_event_id)
    if customer_id is not None:
        queryset = queryset.filter(customer_id=customer_id)
    return queryset.order_by("created_at", "id")


def emails_sent_count(*, tenant_id: str | None = None) -> int:
    """Count the notifications whose email was handed to the email backend."""
    return notification_list(tenant_id=tenant_id, status=NotificationStatus.SENT).count()


def notification_counts_by_status(
    *, tenant_id: str | None = None, template: str | None = None
) -> dict[str, int]:
    """Count notifications per status; every status is a key, zero when there are none."""
    counts = dict.fromkeys(NotificationStatus.values, 0)
    rows = (
        notification_list(tenant_id=tenant_id, template=template)
        .order_by()
        .values("status")
        .annotate(count=Count("id"))
    )
    for row in rows:
        counts[row["status"]] = row["count"]
    return counts


def invoice_numbers_for(*, invoice_ids: Iterable[str]) -> dict[tuple[str, str], str]:
    """Return the invoice numbers this module learned from ar.invoice.finalized, by (tenant id, invoice id).

    Payment events carry only the invoice id. The number is known here when
    the invoice email was recorded first, which is the usual order but not a
    guaranteed one, since the events come from different streams. Invoices
    without a known number are left out.
    """
    # The query filters by invoice id alone, so PostgreSQL reads the invoice
    # index. With the tenant in the WHERE clause and stale statistics, it
    # also scanned the tenant's whole index range (90 ms at 150,000 rows).
    # Invoice ids are unique across tenants; the key carries the tenant.
    rows = (
        _notifications()
        .filter(invoice_id__in=set(invoice_ids), template=NotificationTemplate.INVOICE_FINALIZED)
        .exclude(invoice_number="")
        .order_by()
        .values_list("tenant_id", "invoice_id", "invoice_number")
    )
    return {(tenant_id, invoice_id): number for tenant_id, invoice_id, number in rows}


@dataclass(frozen=True)
class NotificationAuditRow:
    """The notification fields the invariant checks compare with the events consumed."""

    notification_id: str
    tenant_id: str
    source_event_id: str
    template: str
    status: str
    created_at: datetime


def notification_audit_rows(*, tenant_id: str | None = None) -> list[NotificationAuditRow]:
    """Return every notification's audit fields, of one tenant or all, in creation order."""
    notifications = _notifications()
    if tenant_id is not None:
        notifications = notifications.filter(tenant_id=tenant_id)
    rows = notifications.order_by("created_at", "id").values_list(
        "id", "tenant_id", "source_event_id", "template", "status", "created_at"
    )
    return [
        NotificationAuditRow(
            notification_id=str(notification_id),
            tenant_id=row_tenant_id,
            source_event_id=str(source_event_id),
            template=template,
            status=status,
            created_at=created_at,
        )
        for notification_id, row_tenant_id, source_event_id, template, status, created_at in rows
    ]
