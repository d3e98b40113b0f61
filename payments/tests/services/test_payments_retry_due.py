import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction

from payments.models import Payment, PaymentAttempt
from payments.services import RetrySummary, payment_attempt_charge, payments_retry_due
from payments.tests.factories import (
    REQUESTED_AT,
    CollectionRequestFactory,
    PaymentFactory,
    PaymentMethodFactory,
    collection_envelope,
    deliver_to_payments,
)
from payments.tests.faulty_gateways import ProcessCrashed
from payments.tests.support import attempt_count, outbox_events, simulated_charge_count

pytestmark = pytest.mark.django_db(databases="__all__")

FIRST_FAILURE_AT = REQUESTED_AT
DAY = timedelta(days=1)


def payment_paying_with(token: str) -> Payment:
    payment = PaymentFactory()
    PaymentMethodFactory(tenant_id=payment.tenant_id, customer_id=payment.customer_id, token=token)
    return payment


def reload(payment: Payment) -> Payment:
    return Payment.objects.using("payments").get(id=payment.id)


def failed_payloads() -> list[dict]:
    return [event["payload"] for event in outbox_events() if event["event_type"] == "payments.payment.failed"]


class TestRecoveryOnRetry:
    def test_decline_recovers_on_first_retry(self, payments_settings):
        payment = payment_paying_with("tok_insufficient_then_success")
        payment_attempt_charge(payment_id=str(payment.id), now=FIRST_FAILURE_AT)
        assert reload(payment).next_attempt_at == FIRST_FAILURE_AT + DAY

        early = payments_retry_due(as_of=FIRST_FAILURE_AT + DAY - timedelta(seconds=1))
        summary = payments_retry_due(as_of=FIRST_FAILURE_AT + DAY)

        assert early == RetrySummary()
        assert summary == RetrySummary(attempted=1, succeeded=1)
        recovered = reload(payment)
        assert recovered.status == "succeeded"
        assert recovered.attempt_count == 2
        assert recovered.succeeded_at == FIRST_FAILURE_AT + DAY
        assert recovered.first_failed_at == FIRST_FAILURE_AT
        assert simulated_charge_count() == 2
        events = outbox_events()
        assert [event["event_type"] for event in events] == [
            "payments.payment.failed",
            "payments.payment.succeeded",
        ]
        assert [event["aggregate_version"] for event in events] == [3, 5]
        assert events[1]["payload"]["attempt_number"] == 2
        assert events[1]["payload"]["succeeded_at"] == "2026-03-02T09:00:00Z"
        keys = list(
            PaymentAttempt.objects.using("payments").order_by("number").values_list("idempotency_key", flat=True)
        )
        assert keys == [f"{payment.idempotency_key}:attempt-1", f"{payment.idempotency_key}:attempt-2"]


class TestExhaustedSchedule:
    def test_retries_counted_from_first_failure(self, payments_settings):
        payment = payment_paying_with("tok_insufficient_funds")
        payment_attempt_charge(payment_id=str(payment.id), now=FIRST_FAILURE_AT)
        next_attempts = [reload(payment).next_attempt_at]

        # Each retry runs an hour late, which must not shift the schedule.
        for _ in range(3):
            summary = payments_retry_due(as_of=next_attempts[-1] + timedelta(hours=1))
            assert summary.attempted == 1
            next_attempts.append(reload(payment).next_attempt_at)

        assert next_attempts == [
            FIRST_FAILURE_AT + timedelta(days=1),
            FIRST_FAILURE_AT + timedelta(days=3),
            FIRST_FAILURE_AT + timedelta(days=5),
            None,
        ]
        exhausted = reload(payment)
        assert exhausted.status == "failed"
        assert exhausted.attempt_count == 4
        assert exhausted.failed_at == FIRST_FAILURE_AT + timedelta(days=5, hours=1)
        assert simulated_charge_count() == 4
        payloads = failed_payloads()
        assert [(p["attempt_number"], p["retryable"], p["final"], p["next_attempt_at"]) for p in payloads] == [
            (1, True, False, "2026-03-02T09:00:00Z"),
            (2, True, False, "2026-03-04T09:00:00Z"),
            (3, True, False, "2026-03-06T09:00:00Z"),
            (4, True, True, None),
        ]

    def test_last_retry_reports_final(self, payments_settings):
        payment = payment_paying_with("tok_processing_error")
        payment_attempt_charge(payment_id=str(payment.id), now=FIRST_FAILURE_AT)
        for days in (1, 3):
            payments_retry_due(as_of=FIRST_FAILURE_AT + timedelta(days=days))

        summary = payments_retry_due(as_of=FIRST_FAILURE_AT + timedelta(days=5))

        assert summary == RetrySummary(attempted=1, failed=1)
        assert reload(payment).status == "failed"
        assert payments_retry_due(as_of=FIRST_FAILURE_AT + timedelta(days=30)) == RetrySummary()

    def test_schedule_setting_is_used(self, payments_settings):
        payments_settings.PAYMENTS_RETRY_SCHEDULE_DAYS = [2]
        payment = payment_paying_with("tok_insufficient_funds")
        payment_attempt_charge(payment_id=str(payment.id), now=FIRST_FAILURE_AT)
        assert reload(payment).next_attempt_at == FIRST_FAILURE_AT + timedelta(days=2)

        summary = payments_retry_due(as_of=FIRST_FAILURE_AT + timedelta(days=2))

        assert summary == RetrySummary(attempted=1, failed=1)
        assert reload(payment).attempt_count == 2

    def test_empty_schedule_fails_first_decline_final(self, payments_settings):
        payments_settings.PAYMENTS_RETRY_SCHEDULE_DAYS = []
        payment = payment_paying_with("tok_insufficient_funds")

        charged = payment_attempt_charge(payment_id=str(payment.id), now=FIRST_FAILURE_AT)

        assert charged.status == "failed"
        assert failed_payloads()[0]["final"] is True
        assert failed_payloads()[0]["retryable"] is True


class TestHardDecline:
    def test_final_at_once_and_never_retried(self, payments_settings):
        payment = payment_paying_with("tok_decline")
        payment_attempt_charge(payment_id=str(payment.id), now=FIRST_FAILURE_AT)

        summary = payments_retry_due(as_of=FIRST_FAILURE_AT + timedelta(days=30))

        assert summary == RetrySummary()
        assert reload(payment).status == "failed"
        assert attempt_count() == 1
        assert simulated_charge_count() == 1
        assert [(p["final"], p["retryable"]) for p in failed_payloads()] == [(True, False)]


class TestPendingPayments:
    def test_charge_that_never_ran_is_made(self, payments_settings):
        # The test's transaction never commits, so the handler's on_commit
        # charge never runs: the payment stays pending, as after a crash.
        request = CollectionRequestFactory()
        PaymentMethodFactory(customer_id=request.customer_id, token="tok_success")
        deliver_to_payments(collection_envelope(request))
        payment = Payment.objects.using("payments").get(invoice_id=request.invoice_id)
        assert payment.status == "pending"

        summary = payments_retry_due(as_of=REQUESTED_AT + timedelta(hours=1))

        assert summary == RetrySummary(attempted=1, succeeded=1)
        assert reload(payment).status == "succeeded"
        assert simulated_charge_count() == 1

    def test_limit_charges_oldest_first(self, payments_settings):
        older = payment_paying_with("tok_success")
        newer = PaymentFactory(next_attempt_at=REQUESTED_AT + timedelta(minutes=5))
        PaymentMethodFactory(customer_id=newer.customer_id, token="tok_success")

        summary = payments_retry_due(as_of=REQUESTED_AT + timedelta(hours=1), limit=1)

        assert summary == RetrySummary(attempted=1, succeeded=1)
        assert reload(older).status == "succeeded"
        assert reload(newer).status == "pending"

    def test_invalid_limit_rejected(self, payments_settings):
        payment_paying_with("tok_success")

        with pytest.raises(ValueError) as raised:
            payments_retry_due(as_of=REQUESTED_AT, limit=0)

        assert str(raised.value) == "limit=0 must be a whole number of at least 1, or None for no limit"
        assert attempt_count() == 0


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestCrashRecovery:
    def test_crash_before_gateway_call(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.CrashBeforeChargeGateway"
        payment = payment_paying_with("tok_success")
        with pytest.raises(ProcessCrashed):
            payment_attempt_charge(payment_id=str(payment.id), now=REQUESTED_AT)
        assert reload(payment).status == "processing"
        assert simulated_charge_count() == 0
        payments_settings.PAYMENTS_GATEWAY = "simulated"

        fresh = payments_retry_due(as_of=REQUESTED_AT + timedelta(seconds=599))
        summary = payments_retry_due(as_of=REQUESTED_AT + timedelta(seconds=600))

        assert fresh == RetrySummary()
        assert summary == RetrySummary(attempted=1, succeeded=1, resumed=1)
        assert reload(payment).status == "succeeded"
        assert attempt_count() == 1
        assert simulated_charge_count() == 1
        assert [event["event_type"] for event in outbox_events()] == ["payments.payment.succeeded"]

    def test_crash_after_gateway_call(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.CrashAfterChargeGateway"
        payment = payment_paying_with("tok_success")
        with pytest.raises(ProcessCrashed):
            payment_attempt_charge(payment_id=str(payment.id), now=REQUESTED_AT)
        assert reload(payment).status == "processing"
        assert simulated_charge_count() == 1
        payments_settings.PAYMENTS_GATEWAY = "simulated"

        summary = payments_retry_due(as_of=REQUESTED_AT + timedelta(hours=1))

        assert summary == RetrySummary(attempted=1, succeeded=1, resumed=1)
        attempt = PaymentAttempt.objects.using("payments").get()
        assert attempt.status == "succeeded"
        assert attempt.number == 1
        assert simulated_charge_count() == 1
        assert attempt.gateway_reference == outbox_events()[0]["payload"]["gateway_reference"]

    def test_crash_after_decline_keeps_decline(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.CrashAfterChargeGateway"
        payment = payment_paying_with("tok_insufficient_then_success")
        with pytest.raises(ProcessCrashed):
            payment_attempt_charge(payment_id=str(payment.id), now=REQUESTED_AT)
        payments_settings.PAYMENTS_GATEWAY = "simulated"

        summary = payments_retry_due(as_of=REQUESTED_AT + timedelta(hours=1))

        # The resumed attempt gets the recorded decline, not a fresh success.
        assert summary == RetrySummary(attempted=1, rescheduled=1, resumed=1)
        assert reload(payment).next_attempt_at == REQUESTED_AT + timedelta(hours=1) + DAY
        assert simulated_charge_count() == 1
        assert attempt_count() == 1

    def test_timeout_resumed_when_stale(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.TimeoutGateway"
        payment = payment_paying_with("tok_success")
        payment_attempt_charge(payment_id=str(payment.id), now=REQUESTED_AT)
        payments_settings.PAYMENTS_GATEWAY = "simulated"

        summary = payments_retry_due(as_of=REQUESTED_AT + timedelta(minutes=10))

        assert summary == RetrySummary(attempted=1, succeeded=1, resumed=1)
        assert simulated_charge_count() == 1


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestConcurrentCharges:
    def test_two_runners_charge_once(self, payments_settings):
        # tok_slow keeps the first call at the gateway while the second
        # runner takes the lock, finds attempt 1 in processing and resumes it.
        payments_settings.PAYMENTS_SIMULATED_SLOW_SECONDS = 0.3
        payment = payment_paying_with("tok_slow")
        results, errors = [], []

        def charge():
            try:
                results.append(payment_attempt_charge(payment_id=str(payment.id), now=REQUESTED_AT))
            except Exception as error:  # reported by the asserts below
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=charge) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert errors == []
        assert [charged.status for charged in results] == ["succeeded", "succeeded"]
        assert attempt_count() == 1
        assert simulated_charge_count() == 1
        assert len(outbox_events()) == 1

    def test_charge_inside_transaction_rejected(self, payments_settings):
        payment = payment_paying_with("tok_success")

        with pytest.raises(RuntimeError) as raised, transaction.atomic(using="payments"):
            payment_attempt_charge(payment_id=str(payment.id), now=REQUESTED_AT)

        assert str(raised.value) == "A durable atomic block cannot be nested within another atomic block."
        assert attempt_count() == 0
        assert simulated_charge_count() == 0
