from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from payments.models import Payment
from payments.tests.factories import REQUESTED_AT, PaymentFactory, PaymentMethodFactory
from payments.tests.support import attempt_count

pytestmark = pytest.mark.django_db(databases="__all__")


def due_payment(**fields) -> Payment:
    payment = PaymentFactory(**fields)
    PaymentMethodFactory(customer_id=payment.customer_id, token="tok_success")
    return payment


def run(*args: str) -> str:
    output = StringIO()
    call_command("retry_payments", *args, stdout=output)
    return output.getvalue()


class TestRetryPayments:
    def test_as_of_with_offset(self, payments_settings):
        payment = due_payment()

        output = run("--as-of", "2026-03-01T10:00:00+01:00")

        assert output == (
            "Charged 1 due payment(s) as of 2026-03-01T09:00:00+00:00: 1 succeeded, 0 rescheduled, "
            "0 failed for good, 0 resumed after a crash\n"
        )
        assert Payment.objects.using("payments").get(id=payment.id).succeeded_at == REQUESTED_AT

    def test_as_of_with_z_suffix(self, payments_settings):
        due_payment()

        output = run("--as-of", "2026-03-01T09:00:00Z")

        assert output.startswith("Charged 1 due payment(s) as of 2026-03-01T09:00:00+00:00:")

    def test_as_of_without_offset_is_utc(self, payments_settings):
        due_payment()

        output = run("--as-of", "2026-03-01T08:59:59")

        assert output.startswith("Charged 0 due payment(s) as of 2026-03-01T08:59:59+00:00:")
        assert attempt_count() == 0

    def test_default_is_now(self, payments_settings):
        due_payment()

        output = run()

        assert output.startswith("Charged 1 due payment(s) as of ")
        assert attempt_count() == 1

    def test_limit(self, payments_settings):
        due_payment()
        due_payment()

        output = run("--as-of", "2026-03-02T00:00:00Z", "--limit", "1")

        assert output.startswith("Charged 1 due payment(s)")
        assert attempt_count() == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ["--as-of", "yesterday"],
                "--as-of 'yesterday' is not an ISO 8601 date and time; use a value such as 2026-03-01T09:00:00Z",
            ),
            (
                ["--as-of", "2026-02-30T09:00:00Z"],
                "--as-of '2026-02-30T09:00:00Z' is not an ISO 8601 date and time; use a value such as "
                "2026-03-01T09:00:00Z",
            ),
            (["--limit", "0"], "--limit 0 is invalid; pass a whole number of at least 1"),
        ],
    )
    def test_bad_input_rejected(self, payments_settings, args, message):
        due_payment()

        with pytest.raises(CommandError) as raised:
            run(*args)

        assert str(raised.value) == message
        assert attempt_count() == 0
        assert Payment.objects.using("payments").get().status == "pending"
