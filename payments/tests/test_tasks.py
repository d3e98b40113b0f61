import pytest
from django.conf import settings

from billing.celery import app
from payments.models import Payment
from payments.tasks import retry_due_payments_task
from payments.tests.factories import PaymentFactory, PaymentMethodFactory


class TestRetryDuePaymentsTask:
    @pytest.mark.django_db(databases="__all__")
    def test_charges_due_payments_now(self, payments_settings):
        payment = PaymentFactory()
        PaymentMethodFactory(customer_id=payment.customer_id, token="tok_success")

        summary = retry_due_payments_task.apply().get()

        assert summary == {"attempted": 1, "succeeded": 1, "failed": 0, "rescheduled": 0, "resumed": 0}
        assert Payment.objects.using("payments").get().status == "succeeded"

    def test_registered_under_its_name(self):
        assert "payments.retry_due_payments" in app.tasks
        assert retry_due_payments_task.name == "payments.retry_due_payments"


class TestBeatSchedule:
    def test_hourly_entry_exists(self):
        entry = settings.CELERY_BEAT_SCHEDULE["retry-due-payments"]

        assert entry["task"] == "payments.retry_due_payments"
        assert entry["schedule"] == 3600.0
        assert entry["options"]["expires"] < entry["schedule"]
