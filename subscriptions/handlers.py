"""Events the subscriptions module consumes and how it applies them.

Each handler runs inside the consumer's transaction on the ``subscriptions``
alias, after the inbox row, and uses the event's ``occurred_at`` as its clock.
"""

from ar.events import (
    INVOICE_FINALIZED,
    INVOICE_MARKED_UNCOLLECTIBLE,
    INVOICE_PAID,
    INVOICE_VOIDED,
    InvoiceFinalized,
    InvoiceMarkedUncollectible,
    InvoicePaid,
    InvoiceVoided,
)
from eventbus.envelope import Envelope
from eventbus.registry import HandlerRegistry
from payments.events import PAYMENT_FAILED, PaymentFailed
from subscriptions.models import SubscriptionInvoiceStatus
from subscriptions.services import subscription_invoice_open, subscription_invoice_update_status

registry = HandlerRegistry()


@registry.on(INVOICE_FINALIZED)
def handle_invoice_finalized(envelope: Envelope, payload: InvoiceFinalized) -> None:
    """Record the invoice, so later payment events, which carry no subscription id, find it."""
    subscription_invoice_open(
        tenant_id=envelope.tenant_id,
        invoice_id=payload.invoice_id,
        subscription_id=payload.subscription_id,
        billing_period_id=payload.billing_period_id,
        now=envelope.occurred_at,
    )


@registry.on(INVOICE_PAID)
def handle_invoice_paid(envelope: Envelope, payload: InvoicePaid) -> None:
    _update(envelope, payload.invoice_id, payload.subscription_id, SubscriptionInvoiceStatus.PAID)


@registry.on(INVOICE_MARKED_UNCOLLECTIBLE)
def handle_invoice_marked_uncollectible(envelope: Envelope, payload: InvoiceMarkedUncollectible) -> None:
    _update(envelope, payload.invoice_id, payload.subscription_id, SubscriptionInvoiceStatus.UNCOLLECTIBLE)


@registry.on(INVOICE_VOIDED)
def handle_invoice_voided(envelope: Envelope, payload: InvoiceVoided) -> None:
    _update(envelope, payload.invoice_id, payload.subscription_id, SubscriptionInvoiceStatus.VOIDED)


@registry.on(PAYMENT_FAILED)
def handle_payment_failed(envelope: Envelope, payload: PaymentFailed) -> None:
    """Apply only a final failure: payments retries the others, which may still succeed."""
    if not payload.final:
        return
    _update(envelope, payload.invoice_id, None, SubscriptionInvoiceStatus.PAYMENT_FAILED)


def _update(envelope: Envelope, invoice_id: str, subscription_id: str | None, status: str) -> None:
    # Without a subscription id the service looks the invoice up, and ignores
    # an invoice of no subscription.
    subscription_invoice_update_status(
        tenant_id=envelope.tenant_id,
        invoice_id=invoice_id,
        subscription_id=subscription_id,
        status=status,
        now=envelope.occurred_at,
    )
