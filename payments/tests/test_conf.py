import pytest
from django.core.exceptions import ImproperlyConfigured

from payments.conf import payments_settings


class TestPaymentsSettings:
    def test_environment_strings_become_days(self, settings):
        settings.PAYMENTS_RETRY_SCHEDULE_DAYS = ["1", " 3", "5"]

        assert payments_settings().retry_schedule_days == (1, 3, 5)

    def test_empty_schedule_means_no_retries(self, settings):
        settings.PAYMENTS_RETRY_SCHEDULE_DAYS = []

        assert payments_settings().retry_schedule_days == ()

    @pytest.mark.parametrize(
        ("schedule", "message"),
        [
            (
                ["1", "x"],
                "PAYMENTS_RETRY_SCHEDULE_DAYS contains 'x'; each entry must be a whole number of "
                "days of at least 1, for example 1,3,5",
            ),
            (
                [0, 3],
                "PAYMENTS_RETRY_SCHEDULE_DAYS contains 0; each entry must be a whole number of "
                "days of at least 1, for example 1,3,5",
            ),
            (
                [3, 1],
                "PAYMENTS_RETRY_SCHEDULE_DAYS [3, 1] must increase strictly, because each entry "
                "counts days from the first failure; for example 1,3,5",
            ),
        ],
    )
    def test_invalid_schedule_rejected(self, settings, schedule, message):
        settings.PAYMENTS_RETRY_SCHEDULE_DAYS = schedule

        with pytest.raises(ImproperlyConfigured) as raised:
            payments_settings()

        assert str(raised.value) == message

    def test_negative_slow_seconds_rejected(self, settings):
        settings.PAYMENTS_SIMULATED_SLOW_SECONDS = -1

        with pytest.raises(ImproperlyConfigured) as raised:
            payments_settings()

        assert str(raised.value) == "PAYMENTS_SIMULATED_SLOW_SECONDS=-1 must be a number of seconds of at least 0"

    def test_zero_stale_seconds_rejected(self, settings):
        settings.PAYMENTS_PROCESSING_STALE_SECONDS = 0

        with pytest.raises(ImproperlyConfigured) as raised:
            payments_settings()

        assert str(raised.value) == (
            "PAYMENTS_PROCESSING_STALE_SECONDS=0 must be a whole number of seconds of at least 1"
        )

    def test_blank_gateway_rejected(self, settings):
        settings.PAYMENTS_GATEWAY = " "

        with pytest.raises(ImproperlyConfigured) as raised:
            payments_settings()

        assert str(raised.value) == (
            "PAYMENTS_GATEWAY=' ' is invalid; use 'simulated' or the dotted path of a "
            "payments.gateways.base.PaymentGateway subclass"
        )
