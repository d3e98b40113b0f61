"""Track the AR invoices of subscriptions and move subscriptions between active and past due.

AR owns invoices; this module keeps the status of each subscription invoice
from AR's and payments' events. A subscription is past due while one of its
invoices is delinquent: its final payment attempt failed, or AR marked it
uncollectible.

The services join the caller's transaction without a savepoint, which saves
two queries per event. An error inside them marks the caller's whole
transaction for rollback, which the bus consumer does on a handler error anyway.
"""

import logging
import uuid
from datetime import datetime

from django.db import connections, transaction
from django.db.models.query import RawQuerySet

from subscriptions.errors import InvalidSubscription
from subscriptions.models import (
    DELINQUENT_INVOICE_STATUSES,
    Subscription,
    SubscriptionInvoice,
    SubscriptionInvoiceStatus,
    SubscriptionStatus,
)
from subscriptions.services.common import ALIAS, lock_subscription, require_aware

logger = logging.getLogger(__name__)

Status = SubscriptionInvoiceStatus

# The statuses an invoice may move to from each status. Paid and voided are
# final in AR, so a failure reported after them is a stale redelivery.
_NEXT_STATUSES = {
    Status.OPEN: {Status.PAID, Status.PAYMENT_FAILED, Status.UNCOLLECTIBLE, Status.VOIDED},
    Status.PAYMENT_FAILED: {Status.PAID, Status.PAYMENT_FAILED, Status.UNCOLLECTIBLE, Status.VOIDED},
    Status.UNCOLLECTIBLE: {Status.PAID, Status.VOIDED},
    Status.PAID: set(),
    Status.VOIDED: set(),
}


def subscription_invoice_open(
    *,
    tenant_id: str,
    invoice_id: str,
    subscription_id: str | None,
    billing_period_id: str | None,
    now: datetime,
) -> SubscriptionInvoice | None:
    """Record a finalized AR invoice of a subscription, linked to its billing period.

    Return None, recording nothing, for an invoice of no subscription. An
    invoice already recorded (its later events arrived first) keeps its
    status and only gains the billing period link.

    Raises ``SubscriptionNotFound`` for a subscription id this module does not have.
    """
    require_aware(now)
    if subscription_id is None:
        return None
    invoice_id = _check_invoice_id(invoice_id)
    billing_period_uuid = _parse_uuid(billing_period_id)

    with transaction.atomic(using=ALIAS, savepoint=False):
        # The billing period is checked in the locking query, which saves a query per invoice.
        subscription = lock_subscription(
            subscription_id=subscription_id, tenant_id=tenant_id, with_plans=False,
            billing_period_id=billing_period_uuid,
        )
        linked_period_id = billing_period_uuid if getattr(subscription, "has_billing_period", False) else None
        if billing_period_id is not None and linked_period_id is None:
            logger.warning(
                "Invoice names billing period %s, which subscription %s does not have",
                billing_period_id, subscription.id,
                extra={"tenant_id": subscription.tenant_id, "subscription_id": str(subscription.id)},
            )

        invoice = _lock_or_create(
            subscription, invoice_id=invoice_id, status=Status.OPEN, billing_period_id=linked_period_id, now=now
        )
        if invoice.billing_period_id is None and linked_period_id is not None:
            invoice.billing_period_id = linked_period_id
            invoice.save(using=ALIAS, update_fields=["billing_period"])
    return invoice


def subscription_invoice_update_status(
    *,
    tenant_id: str,
    invoice_id: str,
    subscription_id: str | None,
    status: str,
    now: datetime,
) -> SubscriptionInvoice | None:
    """Apply a new status of a subscription invoice, and move its subscription if that changes it.

    A delinquent status (payment_failed, uncollectible) makes an active or
    trialing subscription past due. A paid invoice makes a past-due
    subscription active again once none of its invoices is delinquent. A
    voided invoice changes no subscription: a void withdraws a charge but is
    not a payment, so a past-due subscription stays past due until an
    invoice is paid. A canceled subscription never changes.

    An event older than the invoice's last change, or a change away from a
    final status (paid, voided), is stale and ignored. ``now`` is the
    event's ``occurred_at``.

    ``subscription_id`` None means the event does not say (payment events):
    the invoice must then be recorded already, or the call returns None and
    changes nothing.

    Raises ``SubscriptionNotFound`` for a subscription id this module does not have.
    """
    require_aware(now)
    if status not in Status.values or status == Status.OPEN:
        raise InvalidSubscription(
            f"invoice status {status!r} is invalid; use paid, payment_failed, uncollectible or voided"
        )
    invoice_id = _check_invoice_id(invoice_id)
    log_extra = {"tenant_id": tenant_id, "invoice_id": invoice_id}

    with transaction.atomic(using=ALIAS, savepoint=False):
        if subscription_id is None:
            subscription_id = (
                SubscriptionInvoice.objects.using(ALIAS)
                .filter(invoice_id=invoice_id)
                .values_list("subscription_id", flat=True)
                .first()
            )
            if subscription_id is None:
                # NOTE: an invoice of no subscription and a subscription
                # invoice whose ar.invoice.finalized has not arrived yet look
                # the same here. The second loses this payment failure, and
                # the subscription becomes past due only when AR marks the
                # invoice uncollectible, whose event names the subscription.
                logger.info(
                    "Ignored %s for invoice %s, which belongs to no known subscription",
                    status, invoice_id, extra=log_extra,
                )
                return None

        # The subscription is locked before the invoice, the order every caller uses.
        subscription = lock_subscription(subscription_id=str(subscription_id), tenant_id=tenant_id, with_plans=False)
        invoice = _update_status_if_allowed(subscription, invoice_id=invoice_id, status=status, now=now)
        if invoice is None:
            # The invoice is missing, belongs to another subscription, already
            # has this change, or the change is stale. The checks below find which.
            invoice = _lock_or_create(
                subscription, invoice_id=invoice_id, status=status, billing_period_id=None, now=now
            )
            if invoice.status != status or invoice.status_changed_at != now:
                if now < invoice.status_changed_at or status not in _NEXT_STATUSES[invoice.status]:
                    logger.info(
                        "Ignored stale %s for invoice %s, which is %s since %s",
                        status, invoice_id, invoice.status, invoice.status_changed_at.isoformat(),
                        extra=log_extra,
                    )
                    return invoice
                invoice.status = status
                invoice.status_changed_at = now
                invoice.save(using=ALIAS, update_fields=["status", "status_changed_at"])

        _update_subscription_status(subscription, invoice, now=now)
    return invoice


def _update_subscription_status(subscription: Subscription, invoice: SubscriptionInvoice, *, now: datetime) -> None:
    previous = subscription.status
    if previous == SubscriptionStatus.CANCELED:
        return

    if invoice.status in DELINQUENT_INVOICE_STATUSES:
        if previous not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            return
        subscription.status = SubscriptionStatus.PAST_DUE
    elif invoice.status == Status.PAID and previous == SubscriptionStatus.PAST_DUE:
        still_delinquent = (
            SubscriptionInvoice.objects.using(ALIAS)
            .filter(subscription_id=subscription.id, status__in=DELINQUENT_INVOICE_STATUSES)
            .exists()
        )
        if still_delinquent:
            return
        subscription.status = SubscriptionStatus.ACTIVE
    else:
        return

    subscription.version += 1
    subscription.updated_at = now
    subscription.save(using=ALIAS, update_fields=["status", "version", "updated_at"])
    logger.info(
        "Subscription %s is now %s after invoice %s became %s",
        subscription.id, subscription.status, invoice.invoice_id, invoice.status,
        extra={
            "tenant_id": subscription.tenant_id,
            "subscription_id": str(subscription.id),
            "invoice_id": invoice.invoice_id,
        },
    )


def _update_status_if_allowed(
    subscription: Subscription, *, invoice_id: str, status: str, now: datetime
) -> SubscriptionInvoice | None:
    """Move the invoice to ``status`` and return it, if the change is new and allowed.

    The conditions are those ``subscription_invoice_update_status`` checks:
    ``_NEXT_STATUSES`` allows the change and ``now`` is not older than the
    invoice's last change. Return None, changing nothing, when the invoice is
    missing, belongs to another subscription, already has ``status`` since
    ``now``, or the change is stale. Like ``SELECT ... FOR UPDATE``, the
    UPDATE keeps the row locked until the transaction ends.
    """
    connection = connections[ALIAS]
    table = connection.ops.quote_name(SubscriptionInvoice._meta.db_table)
    previous_statuses = [previous for previous, following in _NEXT_STATUSES.items() if status in following]
    placeholders = ", ".join(["%s"] * len(previous_statuses))
    # Raw SQL because one UPDATE ... RETURNING replaces the SELECT ... FOR
    # UPDATE and the UPDATE of the usual case. PostgreSQL and SQLite (3.35+)
    # both run it.
    sql = (
        f"UPDATE {table} SET status = %s, status_changed_at = %s "
        f"WHERE invoice_id = %s AND subscription_id = %s AND status IN ({placeholders}) "
        "AND status_changed_at <= %s AND NOT (status = %s AND status_changed_at = %s) "
        "RETURNING *"
    )
    params = [
        status, now,
        invoice_id, _db_subscription_id(subscription), *previous_statuses, now, status, now,
    ]
    return _first(SubscriptionInvoice.objects.db_manager(ALIAS).raw(sql, params))


def _lock_or_create(
    subscription: Subscription,
    *,
    invoice_id: str,
    status: str,
    billing_period_id: uuid.UUID | None,
    now: datetime,
) -> SubscriptionInvoice:
    """Return the invoice row locked for update, inserting it with ``status`` when missing."""
    connection = connections[ALIAS]
    table = connection.ops.quote_name(SubscriptionInvoice._meta.db_table)
    # Raw SQL because one INSERT ... ON CONFLICT DO NOTHING RETURNING replaces
    # a SELECT ... FOR UPDATE, and an INSERT inside a savepoint that catches
    # a concurrent insert of the same invoice. A conflicting insert of another
    # transaction makes this one wait for its outcome. PostgreSQL and SQLite
    # (3.35+) both run it.
    sql = (
        f"INSERT INTO {table} "
        "(tenant_id, invoice_id, subscription_id, billing_period_id, status, status_changed_at, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (invoice_id) DO NOTHING RETURNING *"
    )
    billing_period_field = SubscriptionInvoice._meta.get_field("billing_period")
    params = [
        subscription.tenant_id, invoice_id, _db_subscription_id(subscription),
        billing_period_field.get_db_prep_value(billing_period_id, connection), status,
        now, now,
    ]
    invoice = _first(SubscriptionInvoice.objects.db_manager(ALIAS).raw(sql, params))
    if invoice is None:
        invoice = SubscriptionInvoice.objects.using(ALIAS).select_for_update().get(invoice_id=invoice_id)
    if invoice.subscription_id != subscription.id:
        raise InvalidSubscription(
            f"invoice {invoice_id} belongs to subscription {invoice.subscription_id}, "
            f"not {subscription.id}; check the event's subscription_id"
        )
    return invoice


def _first(rows: RawQuerySet) -> SubscriptionInvoice | None:
    """Run the raw statement once and return its first row, or None."""
    return next(iter(rows), None)


def _db_subscription_id(subscription: Subscription):
    field = SubscriptionInvoice._meta.get_field("subscription")
    return field.get_db_prep_value(subscription.id, connections[ALIAS])


def _parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _check_invoice_id(invoice_id: str) -> str:
    try:
        return str(uuid.UUID(str(invoice_id)))
    except ValueError:
        raise InvalidSubscription(f"invoice_id {invoice_id!r} is not a UUID; pass the AR invoice's id") from None
