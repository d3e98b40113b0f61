"""Factories for payments tests: tenants, payment methods, payments, collection requests."""

import uuid
from datetime import UTC, datetime

import factory
from factory.django import DjangoModelFactory

from ar.events import PAYMENT_COLLECTION_REQUESTED, PaymentCollectionRequested
from billing.tenancy.models import Tenant
from eventbus.consumer import DeliveryResult, deliver
from eventbus.envelope import Envelope
from eventbus.registry import get_module
from payments.models import Payment, PaymentMethod, PaymentMethodKind, PaymentStatus

TENANT_ID = "tenant-a"
# The moment every collection request in these tests occurs at.
REQUESTED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant
        database = "default"
        django_get_or_create = ["id"]

    id = TENANT_ID
    name = "Tenant A"
    created_at = REQUESTED_AT


class PaymentMethodFactory(DjangoModelFactory):
    class Meta:
        model = PaymentMethod
        database = "payments"

    tenant_id = TENANT_ID
    customer_id = factory.LazyFunction(new_id)
    token = "tok_success"
    kind = PaymentMethodKind.CARD
    is_default = True
    created_at = REQUESTED_AT
    updated_at = REQUESTED_AT


class PaymentFactory(DjangoModelFactory):
    """A pending payment of 25.00 USD, as the collection handler creates it."""

    class Meta:
        model = Payment
        database = "payments"

    tenant_id = TENANT_ID
    invoice_id = factory.LazyFunction(new_id)
    invoice_number = factory.Sequence(lambda number: f"INV-2026-{number + 1:04d}")
    customer_id = factory.LazyFunction(new_id)
    amount_minor = 2500
    currency = "USD"
    idempotency_key = factory.LazyAttribute(lambda payment: f"invoice:{payment.invoice_id}:collection")
    status = PaymentStatus.PENDING
    next_attempt_at = REQUESTED_AT
    correlation_id = factory.LazyFunction(uuid.uuid4)
    version = 1
    created_at = REQUESTED_AT
    updated_at = REQUESTED_AT


class CollectionRequestFactory(factory.Factory):
    """The payload of ar.payment.collection.requested for 25.00 USD."""

    class Meta:
        model = PaymentCollectionRequested

    invoice_id = factory.LazyFunction(new_id)
    invoice_number = "INV-2026-0042"
    customer_id = factory.LazyFunction(new_id)
    amount_minor = 2500
    currency = "USD"
    idempotency_key = factory.LazyAttribute(lambda request: f"invoice:{request.invoice_id}:collection")


def collection_envelope(
    request: PaymentCollectionRequested,
    *,
    tenant_id: str = TENANT_ID,
    occurred_at: datetime = REQUESTED_AT,
    payload: dict | None = None,
) -> Envelope:
    """Wrap ``request`` (or a raw ``payload``) in a new envelope, as AR's outbox would."""
    return Envelope(
        event_id=uuid.uuid4(),
        event_type=PAYMENT_COLLECTION_REQUESTED.name,
        schema_version=PAYMENT_COLLECTION_REQUESTED.schema_version,
        aggregate_type="invoice",
        aggregate_id=request.invoice_id,
        aggregate_version=2,
        tenant_id=tenant_id,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        occurred_at=occurred_at,
        payload=payload if payload is not None else PAYMENT_COLLECTION_REQUESTED.dump(request),
    )


def deliver_to_payments(envelope: Envelope, *, delivery: int = 1) -> DeliveryResult:
    """Deliver ``envelope`` to the payments module as the bus would, creating its tenant first."""
    TenantFactory(id=envelope.tenant_id)
    return deliver(
        module=get_module("payments"), subject=envelope.subject, body=envelope.to_json(), delivery=delivery
    )


def payment_paying_with(token: str, **fields) -> Payment:
    """Create a pending payment whose customer has one payment method with ``token``."""
    payment = PaymentFactory(**fields)
    PaymentMethodFactory(tenant_id=payment.tenant_id, customer_id=payment.customer_id, token=token)
    return payment
