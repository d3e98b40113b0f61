import pytest
from django.db import IntegrityError, transaction

from payments.models import PaymentAttempt, PaymentMethod
from payments.tests.factories import REQUESTED_AT, PaymentFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db(databases="__all__")


class TestConstraints:
    def test_second_default_method_rejected(self):
        first = PaymentMethodFactory(token="tok_success", is_default=True)

        with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
            PaymentMethodFactory(customer_id=first.customer_id, token="tok_decline", is_default=True)

    def test_other_customers_have_own_default(self):
        PaymentMethodFactory(is_default=True)
        PaymentMethodFactory(is_default=True)

        assert PaymentMethod.objects.using("payments").filter(is_default=True).count() == 2

    def test_token_stored_once_per_customer(self):
        first = PaymentMethodFactory(token="tok_success")

        with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
            PaymentMethodFactory(customer_id=first.customer_id, token="tok_success", is_default=False)

    def test_one_payment_per_invoice(self):
        first = PaymentFactory()

        with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
            PaymentFactory(invoice_id=first.invoice_id)

    def test_idempotency_key_unique(self):
        first = PaymentFactory()

        with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
            PaymentFactory(idempotency_key=first.idempotency_key)

    def test_retry_scheduled_needs_next_attempt(self):
        with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
            PaymentFactory(status="retry_scheduled", next_attempt_at=None)

    def test_attempt_number_once_per_payment(self):
        payment = PaymentFactory()
        PaymentAttempt.objects.using("payments").create(
            payment=payment, number=1, status="failed", idempotency_key="k:attempt-1", started_at=REQUESTED_AT
        )

        with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
            PaymentAttempt.objects.using("payments").create(
                payment=payment, number=1, status="failed", idempotency_key="k:attempt-1b", started_at=REQUESTED_AT
            )

    def test_one_processing_attempt_per_payment(self):
        payment = PaymentFactory()
        PaymentAttempt.objects.using("payments").create(
            payment=payment, number=1, status="processing", idempotency_key="k:attempt-1", started_at=REQUESTED_AT
        )

        with pytest.raises(IntegrityError), transaction.atomic(using="payments"):
            PaymentAttempt.objects.using("payments").create(
                payment=payment, number=2, status="processing", idempotency_key="k:attempt-2", started_at=REQUESTED_AT
            )
