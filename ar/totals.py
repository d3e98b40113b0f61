"""Invoice arithmetic in integer minor units of the invoice currency.

    line amount    = quantity * unit amount
    subtotal       = sum of the line amounts
    total          = subtotal
    credit applied = min(customer credit balance in the invoice currency, subtotal)
    amount due     = total - credit applied - amount paid

Rounding: every step above multiplies, adds or subtracts integers, so no
amount is ever rounded. Any future step that divides (proration of a partial
period, a percentage discount or tax) must round each line's amount to the
minor unit, half to even (``decimal.ROUND_HALF_EVEN``). Only then are the
lines summed, so the subtotal equals the sum of the printed line amounts.

Amounts are stored in PostgreSQL ``bigint`` columns; the functions raise
``OverflowError`` for a result outside that range instead of letting the
database reject it later.
"""

from collections.abc import Iterable

# The largest value a PostgreSQL bigint (Django BigIntegerField) holds.
MAX_AMOUNT_MINOR = 2**63 - 1


def line_amount(*, quantity: int, unit_amount_minor: int) -> int:
    """Return the amount of a line: quantity times unit amount."""
    return _checked(quantity * unit_amount_minor, "line amount")


def subtotal(line_amounts: Iterable[int]) -> int:
    """Return the sum of the line amounts."""
    return _checked(sum(line_amounts), "subtotal")


def credit_to_apply(*, credit_balance_minor: int, subtotal_minor: int) -> int:
    """Return the customer credit an invoice consumes: the balance, at most the subtotal."""
    return max(0, min(credit_balance_minor, subtotal_minor))


def amount_due(*, total_minor: int, credit_applied_minor: int, amount_paid_minor: int) -> int:
    """Return what the customer still owes on an invoice."""
    return total_minor - credit_applied_minor - amount_paid_minor


def _checked(amount: int, label: str) -> int:
    if abs(amount) > MAX_AMOUNT_MINOR:
        raise OverflowError(f"{label} {amount} exceeds the largest storable amount {MAX_AMOUNT_MINOR}")
    return amount
