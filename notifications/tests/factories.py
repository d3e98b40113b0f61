"""Factories for notification tests: event payloads, envelopes, contacts and rows."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import factory

from ar.events import InvoiceFinalized
from billing.tenancy.services import tenant_ensure
from eventbus.consumer import DeliveryResult, deliver
from eventbus.envelope import Envelope
from eventbus.registry import get_module
from eventbus.schema import EventType
from notifications.models import Notification, NotificationStatus, NotificationTemplate
from payments.events import PaymentFailed, PaymentSucceeded
from subscriptions.events import SubscriptionCanceled

TENANT_ID = "tenant-a"
# The moment every test event occurs at.
OCCURRED_AT = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class InvoiceFinalizedFactory(factory.Factory):
    """A two-line invoice of 59.70 USD with 10.00 USD of credit applied."""

    class Meta:
        model = InvoiceFinalized

    invoice_id = factory.LazyFunction(new_id)
    invoice_number = "INV-2026-0042"
    customer_id = factory.LazyFunction(new_id)
    customer_name = "Ada Lovelace"
    customer_email = "ada@example.com"
    collection_method = "charge_automatically"
    currency = "USD"
    subtotal_minor = 5970
    credit_applied_minor = 1000
    total_minor = 5970
    amount_due_minor = 4970
    issued_on = "2026-02-01"
    due_on = "2026-02-15"
    lines = factory.LazyFunction(
        lambda: [
            {
                "description": "Pro plan",
                "quantity": 2,
                "unit_amount_minor": 1990,
                "amount_minor": 3980,
                "period_start": "2026-02-01",
                "period_end": "2026-03-01",
            },
            {
                "description": "Priority support",
                "quantity": 1,
                "unit_amount_minor": 1990,
                "amount_minor": 1990,
                "period_start": None,
                "period_end": None,
            },
        ]
    )


class PaymentSucceededFactory(factory.Factory):
    class Meta:
        model = PaymentSucceeded

    payment_id = factory.LazyFunction(new_id)
    invoice_id = factory.LazyFunction(new_id)
    customer_id = factory.LazyFunction(new_id)
    amount_minor = 4970
    currency = "USD"
    gateway_reference = "ch_3PqR7s2eZvKYlo2C"
    attempt_number = 1
    succeeded_at = "2026-02-01T09:31:05Z"


class PaymentFailedFactory(factory.Factory):
    """A declined first attempt with a retry scheduled three days later."""

    class Meta:
        model = PaymentFailed

    payment_id = factory.LazyFunction(new_id)
    invoice_id = factory.LazyFunction(new_id)
    customer_id = factory.LazyFunction(new_id)
    amount_minor = 4970
    currency = "USD"
    failure_code = "card_declined"
    failure_message = "Your card was declined."
    attempt_number = 1
    retryable = True
    final = False
    failed_at = "2026-02-01T09:31:05Z"
    next_attempt_at = "2026-02-04T09:31:05Z"


class SubscriptionCanceledFactory(factory.Factory):
    class Meta:
        model = SubscriptionCanceled

    subscription_id = factory.LazyFunction(new_id)
    customer_id = factory.LazyFunction(new_id)
    plan_code = "pro-monthly"
    plan_name = "Pro Monthly"
    canceled_at = "2026-02-10T15:00:00Z"
    ends_on = "2026-03-01"
    at_period_end = True


@dataclass(frozen=True)
class Contact:
    """A test double of ar.selectors.CustomerContact, with the same fields."""

    customer_id: str
    tenant_id: str = TENANT_ID
    external_id: str = "cus_ext_1"
    name: str = "Grace Hopper"
    email: str = "grace@example.com"
    currency: str = "USD"
    collection_method: str = "charge_automatically"


def envelope_for(
    event_type: EventType,
    payload,
    *,
    tenant_id: str = TENANT_ID,
    occurred_at: datetime = OCCURRED_AT,
    aggregate_version: int = 1,
) -> Envelope:
    """Build the envelope the producer would publish for ``payload``."""
    return Envelope(
        event_id=uuid.uuid4(),
        event_type=event_type.name,
        schema_version=event_type.schema_version,
        aggregate_type=event_type.name.split(".")[1],
        aggregate_id=new_id(),
        aggregate_version=aggregate_version,
        tenant_id=tenant_id,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        occurred_at=occurred_at,
        payload=event_type.dump(payload),
    )


def deliver_to_notifications(envelope: Envelope, *, delivery: int = 1) -> DeliveryResult:
    """Deliver ``envelope`` to the notifications module as the bus would, creating its tenant first."""
    tenant_ensure(tenant_id=envelope.tenant_id, now=envelope.occurred_at)
    return deliver(
        module=get_module("notifications"),
        subject=envelope.subject,
        body=envelope.to_json(),
        delivery=delivery,
    )


class NotificationFactory(factory.django.DjangoModelFactory):
    """A pending receipt notification, as notification_create leaves it."""

    class Meta:
        model = Notification
        database = "notifications"

    tenant_id = TENANT_ID
    source_event_id = factory.LazyFunction(uuid.uuid4)
    source_event_type = "payments.payment.succeeded"
    correlation_id = factory.LazyFunction(uuid.uuid4)
    template = NotificationTemplate.PAYMENT_RECEIPT
    customer_id = factory.LazyFunction(new_id)
    recipient = "grace@example.com"
    subject = "Receipt for your payment of 49.70 USD"
    body_text = "Hello Grace Hopper,\n"
    body_html = "<p>Hello Grace Hopper,</p>"
    status = NotificationStatus.PENDING
    created_at = OCCURRED_AT
