import pytest

from ar import totals


class TestTotals:
    def test_line_amount_multiplies(self):
        assert totals.line_amount(quantity=3, unit_amount_minor=995) == 2985

    def test_subtotal_sums_lines(self):
        assert totals.subtotal([2985, 4999, 0]) == 7984

    @pytest.mark.parametrize(
        ("balance", "subtotal", "expected"),
        [(0, 2985, 0), (1000, 2985, 1000), (5000, 2985, 2985), (-10, 2985, 0)],
        ids=["no-credit", "partial", "covers-all", "negative-balance"],
    )
    def test_credit_to_apply_is_capped(self, balance, subtotal, expected):
        assert totals.credit_to_apply(credit_balance_minor=balance, subtotal_minor=subtotal) == expected

    def test_amount_due_subtracts_credit_and_payments(self):
        assert totals.amount_due(total_minor=2985, credit_applied_minor=1000, amount_paid_minor=985) == 1000

    def test_overflow_is_raised(self):
        with pytest.raises(OverflowError) as raised:
            totals.subtotal([totals.MAX_AMOUNT_MINOR, 1])

        assert str(raised.value) == (
            "subtotal 9223372036854775808 exceeds the largest storable amount 9223372036854775807"
        )
