from datetime import UTC, date, datetime

import pytest

from notifications import contexts
from notifications.errors import UnknownCollectionMethod
from notifications.tests.factories import InvoiceFinalizedFactory


class TestFormatPeriod:
    @pytest.mark.parametrize(
        ("start", "end", "expected"),
        [
            ("2026-02-01", "2026-03-01", "February 1, 2026 to February 28, 2026"),
            ("2024-02-01", "2024-03-01", "February 1, 2024 to February 29, 2024"),
            ("2026-12-15", "2027-01-15", "December 15, 2026 to January 14, 2027"),
            ("2026-02-05", "2026-02-06", "February 5, 2026"),
            ("2026-02-05", "2026-02-05", "February 5, 2026"),
            (None, None, ""),
            ("2026-02-01", None, ""),
        ],
    )
    def test_half_open_period_as_inclusive_dates(self, start, end, expected):
        assert contexts.format_period(start, end) == expected


class TestParseTimestamp:
    def test_offset_converted_to_utc(self):
        assert contexts.parse_timestamp("2026-02-01T23:30:00-05:00") == datetime(2026, 2, 2, 4, 30, tzinfo=UTC)

    def test_naive_rejected(self):
        with pytest.raises(ValueError) as raised:
            contexts.parse_timestamp("2026-02-01T09:00:00")

        assert str(raised.value) == (
            "timestamp '2026-02-01T09:00:00' has no UTC offset; expected RFC 3339 such as "
            "'2026-02-01T09:00:00Z'"
        )


class TestFormatDate:
    def test_single_digit_day(self):
        assert contexts.format_date(date(2026, 3, 5)) == "March 5, 2026"


class TestInvoiceFinalizedContext:
    def test_unknown_collection_method_raises(self):
        payload = InvoiceFinalizedFactory(collection_method="direct_debit")

        with pytest.raises(UnknownCollectionMethod) as raised:
            contexts.invoice_finalized_context(payload)

        assert raised.value.code == "unknown_collection_method"
        assert str(raised.value) == (
            "collection method 'direct_debit' is unknown; the invoice email knows "
            "'charge_automatically', 'send_invoice'. Add the new method's wording to the "
            "invoice_finalized template, then replay the dead letter."
        )

    def test_amounts_in_major_units(self):
        context = contexts.invoice_finalized_context(InvoiceFinalizedFactory())

        assert context["subtotal"] == "59.70 USD"
        assert context["credit_applied"] == "10.00 USD"
        assert context["total"] == "59.70 USD"
        assert context["amount_due"] == "49.70 USD"
        assert context["lines"][0] == {
            "description": "Pro plan",
            "quantity": 2,
            "unit_amount": "19.90 USD",
            "amount": "39.80 USD",
            "period": "February 1, 2026 to February 28, 2026",
        }
