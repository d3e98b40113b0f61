import time
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from payments.errors import GatewayError
from payments.gateways import get_gateway
from payments.gateways.simulated import SimulatedGateway
from payments.models import SimulatedCharge
from payments.tests.support import simulated_charge_count

pytestmark = pytest.mark.django_db(databases="__all__")

CUSTOMER_ID = "5b0f6f0e-4d7c-4c37-9b53-0f0f5d8e2a11"


def charge(token: str, *, key: str | None = None, amount_minor: int = 2500, customer_id: str = CUSTOMER_ID):
    return SimulatedGateway().charge(
        idempotency_key=key or f"key-{uuid.uuid4()}",
        amount_minor=amount_minor,
        currency="USD",
        token=token,
        customer_id=customer_id,
    )


class TestTokens:
    @pytest.mark.parametrize(
        ("token", "succeeded", "failure_code", "retryable"),
        [
            ("tok_success", True, "", False),
            ("tok_decline", False, "card_declined", False),
            ("tok_insufficient_funds", False, "insufficient_funds", True),
            ("tok_processing_error", False, "processing_error", True),
            ("tok_slow", True, "", False),
            ("tok_insufficient_then_success", False, "insufficient_funds", True),
            ("tok_unknown", False, "invalid_token", False),
        ],
    )
    def test_token_outcome(self, payments_settings, token, succeeded, failure_code, retryable):
        result = charge(token, key="invoice-1:attempt-1")

        assert result.succeeded is succeeded
        assert result.failure_code == failure_code
        assert result.retryable is retryable
        assert result.reference.startswith("sim_ch_")
        stored = SimulatedCharge.objects.using("payments").get()
        assert stored.idempotency_key == "invoice-1:attempt-1"
        assert stored.reference == result.reference
        assert stored.succeeded is succeeded
        assert stored.failure_code == failure_code
        assert stored.amount_minor == 2500
        assert stored.token == token

    def test_unknown_token_message_lists_test_tokens(self, payments_settings):
        result = charge("tok_visa")

        assert result.failure_message == (
            "The payment method's token is not a test token of the simulated gateway; store one of "
            "tok_success, tok_decline, tok_insufficient_funds, tok_processing_error, tok_slow, "
            "tok_insufficient_then_success."
        )

    def test_slow_token_waits_configured_seconds(self, payments_settings):
        payments_settings.PAYMENTS_SIMULATED_SLOW_SECONDS = 0.2

        started = time.monotonic()
        result = charge("tok_slow")
        elapsed = time.monotonic() - started

        assert result.succeeded is True
        assert elapsed >= 0.2

    def test_insufficient_then_success_recovers(self, payments_settings):
        first = charge("tok_insufficient_then_success", key="invoice-1:attempt-1")
        second = charge("tok_insufficient_then_success", key="invoice-1:attempt-2")

        assert first.failure_code == "insufficient_funds"
        assert second.succeeded is True
        assert simulated_charge_count() == 2

    def test_insufficient_then_success_is_per_customer(self, payments_settings):
        charge("tok_insufficient_then_success", customer_id=CUSTOMER_ID)

        other = charge("tok_insufficient_then_success", customer_id=str(uuid.uuid4()))

        assert other.failure_code == "insufficient_funds"


class TestIdempotency:
    def test_repeated_key_returns_recorded_result(self, payments_settings):
        first = charge("tok_success", key="invoice-1:attempt-1")

        second = charge("tok_success", key="invoice-1:attempt-1")

        assert second == first
        assert simulated_charge_count() == 1

    def test_repeated_key_keeps_recorded_decline(self, payments_settings):
        first = charge("tok_insufficient_then_success", key="invoice-1:attempt-1")

        second = charge("tok_insufficient_then_success", key="invoice-1:attempt-1")

        assert second == first
        assert second.failure_code == "insufficient_funds"
        assert simulated_charge_count() == 1

    def test_repeated_slow_key_returns_at_once(self, payments_settings):
        payments_settings.PAYMENTS_SIMULATED_SLOW_SECONDS = 0.3
        charge("tok_slow", key="invoice-1:attempt-1")

        started = time.monotonic()
        charge("tok_slow", key="invoice-1:attempt-1")

        assert time.monotonic() - started < 0.3

    def test_repeated_key_with_other_amount_rejected(self, payments_settings):
        charge("tok_success", key="invoice-1:attempt-1", amount_minor=2500)

        with pytest.raises(GatewayError) as raised:
            charge("tok_success", key="invoice-1:attempt-1", amount_minor=9900)

        assert str(raised.value) == (
            "idempotency key 'invoice-1:attempt-1' was reused with a different amount_minor; "
            "a key must always describe the same charge"
        )
        assert raised.value.code == "gateway_error"
        assert simulated_charge_count() == 1


class TestGetGateway:
    def test_default_is_simulated(self, payments_settings):
        assert isinstance(get_gateway(), SimulatedGateway)

    def test_dotted_path_is_imported(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.TimeoutGateway"

        assert type(get_gateway()).__name__ == "TimeoutGateway"

    def test_unimportable_path_rejected(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.gateways.stripe.StripeGateway"

        with pytest.raises(ImproperlyConfigured) as raised:
            get_gateway()

        assert str(raised.value).startswith("PAYMENTS_GATEWAY='payments.gateways.stripe.StripeGateway' cannot be imported (")

    def test_non_gateway_class_rejected(self, payments_settings):
        payments_settings.PAYMENTS_GATEWAY = "payments.models.Payment"

        with pytest.raises(ImproperlyConfigured) as raised:
            get_gateway()

        assert str(raised.value) == (
            "PAYMENTS_GATEWAY='payments.models.Payment' is not a subclass of "
            "payments.gateways.base.PaymentGateway"
        )
