"""The events an invoice publishes, built from its rows and appended to the ar outbox."""

from datetime import datetime

from ar import events
from ar.models import Customer, Invoice, InvoiceLine
from ar.services.common import ALIAS
from eventbus.envelope import format_timestamp
from eventbus.outbox import NewEvent, outbox_append_many

AGGREGATE_TYPE = "invoice"


def collection_idempotency_key(*, invoice_id: str) -> str:
    """Return the key payments uses to charge an invoice at most once.

    The key is built from the invoice id alone, so every redelivery and every
    retry of a collection request carries the same key.
    """
    return f"ar-invoice-{invoice_id}-collection"


def publish(*, invoice_events: list[NewEvent], now: datetime) -> None:
    """Append ``invoice_events`` to the ar outbox in the caller's transaction."""
    if invoice_events:
        outbox_append_many(module=ALIAS, events=invoice_events, occurred_at=now)


def finalized_event(*, invoice: Invoice, customer: Customer, lines: list[InvoiceLine]) -> NewEvent:
    payload = events.InvoiceFinalized(
        invoice_id=str(invoice.id),
        invoice_number=invoice.number,
        customer_id=str(customer.id),
        customer_name=customer.name,
        customer_email=customer.email,
        collection_method=customer.collection_method,
        currency=invoice.currency,
        subtotal_minor=invoice.subtotal_minor,
        credit_applied_minor=invoice.credit_applied_minor,
        total_minor=invoice.total_minor,
        amount_due_minor=invoice.amount_due_minor,
        issued_on=invoice.issued_on.isoformat(),
        due_on=invoice.due_on.isoformat(),
        lines=[_line_document(line) for line in lines],
        subscription_id=_optional_id(invoice.subscription_id),
        billing_period_id=_optional_id(invoice.billing_period_id),
    )
    return _event(events.INVOICE_FINALIZED, invoice, payload)


def collection_requested_event(*, invoice: Invoice) -> NewEvent:
    payload = events.PaymentCollectionRequested(
        invoice_id=str(invoice.id),
        invoice_number=invoice.number,
        customer_id=str(invoice.customer_id),
        amount_minor=invoice.amount_due_minor,
        currency=invoice.currency,
        idempotency_key=collection_idempotency_key(invoice_id=str(invoice.id)),
    )
    return _event(events.PAYMENT_COLLECTION_REQUESTED, invoice, payload)


def paid_event(*, invoice: Invoice, customer: Customer, payment_id: str | None) -> NewEvent:
    payload = events.InvoicePaid(
        invoice_id=str(invoice.id),
        invoice_number=invoice.number,
        customer_id=str(customer.id),
        customer_name=customer.name,
        customer_email=customer.email,
        currency=invoice.currency,
        total_minor=invoice.total_minor,
        amount_paid_minor=invoice.amount_paid_minor,
        paid_at=format_timestamp(invoice.paid_at),
        subscription_id=_optional_id(invoice.subscription_id),
        payment_id=payment_id,
    )
    return _event(events.INVOICE_PAID, invoice, payload)


def voided_event(*, invoice: Invoice) -> NewEvent:
    payload = events.InvoiceVoided(
        invoice_id=str(invoice.id),
        invoice_number=invoice.number,
        customer_id=str(invoice.customer_id),
        currency=invoice.currency,
        total_minor=invoice.total_minor,
        voided_at=format_timestamp(invoice.voided_at),
        subscription_id=_optional_id(invoice.subscription_id),
    )
    return _event(events.INVOICE_VOIDED, invoice, payload)


def marked_uncollectible_event(*, invoice: Invoice, customer: Customer) -> NewEvent:
    payload = events.InvoiceMarkedUncollectible(
        invoice_id=str(invoice.id),
        invoice_number=invoice.number,
        customer_id=str(customer.id),
        customer_name=customer.name,
        customer_email=customer.email,
        currency=invoice.currency,
        amount_due_minor=invoice.amount_due_minor,
        marked_at=format_timestamp(invoice.marked_uncollectible_at),
        subscription_id=_optional_id(invoice.subscription_id),
    )
    return _event(events.INVOICE_MARKED_UNCOLLECTIBLE, invoice, payload)


def _event(event_type, invoice: Invoice, payload) -> NewEvent:
    return NewEvent(
        event_type=event_type,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=str(invoice.id),
        aggregate_version=invoice.version,
        tenant_id=invoice.tenant_id,
        payload=payload,
    )


def _line_document(line: InvoiceLine) -> dict:
    return {
        "description": line.description,
        "quantity": line.quantity,
        "unit_amount_minor": line.unit_amount_minor,
        "amount_minor": line.amount_minor,
        "period_start": line.period_start.isoformat() if line.period_start else None,
        "period_end": line.period_end.isoformat() if line.period_end else None,
    }


def _optional_id(value) -> str | None:
    return str(value) if value is not None else None
