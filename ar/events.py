"""Events the accounts-receivable module publishes: its contract with other modules.

Invoice events carry the customer's name and email, so consumers need no
read of AR's tables to address a notification.
"""

from dataclasses import dataclass, field

from eventbus.schema import EventType


@dataclass(frozen=True)
class InvoiceFinalized:
    invoice_id: str
    invoice_number: str
    customer_id: str
    customer_name: str
    customer_email: str
    collection_method: str
    currency: str
    subtotal_minor: int
    credit_applied_minor: int
    total_minor: int
    amount_due_minor: int
    issued_on: str
    due_on: str
    # Each line: description, quantity, unit_amount_minor, amount_minor,
    # period_start, period_end (ISO dates or null).
    lines: list[dict] = field(default_factory=list)
    subscription_id: str | None = None
    billing_period_id: str | None = None


@dataclass(frozen=True)
class PaymentCollectionRequested:
    """Ask payments to charge ``amount_minor``; ``idempotency_key`` is stable per invoice."""

    invoice_id: str
    invoice_number: str
    customer_id: str
    amount_minor: int
    currency: str
    idempotency_key: str


@dataclass(frozen=True)
class InvoicePaid:
    invoice_id: str
    invoice_number: str
    customer_id: str
    customer_name: str
    customer_email: str
    currency: str
    total_minor: int
    amount_paid_minor: int
    paid_at: str
    subscription_id: str | None = None
    payment_id: str | None = None


@dataclass(frozen=True)
class InvoiceVoided:
    invoice_id: str
    invoice_number: str
    customer_id: str
    currency: str
    total_minor: int
    voided_at: str
    subscription_id: str | None = None


@dataclass(frozen=True)
class InvoiceMarkedUncollectible:
    invoice_id: str
    invoice_number: str
    customer_id: str
    customer_name: str
    customer_email: str
    currency: str
    amount_due_minor: int
    marked_at: str
    subscription_id: str | None = None


INVOICE_FINALIZED = EventType("ar.invoice.finalized", InvoiceFinalized)
PAYMENT_COLLECTION_REQUESTED = EventType("ar.payment.collection.requested", PaymentCollectionRequested)
INVOICE_PAID = EventType("ar.invoice.paid", InvoicePaid)
INVOICE_VOIDED = EventType("ar.invoice.voided", InvoiceVoided)
INVOICE_MARKED_UNCOLLECTIBLE = EventType("ar.invoice.marked_uncollectible", InvoiceMarkedUncollectible)
