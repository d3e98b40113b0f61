from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from payments.errors import PaymentNotFound
from payments.models import Payment, PaymentAttempt
from payments.services import payment_attempt_charge
from payments.tests.factories import (
    REQUESTED_AT,
    PaymentFactory,
    PaymentMethodFactory,
    payment_paying_with,
)
from payments.tests.faulty_gateways import RacingChargeGateway
from payments.tests.support import (
    attempt_count,
    outbox_events,
    simulated_charge_count,
    statements_of,
)

pytestmark = pytest.mark.django_db(databases="__all__")

NOW = REQUESTED_AT


def only_attempt(payment: Payment) -> PaymentAttempt:
    (attempt,) = PaymentAttempt.objects.using("payments").filter(payment=payment)
    return attempt


class TestTokenOutcomes:
    @pytest.mark.parametrize("token", ["tok_success", "tok_slow"])
    def test_successful_token_succeeds(self, payments_settings, token):
        payment = payment_paying_with(token)

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        attempt = only_attempt(payment)
        assert charged.status == "succeeded"
        assert charged.attempt_count == 1
        assert charged.succeeded_at == NOW
        assert charged.next_attempt_at is None
        assert charged.version == 3
        assert attempt.status == "succeeded"
        assert attempt.idempotency_key == f"{payment.idempotency_key}:attempt-1"
        assert attempt.gateway_reference.startswith("sim_ch_")
        assert attempt.failure_code == ""
        assert attempt.started_at == NOW
        assert attempt.finished_at == NOW
        (event,) = outbox_events()
        assert event["event_type"] == "payments.payment.succeeded"
        assert event["aggregate_type"] == "payment"
        assert event["aggregate_id"] == str(payment.id)
        assert event["aggregate_version"] == 3
        assert event["tenant_id"] == "tenant-a"
        assert event["correlation_id"] == str(payment.correlation_id)
        assert event["occurred_at"] == "2026-03-01T09:00:00Z"
        assert event["payload"] == {
            "payment_id": str(payment.id),
            "invoice_id": payment.invoice_id,
            "customer_id": payment.customer_id,
            "amount_minor": 2500,
            "currency": "USD",
            "gateway_reference": attempt.gateway_reference,
            "attempt_number": 1,
            "succeeded_at": "2026-03-01T09:00:00Z",
        }

    @pytest.mark.parametrize(
        ("token", "failure_code", "failure_message"),
        [
            (
                "tok_insufficient_funds",
                "insufficient_funds",
                "The account has insufficient funds; the charge may succeed later.",
            ),
            (
                "tok_processing_error",
                "processing_error",
                "The gateway failed to process the charge; retry later.",
            ),
            (
                "tok_insufficient_then_success",
                "insufficient_funds",
                "The account has insufficient funds; the charge may succeed later.",
            ),
        ],
    )
    def test_retryable_failure_schedules_retry(self, payments_settings, token, failure_code, failure_message):
        payment = payment_paying_with(token)

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        attempt = only_attempt(payment)
        assert charged.status == "retry_scheduled"
        assert charged.first_failed_at == NOW
        assert charged.next_attempt_at == NOW + timedelta(days=1)
        assert charged.failed_at is None
        assert attempt.status == "failed"
        assert attempt.failure_code == failure_code
        assert attempt.retryable is True
        (event,) = outbox_events()
        assert event["event_type"] == "payments.payment.failed"
        assert event["aggregate_version"] == 3
        assert event["payload"] == {
            "payment_id": str(payment.id),
            "invoice_id": payment.invoice_id,
            "customer_id": payment.customer_id,
            "amount_minor": 2500,
            "currency": "USD",
            "failure_code": failure_code,
            "failure_message": failure_message,
            "attempt_number": 1,
            "retryable": True,
            "final": False,
            "failed_at": "2026-03-01T09:00:00Z",
            "next_attempt_at": "2026-03-02T09:00:00Z",
        }

    def test_hard_decline_fails_final(self, payments_settings):
        payment = payment_paying_with("tok_decline")

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        assert charged.status == "failed"
        assert charged.failed_at == NOW
        assert charged.next_attempt_at is None
        assert only_attempt(payment).retryable is False
        (event,) = outbox_events()
        assert event["payload"] == {
            "payment_id": str(payment.id),
            "invoice_id": payment.invoice_id,
            "customer_id": payment.customer_id,
            "amount_minor": 2500,
            "currency": "USD",
            "failure_code": "card_declined",
            "failure_message": "The card was declined; ask the customer for another payment method.",
            "attempt_number": 1,
            "retryable": False,
            "final": True,
            "failed_at": "2026-03-01T09:00:00Z",
            "next_attempt_at": None,
        }

    def test_default_method_is_charged(self, payments_settings):
        payment = PaymentFactory()
        PaymentMethodFactory(customer_id=payment.customer_id, token="tok_decline", is_default=False)
        default = PaymentMethodFactory(customer_id=payment.customer_id, token="tok_success", is_default=True)

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        assert charged.status == "succeeded"
        assert only_attempt(payment).payment_method_id == default.id


class TestNoPaymentMethod:
    def test_fails_final_without_gateway(self, payments_settings):
        payment = PaymentFactory()

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        attempt = only_attempt(payment)
        assert charged.status == "failed"
        assert charged.attempt_count == 1
        assert attempt.status == "failed"
        assert attempt.payment_method is None
        assert attempt.failure_code == "no_payment_method"
        assert attempt.failure_message == (
            f"Customer {payment.customer_id} has no payment method to charge; add one with "
            "payment_method_upsert or in the admin under Payments > Payment methods."
        )
        assert simulated_charge_count() == 0
        (event,) = outbox_events()
        assert event["payload"]["failure_code"] == "no_payment_method"
        assert event["payload"]["final"] is True
        assert event["payload"]["retryable"] is False
        assert event["aggregate_version"] == 3

    def test_method_of_other_tenant_not_charged(self, payments_settings):
        payment = PaymentFactory()
        PaymentMethodFactory(tenant_id="tenant-b", customer_id=payment.customer_id)

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        assert charged.status == "failed"
        assert only_attempt(payment).failure_code == "no_payment_method"
        assert simulated_charge_count() == 0


class TestNothingToCharge:
    def test_succeeded_payment_unchanged(self, payments_settings):
        payment = payment_paying_with("tok_success")
        payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        again = payment_attempt_charge(payment_id=str(payment.id), now=NOW + timedelta(days=1))

        assert again.status == "succeeded"
        assert again.version == 3
        assert attempt_count() == 1
        assert simulated_charge_count() == 1
        assert len(outbox_events()) == 1

    def test_retry_before_due_unchanged(self, payments_settings):
        payment = payment_paying_with("tok_insufficient_funds")
        payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        early = payment_attempt_charge(payment_id=str(payment.id), now=NOW + timedelta(hours=23))

        assert early.status == "retry_scheduled"
        assert early.attempt_count == 1
        assert early.version == 3
        assert attempt_count() == 1
        assert simulated_charge_count() == 1

    def test_unknown_payment_rejected(self, payments_settings):
        with pytest.raises(PaymentNotFound) as raised:
            payment_attempt_charge(payment_id="1b5cbe55-3c6d-4a0b-a3d4-4a8e25f1d0f7", now=NOW)

        assert str(raised.value) == (
            "payment 1b5cbe55-3c6d-4a0b-a3d4-4a8e25f1d0f7 does not exist; pass the id of a payment"
        )
        assert raised.value.code == "payment_not_found"
        assert attempt_count() == 0

    def test_malformed_payment_id_rejected(self, payments_settings):
        with pytest.raises(PaymentNotFound) as raised:
            payment_attempt_charge(payment_id="pay_1", now=NOW)

        assert str(raised.value) == "payment id 'pay_1' is not a UUID; pass the id of a payment"


class TestGatewayWithoutOutcome:
    def test_timeout_leaves_attempt_processing(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.TimeoutGateway"
        payment = payment_paying_with("tok_success")

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        assert charged.status == "processing"
        assert only_attempt(payment).status == "processing"
        assert simulated_charge_count() == 1
        assert outbox_events() == []

    def test_next_call_resumes_with_same_key(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.TimeoutGateway"
        payment = payment_paying_with("tok_success")
        payment_attempt_charge(payment_id=str(payment.id), now=NOW)
        payments_settings.PAYMENTS_GATEWAY = "simulated"

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW + timedelta(minutes=15))

        attempt = only_attempt(payment)
        assert charged.status == "succeeded"
        assert attempt.idempotency_key == f"{payment.idempotency_key}:attempt-1"
        assert attempt.started_at == NOW
        assert simulated_charge_count() == 1
        assert [event["event_type"] for event in outbox_events()] == ["payments.payment.succeeded"]


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestOutcomeRecordedMeanwhile:
    def test_second_outcome_not_recorded(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.RacingChargeGateway"
        RacingChargeGateway.raced = False
        RacingChargeGateway.now = NOW + timedelta(minutes=1)
        payment = payment_paying_with("tok_success")

        charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        attempt = only_attempt(payment)
        assert RacingChargeGateway.raced is True
        assert charged.status == "succeeded"
        assert charged.version == 3
        # The racing call recorded the outcome at its own time.
        assert charged.succeeded_at == NOW + timedelta(minutes=1)
        assert attempt.status == "succeeded"
        assert attempt.finished_at == NOW + timedelta(minutes=1)
        assert simulated_charge_count() == 1
        assert [event["event_type"] for event in outbox_events()] == ["payments.payment.succeeded"]


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestQueryCount:
    """Committed transactions, so the captured statements are those of production."""

    def test_first_charge_statements(self, payments_settings):
        payment = payment_paying_with("tok_success")

        with CaptureQueriesContext(connections["payments"]) as queries:
            charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        assert charged.status == "succeeded"
        assert len(queries) == 14
        assert statements_of(queries) == [
            "BEGIN",  # transaction A
            "SELECT payments_payment",
            "SELECT payments_paymentmethod",
            "INSERT payments_paymentattempt",
            "UPDATE payments_payment",
            "COMMIT",
            "BEGIN",  # the simulated gateway
            "INSERT payments_simulatedcharge",
            "COMMIT",
            "BEGIN",  # transaction B
            "UPDATE payments_payment",
            "UPDATE payments_paymentattempt",
            "INSERT payments_outboxevent",
            "COMMIT",
        ]

    def test_retry_statements(self, payments_settings):
        payment = payment_paying_with("tok_insufficient_funds")
        payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        with CaptureQueriesContext(connections["payments"]) as queries:
            charged = payment_attempt_charge(payment_id=str(payment.id), now=NOW + timedelta(days=1))

        assert charged.attempt_count == 2
        assert len(queries) == 14

    def test_updates_write_changed_columns(self, payments_settings):
        payment = payment_paying_with("tok_success")

        with CaptureQueriesContext(connections["payments"]) as queries:
            payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        updates = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("UPDATE")]
        assert len(updates) == 3
        for sql in updates:
            assert '"amount_minor"' not in sql
            assert '"idempotency_key"' not in sql
