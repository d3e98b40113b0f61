"""Factories for ar rows and for the payloads of the events ar consumes."""

import uuid
from datetime import UTC, datetime

import factory

from ar.models import (
    CollectionMethod,
    CreditReason,
    Customer,
    CustomerCreditEntry,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
)
from payments.events import PaymentFailed, PaymentSucceeded
from subscriptions.events import InvoiceRequested

# The fixed "now" of the ar tests: a Sunday morning, UTC.
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        database = "ar"

    tenant_id = "acme"
    external_id = factory.Sequence(lambda n: f"cus-{n:04d}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"billing{n}@example.com")
    currency = "USD"
    collection_method = CollectionMethod.CHARGE_AUTOMATICALLY
    payment_terms_days = 0
    created_at = NOW
    updated_at = NOW


class CreditEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerCreditEntry
        database = "ar"

    customer = factory.SubFactory(CustomerFactory)
    currency = "USD"
    amount_minor = 1000
    reason = CreditReason.GRANTED
    note = "goodwill"
    created_at = NOW


class InvoiceFactory(factory.django.DjangoModelFactory):
    """An open invoice with consistent totals; add lines with InvoiceLineFactory."""

    class Meta:
        model = Invoice
        database = "ar"

    customer = factory.SubFactory(CustomerFactory)
    tenant_id = factory.SelfAttribute("customer.tenant_id")
    number = factory.Sequence(lambda n: f"FACTORY-{n:06d}")
    status = InvoiceStatus.OPEN
    currency = "USD"
    subtotal_minor = 2985
    credit_applied_minor = 0
    total_minor = factory.SelfAttribute("subtotal_minor")
    amount_paid_minor = 0
    amount_due_minor = factory.LazyAttribute(
        lambda invoice: invoice.total_minor - invoice.credit_applied_minor - invoice.amount_paid_minor
    )
    issued_on = NOW.date()
    due_on = NOW.date()
    finalized_at = NOW
    version = 2
    created_at = NOW
    updated_at = NOW


class InvoiceLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvoiceLine
        database = "ar"

    invoice = factory.SubFactory(InvoiceFactory)
    position = factory.Sequence(lambda n: n + 1)
    description = "Pro plan"
    quantity = 1
    unit_amount_minor = 2985
    amount_minor = factory.LazyAttribute(lambda line: line.quantity * line.unit_amount_minor)


class InvoiceRequestedFactory(factory.Factory):
    """Payload of subscriptions.invoice.requested; pass customer_id."""

    class Meta:
        model = InvoiceRequested

    billing_period_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    subscription_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    customer_id = None
    plan_code = "pro"
    plan_name = "Pro"
    period_start = "2026-03-01"
    period_end = "2026-04-01"
    quantity = 3
    unit_amount_minor = 995
    amount_minor = factory.LazyAttribute(lambda payload: payload.quantity * payload.unit_amount_minor)
    currency = "USD"
    description = "Pro plan, 3 seats, 1 Mar 2026 to 31 Mar 2026"
    bill_run_id = None


class PaymentSucceededFactory(factory.Factory):
    """Payload of payments.payment.succeeded; pass invoice_id and customer_id."""

    class Meta:
        model = PaymentSucceeded

    payment_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    invoice_id = None
    customer_id = None
    amount_minor = 2985
    currency = "USD"
    gateway_reference = factory.Sequence(lambda n: f"ch_{n:08d}")
    attempt_number = 1
    succeeded_at = "2026-03-01T09:31:00Z"


class PaymentFailedFactory(factory.Factory):
    """Payload of payments.payment.failed, final by default; pass invoice_id and customer_id."""

    class Meta:
        model = PaymentFailed

    payment_id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    invoice_id = None
    customer_id = None
    amount_minor = 2985
    currency = "USD"
    failure_code = "card_declined"
    failure_message = "Your card was declined."
    attempt_number = 4
    retryable = False
    final = True
    failed_at = "2026-03-08T09:30:00Z"
    next_attempt_at = None
