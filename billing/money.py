"""Money as integer minor units plus an ISO 4217 currency code; never floats."""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

# Codes that ISO 4217 lists for funds, metals and testing rather than money
# a customer pays in.
_NOT_BILLABLE = {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}


class InvalidMoney(ValueError):
    """An amount or currency a billing record cannot hold; the message names the value."""


def validate_currency(code: str) -> str:
    """Return ``code`` if it is a billable ISO 4217 currency; raise ``InvalidMoney`` otherwise."""
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isupper():
        raise InvalidMoney(f"currency {code!r} is not an ISO 4217 code; use three capital letters such as 'USD'")
    if code not in list_currencies() or code in _NOT_BILLABLE:
        raise InvalidMoney(f"currency {code!r} is not a known ISO 4217 currency")
    return code


def minor_unit_exponent(currency: str) -> int:
    """Return the number of decimal places of ``currency`` (2 for USD, 0 for JPY)."""
    return get_currency_precision(validate_currency(currency))


def to_minor_units(amount: str | Decimal, currency: str) -> int:
    """Convert a decimal amount in major units ("29.85") to integer minor units (2985).

    Raise ``InvalidMoney`` for a non-number, or for more decimal places than
    the currency has: "29.855" USD would need rounding, which is the caller's
    decision, not this function's.
    """
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise InvalidMoney(f"amount {amount!r} is not a decimal number") from None
    if not value.is_finite():
        raise InvalidMoney(f"amount {amount!r} is not a finite number")
    exponent = minor_unit_exponent(currency)
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise InvalidMoney(f"amount {amount!r} has more than {exponent} decimal place(s), the precision of {currency}")
    return int(scaled)


def to_major_units(amount_minor: int, currency: str) -> Decimal:
    """Convert integer minor units (2985) to a decimal in major units with the currency's places (29.85)."""
    exponent = minor_unit_exponent(currency)
    return Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_EVEN)


def format_major(amount_minor: int, currency: str) -> str:
    """Return ``amount_minor`` as a major-unit string with the currency code: '29.85 USD'."""
    return f"{to_major_units(amount_minor, currency)} {currency}"
