"""Track the AR invoices of subscriptions and move subscriptions between active and past due.

AR owns invoices; this module keeps the status of each subscription invoice
from AR's and payments' events. A subscription is past due while one of its
invoices is delinquent: its final payment attempt failed, or AR marked it
uncollectible.
"""

import logging
import uuid
from datetime import datetime

from django.db import IntegrityError, transaction

from subscriptions.errors import InvalidSubscription
from subscriptions.models import (
    DELINQUENT_INVOICE_STATUSES,
    BillingPeriod,
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

    with transaction.atomic(using=ALIAS):
        subscription = lock_subscription(subscription_id=subscription_id, tenant_id=tenant_id)
        billing_period = _find_billing_period(subscription, billing_period_id)
        invoice = _lock_or_create(
            subscription, invoice_id=invoice_id, status=Status.OPEN, billing_period=billing_period, now=now
        )
        if invoice.billing_period_id is None and billing_period is not None:
            invoice.billing_period = billing_period
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

    with transaction.atomic(using=ALIAS):
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
        subscription = lock_subscription(subscription_id=str(subscription_id), tenant_id=tenant_id)
        invoice = _lock_or_create(subscription, invoice_id=invoice_id, status=status, billing_period=None, now=now)

        if invoice.status != status or invoice.status_changed_at != now:
            if now < invoice.status_changed_at or status not in _NEXT_STATUSES[invoice.status]:
                logger.info(
                    "Ignored stale %s for invoice %s, which is %s since %s",
                    status, invoice_id, invoice.status, invoice.status_changed_at.isoformat(), extra=log_extra,
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


def _lock_or_create(
    subscription: Subscription,
    *,
    invoice_id: str,
    status: str,
    billing_period: BillingPeriod | None,
    now: datetime,
) -> SubscriptionInvoice:
    """Return the invoice row locked for update, inserting it with ``status`` when missing."""
    invoices = SubscriptionInvoice.objects.using(ALIAS).select_for_update()
    invoice = invoices.filter(invoice_id=invoice_id).first()
    if invoice is None:
        try:
            with transaction.atomic(using=ALIAS):
                invoice = SubscriptionInvoice.objects.using(ALIAS).create(
                    tenant_id=subscription.tenant_id,
                    invoice_id=invoice_id,
                    subscription=subscription,
                    billing_period=billing_period,
                    status=status,
                    status_changed_at=now,
                    created_at=now,
                )
        except IntegrityError:
            # Inserted by a concurrent event about the same invoice.
            invoice = invoices.get(invoice_id=invoice_id)
    if invoice.subscription_id != subscription.id:
        raise InvalidSubscription(
            f"invoice {invoice_id} belongs to subscription {invoice.subscription_id}, "
            f"not {subscription.id}; check the event's subscription_id"
        )
    return invoice


def _find_billing_period(subscription: Subscription, billing_period_id: str | None) -> BillingPeriod | None:
    if billing_period_id is None:
        return None
    try:
        canonical_id = uuid.UUID(str(billing_period_id))
    except ValueError:
        canonical_id = None
    billing_period = None
    if canonical_id is not None:
        billing_period = (
            BillingPeriod.objects.using(ALIAS)
            .filter(id=canonical_id, subscription_id=subscription.id)
            .first()
        )
    if billing_period is None:
        logger.warning(
            "Invoice names billing period %s, which subscription %s does not have",
            billing_period_id, subscription.id,
            extra={"tenant_id": subscription.tenant_id, "subscription_id": str(subscription.id)},
        )
    return billing_period


def _check_invoice_id(invoice_id: str) -> str:
    try:
        return str(uuid.UUID(str(invoice_id)))
    except ValueError:
        raise InvalidSubscription(f"invoice_id {invoice_id!r} is not a UUID; pass the AR invoice's id") from None
