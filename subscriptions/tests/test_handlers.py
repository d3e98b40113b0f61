"""Handlers, driven through the bus's own delivery path: validation, inbox, handler."""

import uuid
from datetime import UTC, date, datetime

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from ar import events as ar_events
from billing.tenancy.services import tenant_ensure
from eventbus.consumer import Disposition, deliver
from eventbus.envelope import Envelope
from eventbus.models import DeadLetterReason
from eventbus.registry import get_module
from payments import events as payment_events
from subscriptions.errors import SubscriptionNotFound
from subscriptions.handlers import handle_invoice_paid
from subscriptions.models import (
    DeadLetter,
    ProcessedEvent,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
)
from subscriptions.services import bill_run_execute, subscription_cancel
from subscriptions.tests.factories import TENANT_ID, SubscriptionFactory
from subscriptions.tests.support import ALIAS, morning_of

pytestmark = pytest.mark.django_db(databases="__all__")

CUSTOMER_ID = "4b0f1c9e-6d3a-4d8e-9d7e-2f1a3c5b7e90"
INVOICE_A = "0b7c2f4e-1111-4a5b-8c9d-0e1f2a3b4c5d"
INVOICE_B = "0b7c2f4e-2222-4a5b-8c9d-0e1f2a3b4c5d"


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, day, hour, 0, tzinfo=UTC)


def envelope_for(event_type, payload, *, occurred_at: datetime, tenant_id: str = TENANT_ID) -> Envelope:
    return Envelope(
        event_id=uuid.uuid4(),
        event_type=event_type.name,
        schema_version=event_type.schema_version,
        aggregate_type="invoice",
        aggregate_id=getattr(payload, "invoice_id", "unknown"),
        aggregate_version=1,
        tenant_id=tenant_id,
        correlation_id=uuid.uuid4(),
        causation_id=None,
        occurred_at=occurred_at,
        payload=event_type.dump(payload),
    )


def send(event_type, payload, *, occurred_at: datetime, tenant_id: str = TENANT_ID, max_deliver: int = 5):
    envelope = envelope_for(event_type, payload, occurred_at=occurred_at, tenant_id=tenant_id)
    tenant_ensure(tenant_id=tenant_id, now=occurred_at)
    result = deliver(
        module=get_module("subscriptions"),
        subject=envelope.subject,
        body=envelope.to_json(),
        delivery=1,
        max_deliver=max_deliver,
    )
    return envelope, result


def finalized(subscription, invoice_id: str = INVOICE_A, billing_period_id: str | None = None):
    return ar_events.InvoiceFinalized(
        invoice_id=invoice_id,
        invoice_number="INV-0001",
        customer_id=CUSTOMER_ID,
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
        collection_method="charge_automatically",
        currency="USD",
        subtotal_minor=2900,
        credit_applied_minor=0,
        total_minor=2900,
        amount_due_minor=2900,
        issued_on="2026-01-01",
        due_on="2026-01-01",
        subscription_id=str(subscription.id) if subscription else None,
        billing_period_id=billing_period_id,
    )


def paid(subscription, invoice_id: str = INVOICE_A):
    return ar_events.InvoicePaid(
        invoice_id=invoice_id,
        invoice_number="INV-0001",
        customer_id=CUSTOMER_ID,
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
        currency="USD",
        total_minor=2900,
        amount_paid_minor=2900,
        paid_at="2026-01-05T12:00:00Z",
        subscription_id=str(subscription.id) if subscription else None,
    )


def uncollectible(subscription, invoice_id: str = INVOICE_A):
    return ar_events.InvoiceMarkedUncollectible(
        invoice_id=invoice_id,
        invoice_number="INV-0001",
        customer_id=CUSTOMER_ID,
        customer_name="Ada Lovelace",
        customer_email="ada@example.com",
        currency="USD",
        amount_due_minor=2900,
        marked_at="2026-01-05T12:00:00Z",
        subscription_id=str(subscription.id) if subscription else None,
    )


def voided(subscription, invoice_id: str = INVOICE_A):
    return ar_events.InvoiceVoided(
        invoice_id=invoice_id,
        invoice_number="INV-0001",
        customer_id=CUSTOMER_ID,
        currency="USD",
        total_minor=2900,
        voided_at="2026-01-05T12:00:00Z",
        subscription_id=str(subscription.id) if subscription else None,
    )


def payment_failed(invoice_id: str = INVOICE_A, *, final: bool = True):
    return payment_events.PaymentFailed(
        payment_id=str(uuid.uuid4()),
        invoice_id=invoice_id,
        customer_id=CUSTOMER_ID,
        amount_minor=2900,
        currency="USD",
        failure_code="card_declined",
        failure_message="The card was declined.",
        attempt_number=4,
        retryable=not final,
        final=final,
        failed_at="2026-01-05T12:00:00Z",
        next_attempt_at=None if final else "2026-01-08T12:00:00Z",
    )


def status_of(subscription) -> str:
    return Subscription.objects.using(ALIAS).get(id=subscription.id).status


def version_of(subscription) -> int:
    return Subscription.objects.using(ALIAS).get(id=subscription.id).version


def invoice_status(invoice_id: str = INVOICE_A) -> str:
    return SubscriptionInvoice.objects.using(ALIAS).get(invoice_id=invoice_id).status


@pytest.fixture
def subscription():
    return SubscriptionFactory(customer_id=CUSTOMER_ID, start_date=date(2026, 1, 1))


class TestInvoiceFinalized:
    def test_records_invoice_with_billing_period(self, subscription):
        bill_run_execute(as_of=date(2026, 1, 1), now=morning_of(date(2026, 1, 1)))
        period = subscription.billing_periods.get()

        _, result = send(ar_events.INVOICE_FINALIZED, finalized(subscription, billing_period_id=str(period.id)), occurred_at=at(1))

        assert result.disposition is Disposition.ACK
        invoice = SubscriptionInvoice.objects.using(ALIAS).get(invoice_id=INVOICE_A)
        assert invoice.subscription_id == subscription.id
        assert invoice.billing_period_id == period.id
        assert invoice.status == "open"
        assert invoice.status_changed_at == at(1)

    def test_other_subscriptions_period_not_linked(self, subscription, caplog):
        other = SubscriptionFactory(start_date=date(2026, 1, 1))
        bill_run_execute(as_of=date(2026, 1, 1), now=morning_of(date(2026, 1, 1)))
        other_period = other.billing_periods.get()

        _, result = send(
            ar_events.INVOICE_FINALIZED, finalized(subscription, billing_period_id=str(other_period.id)),
            occurred_at=at(1),
        )

        assert result.disposition is Disposition.ACK
        invoice = SubscriptionInvoice.objects.using(ALIAS).get(invoice_id=INVOICE_A)
        assert invoice.subscription_id == subscription.id
        assert invoice.billing_period_id is None
        assert (
            f"Invoice names billing period {other_period.id}, which subscription {subscription.id} does not have"
            in caplog.messages
        )

    def test_late_finalized_only_links_period(self, subscription):
        bill_run_execute(as_of=date(2026, 1, 1), now=morning_of(date(2026, 1, 1)))
        period = subscription.billing_periods.get()
        send(ar_events.INVOICE_PAID, paid(subscription), occurred_at=at(2))

        send(ar_events.INVOICE_FINALIZED, finalized(subscription, billing_period_id=str(period.id)), occurred_at=at(1))

        invoice = SubscriptionInvoice.objects.using(ALIAS).get(invoice_id=INVOICE_A)
        assert invoice.billing_period_id == period.id
        assert invoice.status == "paid"
        assert invoice.status_changed_at == at(2)

    def test_invoice_of_no_subscription_is_ignored(self, subscription):
        _, result = send(ar_events.INVOICE_FINALIZED, finalized(None), occurred_at=at(1))

        assert result.disposition is Disposition.ACK
        assert not SubscriptionInvoice.objects.using(ALIAS).exists()


class TestPastDue:
    def test_final_payment_failure_makes_past_due(self, subscription):
        send(ar_events.INVOICE_FINALIZED, finalized(subscription), occurred_at=at(1))

        send(payment_events.PAYMENT_FAILED, payment_failed(), occurred_at=at(5))

        assert status_of(subscription) == SubscriptionStatus.PAST_DUE
        assert invoice_status() == "payment_failed"
        assert version_of(subscription) == 2

    def test_retryable_payment_failure_changes_nothing(self, subscription):
        send(ar_events.INVOICE_FINALIZED, finalized(subscription), occurred_at=at(1))

        send(payment_events.PAYMENT_FAILED, payment_failed(final=False), occurred_at=at(5))

        assert status_of(subscription) == SubscriptionStatus.ACTIVE
        assert invoice_status() == "open"

    def test_failure_of_unknown_invoice_is_ignored(self, subscription):
        _, result = send(payment_events.PAYMENT_FAILED, payment_failed(), occurred_at=at(5))

        assert result.disposition is Disposition.ACK
        assert status_of(subscription) == SubscriptionStatus.ACTIVE
        assert not SubscriptionInvoice.objects.using(ALIAS).exists()

    def test_uncollectible_makes_past_due(self, subscription):
        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription), occurred_at=at(20))

        assert status_of(subscription) == SubscriptionStatus.PAST_DUE
        assert invoice_status() == "uncollectible"

    def test_canceled_subscription_stays_canceled(self, subscription):
        subscription_cancel(subscription_id=str(subscription.id), at_period_end=False, now=at(3))

        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription), occurred_at=at(20))

        assert status_of(subscription) == SubscriptionStatus.CANCELED
        assert invoice_status() == "uncollectible"


class TestInvoicePaid:
    def test_paid_invoice_reactivates_past_due(self, subscription):
        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription), occurred_at=at(20))

        send(ar_events.INVOICE_PAID, paid(subscription), occurred_at=at(22))

        assert status_of(subscription) == SubscriptionStatus.ACTIVE
        assert invoice_status() == "paid"
        assert version_of(subscription) == 3

    def test_other_delinquent_invoice_keeps_past_due(self, subscription):
        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription, INVOICE_A), occurred_at=at(20))
        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription, INVOICE_B), occurred_at=at(21))

        send(ar_events.INVOICE_PAID, paid(subscription, INVOICE_A), occurred_at=at(22))

        assert status_of(subscription) == SubscriptionStatus.PAST_DUE

        send(ar_events.INVOICE_PAID, paid(subscription, INVOICE_B), occurred_at=at(23))

        assert status_of(subscription) == SubscriptionStatus.ACTIVE

    def test_paid_invoice_of_active_subscription_changes_nothing(self, subscription):
        send(ar_events.INVOICE_PAID, paid(subscription), occurred_at=at(2))

        assert status_of(subscription) == SubscriptionStatus.ACTIVE
        assert version_of(subscription) == 1
        assert invoice_status() == "paid"


class TestStaleEvents:
    def test_late_failure_after_payment_is_ignored(self, subscription):
        send(ar_events.INVOICE_FINALIZED, finalized(subscription), occurred_at=at(1))
        send(ar_events.INVOICE_PAID, paid(subscription), occurred_at=at(6))

        send(payment_events.PAYMENT_FAILED, payment_failed(), occurred_at=at(5))

        assert status_of(subscription) == SubscriptionStatus.ACTIVE
        assert invoice_status() == "paid"

    def test_older_event_of_same_invoice_is_ignored(self, subscription):
        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription), occurred_at=at(20))

        send(ar_events.INVOICE_FINALIZED, finalized(subscription), occurred_at=at(1))
        send(payment_events.PAYMENT_FAILED, payment_failed(), occurred_at=at(5))

        assert invoice_status() == "uncollectible"
        invoice = SubscriptionInvoice.objects.using(ALIAS).get(invoice_id=INVOICE_A)
        assert invoice.status_changed_at == at(20)

    def test_redelivered_event_is_applied_once(self, subscription):
        envelope, _ = send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription), occurred_at=at(20))

        result = deliver(
            module=get_module("subscriptions"), subject=envelope.subject, body=envelope.to_json(), delivery=2
        )

        assert result.duplicate is True
        assert version_of(subscription) == 2
        assert ProcessedEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1


class TestInvoiceVoided:
    def test_void_is_recorded_without_state_change(self, subscription):
        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription), occurred_at=at(20))

        send(ar_events.INVOICE_VOIDED, voided(subscription), occurred_at=at(21))

        assert invoice_status() == "voided"
        assert status_of(subscription) == SubscriptionStatus.PAST_DUE

    def test_void_no_longer_blocks_reactivation(self, subscription):
        send(ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription, INVOICE_A), occurred_at=at(20))
        send(ar_events.INVOICE_VOIDED, voided(subscription, INVOICE_A), occurred_at=at(21))

        send(ar_events.INVOICE_PAID, paid(subscription, INVOICE_B), occurred_at=at(22))

        assert status_of(subscription) == SubscriptionStatus.ACTIVE


class TestUnknownSubscription:
    def test_handler_names_unknown_subscription(self, subscription):
        missing = "5f0e8a52-3c1d-4e6f-8a9b-0c1d2e3f4a5b"
        payload = ar_events.InvoicePaid(**{**paid(subscription).__dict__, "subscription_id": missing})
        envelope = envelope_for(ar_events.INVOICE_PAID, payload, occurred_at=at(2))

        with pytest.raises(SubscriptionNotFound) as raised:
            handle_invoice_paid(envelope, payload)

        assert raised.value.code == "subscription_not_found"
        assert str(raised.value) == f"subscription '{missing}' does not exist in tenant 'acme'"

    def test_unknown_subscription_is_dead_lettered(self, subscription):
        missing = "5f0e8a52-3c1d-4e6f-8a9b-0c1d2e3f4a5b"
        payload = ar_events.InvoicePaid(**{**paid(subscription).__dict__, "subscription_id": missing})

        envelope, result = send(ar_events.INVOICE_PAID, payload, occurred_at=at(2), max_deliver=1)

        assert result.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using(ALIAS).get(event_id=envelope.event_id)
        assert dead.reason == DeadLetterReason.HANDLER_FAILED
        assert f"subscription '{missing}' does not exist in tenant 'acme'" in dead.error
        assert not SubscriptionInvoice.objects.using(ALIAS).exists()
        assert not ProcessedEvent.objects.using(ALIAS).exists()

    def test_subscription_of_other_tenant_is_not_found(self, subscription):
        envelope, result = send(
            ar_events.INVOICE_MARKED_UNCOLLECTIBLE, uncollectible(subscription), occurred_at=at(20),
            tenant_id="globex", max_deliver=1,
        )

        assert result.disposition is Disposition.TERMINATE
        assert status_of(subscription) == SubscriptionStatus.ACTIVE
        dead = DeadLetter.objects.using(ALIAS).get(event_id=envelope.event_id)
        assert f"subscription '{subscription.id}' does not exist in tenant 'globex'" in dead.error


class TestQueryCount:
    """The handlers on the bill run's path; the counts include the bus's inbox row.

    The bus's transaction runs inside the test's, so it costs a savepoint and
    its release here, where a consumer issues BEGIN and COMMIT instead.
    """

    def test_finalized_query_count(self, subscription):
        bill_run_execute(as_of=date(2026, 1, 1), now=morning_of(date(2026, 1, 1)))
        period = subscription.billing_periods.get()

        with CaptureQueriesContext(connections[ALIAS]) as queries:
            _, result = send(
                ar_events.INVOICE_FINALIZED, finalized(subscription, billing_period_id=str(period.id)),
                occurred_at=at(1),
            )

        assert result.disposition is Disposition.ACK
        # Inbox row, the subscription lock that also checks the billing
        # period, the invoice insert, and the bus's savepoint and release.
        assert len(queries) == 5, [query["sql"] for query in queries]

    def test_paid_query_count(self, subscription):
        send(ar_events.INVOICE_FINALIZED, finalized(subscription), occurred_at=at(1))

        with CaptureQueriesContext(connections[ALIAS]) as queries:
            _, result = send(ar_events.INVOICE_PAID, paid(subscription), occurred_at=at(2))

        assert result.disposition is Disposition.ACK
        assert invoice_status() == "paid"
        # Inbox row, the subscription lock, one conditional UPDATE of the
        # invoice, and the bus's savepoint and release.
        assert len(queries) == 5, [query["sql"] for query in queries]

    def test_replayed_paid_query_count(self, subscription):
        send(ar_events.INVOICE_FINALIZED, finalized(subscription), occurred_at=at(1))
        send(ar_events.INVOICE_PAID, paid(subscription), occurred_at=at(2))

        with CaptureQueriesContext(connections[ALIAS]) as queries:
            _, result = send(ar_events.INVOICE_PAID, paid(subscription), occurred_at=at(2))

        assert result.disposition is Disposition.ACK
        assert invoice_status() == "paid"
        assert version_of(subscription) == 1
        # As above, plus the insert that finds the invoice and its lock.
        assert len(queries) == 7, [query["sql"] for query in queries]
