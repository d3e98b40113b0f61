"""Events the ar module consumes and how it applies them.

Each handler checks the payload as a service request, with the envelope's
``occurred_at`` as the service's ``now``, and defers the request to the end
of the delivery, where the requests of a group of messages are applied
together, in message order. An error propagates, so the bus rolls back,
retries with backoff and finally dead-letters the event.

NOTE: two groups that each mix invoice requests and payment events can
deadlock, since each run of deferred work takes its locks in its own order.
The NATS runner and the in-process bus fetch each stream on its own, so an
ar group contains either invoice requests or payment events. A deadlock rolls
one group back, and its messages are applied one at a time.
"""

from datetime import date

from ar.errors import InvalidInvoiceRequest
from ar.services import (
    InvoiceLineInput,
    gateway_payment_check,
    invoice_apply_payments,
    invoice_create_for_billing_periods,
    invoice_request_check,
    payment_failure_check,
)
from eventbus.context import defer_to_delivery_end
from eventbus.envelope import Envelope
from eventbus.registry import HandlerRegistry
from payments.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentFailed, PaymentSucceeded
from subscriptions.events import INVOICE_REQUESTED, InvoiceRequested

registry = HandlerRegistry()


@registry.on(INVOICE_REQUESTED)
def on_invoice_requested(envelope: Envelope, payload: InvoiceRequested) -> None:
    """Create and finalize the billing period's invoice; a repeated request changes nothing.

    The request is checked at once and the invoice is created at the end of
    the delivery, together with those of the other requests in its group.
    The tenant's invoice number lock is then held only while they are
    written, instead of for the whole group.
    """
    line = InvoiceLineInput(
        description=payload.description,
        quantity=payload.quantity,
        unit_amount_minor=payload.unit_amount_minor,
        amount_minor=payload.amount_minor,
        period_start=_parse_date(payload.period_start, "period_start"),
        period_end=_parse_date(payload.period_end, "period_end"),
    )
    request = invoice_request_check(
        tenant_id=envelope.tenant_id,
        customer_id=payload.customer_id,
        billing_period_id=payload.billing_period_id,
        subscription_id=payload.subscription_id,
        currency=payload.currency,
        lines=[line],
        now=envelope.occurred_at,
        cause=envelope,
    )
    defer_to_delivery_end(invoice_create_for_billing_periods, request)


@registry.on(PAYMENT_SUCCEEDED)
def on_payment_succeeded(envelope: Envelope, payload: PaymentSucceeded) -> None:
    """Apply the collected payment to its invoice, once per payment id.

    The payment is checked at once and applied at the end of the delivery,
    together with the other payments of its group: their customers and
    invoices are then locked with two statements, in id order.
    """
    payment = gateway_payment_check(
        tenant_id=envelope.tenant_id,
        invoice_id=payload.invoice_id,
        payment_id=payload.payment_id,
        amount_minor=payload.amount_minor,
        currency=payload.currency,
        now=envelope.occurred_at,
        cause=envelope,
    )
    defer_to_delivery_end(invoice_apply_payments, payment)


@registry.on(PAYMENT_FAILED)
def on_payment_failed(envelope: Envelope, payload: PaymentFailed) -> None:
    """Write off the invoice after the final failed attempt; earlier failures change nothing.

    The failure is applied at the end of the delivery, in order with the
    payments of its group, so a stale failure after a payment of the same
    invoice is ignored as it would be alone.
    """
    failure = payment_failure_check(
        invoice_id=payload.invoice_id,
        payment_id=payload.payment_id,
        final=payload.final,
        now=envelope.occurred_at,
        cause=envelope,
    )
    defer_to_delivery_end(invoice_apply_payments, failure)


def _parse_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInvoiceRequest(
            f"{field} {value!r} is not an ISO 8601 date; the requester must send dates such as '2026-01-31'"
        ) from None
