from datetime import timedelta

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from payments.models import Payment, PaymentAttempt
from payments.services import payment_attempt_charge, payment_attempt_charge_many
from payments.tests.factories import REQUESTED_AT, PaymentFactory, payment_paying_with
from payments.tests.faulty_gateways import LongFailureCodeGateway, RacingChargeGateway
from payments.tests.support import (
    attempt_count,
    outbox_events,
    simulated_charge_count,
    statements_of,
)

pytestmark = pytest.mark.django_db(databases="__all__")

NOW = REQUESTED_AT


def reloaded(payment: Payment) -> Payment:
    return Payment.objects.using("payments").get(id=payment.id)


def charge_all(*payments: Payment, now=NOW) -> None:
    payment_attempt_charge_many(payment_ids=[str(payment.id) for payment in payments], now=now)


class TestOutcomes:
    def test_each_payment_gets_its_own_outcome(self, payments_settings):
        paid = payment_paying_with("tok_success")
        short = payment_paying_with("tok_insufficient_funds")
        declined = payment_paying_with("tok_decline")

        charge_all(paid, short, declined)

        assert reloaded(paid).status == "succeeded"
        assert reloaded(paid).succeeded_at == NOW
        assert reloaded(short).status == "retry_scheduled"
        assert reloaded(short).next_attempt_at > NOW
        assert reloaded(declined).status == "failed"
        for payment in (paid, short, declined):
            assert reloaded(payment).version == 3
            (attempt,) = PaymentAttempt.objects.using("payments").filter(payment=payment)
            assert attempt.number == 1
            assert attempt.started_at == NOW
            assert attempt.finished_at == NOW
            assert attempt.idempotency_key == f"{payment.idempotency_key}:attempt-1"
        assert attempt_count() == 3
        assert simulated_charge_count() == 3
        events = {event["aggregate_id"]: event for event in outbox_events()}
        assert events[str(paid.id)]["event_type"] == "payments.payment.succeeded"
        assert events[str(short.id)]["event_type"] == "payments.payment.failed"
        assert events[str(declined.id)]["event_type"] == "payments.payment.failed"
        assert {event["aggregate_version"] for event in events.values()} == {3}

    def test_same_outcome_as_one_at_a_time(self, payments_settings):
        together = [payment_paying_with(token) for token in ("tok_success", "tok_insufficient_funds")]
        alone = [payment_paying_with(token) for token in ("tok_success", "tok_insufficient_funds")]

        charge_all(*together)
        for payment in alone:
            payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        fields = ["status", "attempt_count", "version", "succeeded_at", "first_failed_at", "next_attempt_at"]
        for batch_payment, single_payment in zip(together, alone, strict=True):
            batch_row = reloaded(batch_payment)
            single_row = reloaded(single_payment)
            assert [getattr(batch_row, field) for field in fields] == [
                getattr(single_row, field) for field in fields
            ]

    def test_due_retry_charged_again(self, payments_settings):
        payment = payment_paying_with("tok_insufficient_funds")
        charge_all(payment)
        due_at = reloaded(payment).next_attempt_at

        charge_all(payment, now=due_at)

        row = reloaded(payment)
        assert row.attempt_count == 2
        assert row.version == 5
        assert attempt_count() == 2


class TestLeftForOneAtATime:
    def test_settled_and_early_payments_unchanged(self, payments_settings):
        paid = payment_paying_with("tok_success")
        short = payment_paying_with("tok_insufficient_funds")
        charge_all(paid, short)

        charge_all(paid, short, now=NOW + timedelta(hours=1))

        assert reloaded(paid).version == 3
        assert reloaded(short).version == 3
        assert attempt_count() == 2
        assert simulated_charge_count() == 2

    def test_missing_method_fails_that_payment_only(self, payments_settings):
        paid = payment_paying_with("tok_success")
        orphan = PaymentFactory()

        charge_all(paid, orphan)

        assert reloaded(paid).status == "succeeded"
        assert reloaded(orphan).status == "failed"
        assert PaymentAttempt.objects.using("payments").get(payment=orphan).failure_code == "no_payment_method"

    def test_bad_ids_spare_the_others(self, payments_settings, caplog):
        paid = payment_paying_with("tok_success")

        payment_attempt_charge_many(
            payment_ids=["pay_1", "1b5cbe55-3c6d-4a0b-a3d4-4a8e25f1d0f7", str(paid.id)], now=NOW
        )

        assert reloaded(paid).status == "succeeded"
        failures = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
        assert failures == [
            "Charging payment pay_1 failed",
            "Charging payment 1b5cbe55-3c6d-4a0b-a3d4-4a8e25f1d0f7 failed",
        ]

    def test_attempt_in_processing_resumed_with_its_key(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.TimeoutGateway"
        payment = payment_paying_with("tok_success")
        charge_all(payment)
        assert reloaded(payment).status == "processing"
        payments_settings.PAYMENTS_GATEWAY = "simulated"

        charge_all(payment, now=NOW + timedelta(minutes=15))

        assert reloaded(payment).status == "succeeded"
        assert attempt_count() == 1
        assert simulated_charge_count() == 1


class TestLongGatewayValues:
    @pytest.mark.parametrize("together", [True, False])
    def test_failure_code_cut_to_column(self, payments_settings, together):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.LongFailureCodeGateway"
        payment = payment_paying_with("tok_success")

        if together:
            charge_all(payment)
        else:
            payment_attempt_charge(payment_id=str(payment.id), now=NOW)

        attempt = PaymentAttempt.objects.using("payments").get(payment=payment)
        assert attempt.status == "failed"
        assert attempt.failure_code == LongFailureCodeGateway.failure_code[:64]
        assert reloaded(payment).status == "failed"
        (event,) = outbox_events()
        assert event["payload"]["failure_code"] == LongFailureCodeGateway.failure_code[:64]


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestOutcomeRecordedMeanwhile:
    def test_racing_outcome_kept_and_others_recorded(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.RacingChargeGateway"
        RacingChargeGateway.raced = False
        RacingChargeGateway.now = NOW + timedelta(minutes=1)
        raced, other = sorted(
            (payment_paying_with("tok_success") for _ in range(2)), key=lambda payment: str(payment.id)
        )

        charge_all(raced, other)

        assert RacingChargeGateway.raced is True
        # The first payment charged had its outcome recorded by the racing call, at that call's time.
        assert reloaded(raced).succeeded_at == NOW + timedelta(minutes=1)
        assert reloaded(other).succeeded_at == NOW
        assert reloaded(raced).version == 3
        assert reloaded(other).version == 3
        assert simulated_charge_count() == 2
        assert sorted(event["aggregate_id"] for event in outbox_events()) == [str(raced.id), str(other.id)]


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestQueryCount:
    """Committed transactions, so the captured statements are those of production."""

    def statements_to_charge(self, count: int) -> list[str]:
        payments = [payment_paying_with("tok_success") for _ in range(count)]
        with CaptureQueriesContext(connections["payments"]) as queries:
            charge_all(*payments)
        assert {reloaded(payment).status for payment in payments} == {"succeeded"}
        # The simulated gateway records each charge in a transaction of its
        # own, which a real gateway does not; those statements are left out.
        statements = " ".join(statements_of(queries)).replace("BEGIN INSERT payments_simulatedcharge COMMIT ", "")
        return statements.split(" ")

    def test_statements_do_not_grow_with_payments(self, payments_settings):
        expected = (
            "BEGIN SELECT payments_payment SELECT payments_paymentmethod INSERT payments_paymentattempt "
            "UPDATE payments_payment COMMIT "  # transaction A
            "BEGIN SELECT payments_payment UPDATE payments_payment UPDATE payments_paymentattempt "
            "INSERT payments_outboxevent COMMIT"  # transaction B
        )
        assert self.statements_to_charge(2) == self.statements_to_charge(6) == expected.split(" ")
