"""Validate every CSV record completely into an ``ImportRow``, or reject it with reasons.

Each rule here mirrors a rule of the service that later writes the value, so
that a row which passes is not stopped half-written by a service error. Rows
are also checked against each other: an external id may appear only once in
a file, and rows sharing a plan code must agree on the plan's price.
"""

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from billing.csv_cells import starts_like_formula
from billing.money import InvalidMoney, minor_unit_exponent, to_minor_units, validate_currency
from billing.operations.imports.mapping import BoundMapping, FieldRule
from billing.operations.imports.reader import CsvRecord
from subscriptions.errors import SubscriptionsError
from subscriptions.services import billing_date_validate

COLLECTION_METHODS = ("charge_automatically", "send_invoice")
INTERVALS = ("day", "week", "month", "year")
PAYMENT_KINDS = ("card", "bank_debit")

# Column widths of the records the services write; the external id is
# both AR's customer id (200) and the subscription's import id (100).
MAX_EXTERNAL_ID_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_PLAN_NAME_LENGTH = 200
MAX_TOKEN_LENGTH = 255
# Amount and quantity limits keep amount times quantity below 10**18, inside
# the 64-bit integer columns that hold invoice totals in minor units.
MAX_AMOUNT_MINOR = 10**12
MAX_QUANTITY = 1_000_000
# The subscriptions module takes periods of at most three years in each unit.
MAX_INTERVAL_COUNT = {"day": 3 * 365, "week": 3 * 52, "month": 3 * 12, "year": 3}
# Plan codes as the subscriptions module accepts them.
PLAN_CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_PAYMENT_TERMS_DAYS = 365
# Tenure in months is at most a century.
MAX_TENURE_MONTHS = 1200

# Plain ASCII numbers only: Python's int() and Decimal() would also take
# "1_000", "1e3" or non-ASCII digits, which no export means as a price.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_DECIMAL_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


@dataclass(frozen=True)
class PlanTerms:
    """Plan terms: the price and period that every row using one plan code must agree on."""

    code: str
    name: str
    amount_minor: int
    currency: str
    interval: str
    interval_count: int

    def describe(self) -> str:
        return (
            f"{_major(self.amount_minor, self.currency)} {self.currency} "
            f"every {self.interval_count} {self.interval}(s)"
        )


@dataclass(frozen=True)
class ImportRow:
    """One validated record, ready to write."""

    line_number: int
    external_id: str
    name: str
    email: str
    currency: str
    collection_method: str
    payment_terms_days: int
    plan: PlanTerms
    # Price per unit for this customer; it differs from the plan's amount for
    # a negotiated price.
    amount_minor: int
    quantity: int
    start_date: date
    payment_token: str
    payment_kind: str

    @property
    def price_override_minor(self) -> int | None:
        return None if self.amount_minor == self.plan.amount_minor else self.amount_minor


@dataclass(frozen=True)
class RowRejection:
    line_number: int
    external_id: str
    reason: str


@dataclass(frozen=True)
class ValidationResult:
    rows: list[ImportRow]
    rejections: list[RowRejection]


def rows_validate(*, records: list[CsvRecord], mapping: BoundMapping, as_of: date) -> ValidationResult:
    """Validate each record on its own, then the valid rows against each other."""
    rows: list[ImportRow] = []
    rejections: list[RowRejection] = []
    for record in records:
        row, reasons = _row_validate(record, mapping, as_of)
        if reasons:
            external_id = _external_id_hint(record, mapping)
            rejections.append(RowRejection(record.line_number, external_id, "; ".join(reasons)))
        else:
            rows.append(row)

    rows, duplicate_rejections = _reject_duplicate_external_ids(rows, records, mapping)
    rows, plan_rejections = _reject_plan_conflicts(rows)
    rejections = sorted([*rejections, *duplicate_rejections, *plan_rejections], key=lambda r: r.line_number)
    return ValidationResult(rows=rows, rejections=rejections)


class _Unavailable(Exception):
    """A template needs a computed value that an earlier error left unset."""


class _RowErrors:
    """The reasons one record is rejected, collected so the report lists them all."""

    def __init__(self):
        self.reasons: list[str] = []

    def add(self, reason: str) -> None:
        self.reasons.append(reason)


def _row_validate(record: CsvRecord, mapping: BoundMapping, as_of: date) -> tuple[ImportRow | None, list[str]]:
    errors = _RowErrors()
    computed: dict[str, str] = {}

    def text(name: str, default: str = "") -> str | None:
        """Return the field's text, ``default`` when blank, or None after reporting an error."""
        rule = mapping.rules.get(name)
        if rule is None:
            return default
        try:
            return _resolve(rule, record.cells, computed) or default
        except _Unavailable:
            return None
        except _UnknownValue as error:
            errors.add(str(error))
            return None

    external_id = _required(text("external_id"), "external_id", errors)
    _check_length(external_id, "external_id", MAX_EXTERNAL_ID_LENGTH, errors)
    _check_not_formula(external_id, "external_id", errors)
    currency = _currency(text("currency"), errors)
    amount_minor = _amount(text("amount"), "amount", currency, errors, required=True)
    interval = _choice(text("interval", "month"), "interval", INTERVALS, errors)
    interval_count = _whole_number(text("interval_count", "1"), "interval_count", 1, None, errors)
    if interval and interval_count is not None and interval_count > MAX_INTERVAL_COUNT[interval]:
        errors.add(
            f"interval_count {interval_count} is more than {MAX_INTERVAL_COUNT[interval]} "
            f"for interval {interval}; a billing period is at most 3 years"
        )
        interval_count = None

    if external_id:
        computed["external_id"] = external_id
    if currency:
        computed["currency"] = currency
    if amount_minor is not None and currency:
        computed["amount_minor"] = str(amount_minor)
        computed["amount"] = _major(amount_minor, currency)
    if interval:
        computed["interval"] = interval
    if interval_count is not None:
        computed["interval_count"] = str(interval_count)

    # AR needs a name on every customer; an export without names gets the external id.
    name = text("name") or external_id
    _check_length(name, "name", MAX_NAME_LENGTH, errors)
    if name != external_id:
        _check_not_formula(name, "name", errors)
    email = _email(_required(text("email"), "email", errors), errors)
    _check_not_formula(email, "email", errors)
    collection_method = _choice(
        text("collection_method", "charge_automatically"), "collection_method", COLLECTION_METHODS, errors
    )
    payment_terms_days = _whole_number(
        text("payment_terms_days", "0"), "payment_terms_days", 0, MAX_PAYMENT_TERMS_DAYS, errors
    )

    plan_code = _required(text("plan_code"), "plan_code", errors)
    if plan_code and not PLAN_CODE_PATTERN.fullmatch(plan_code):
        errors.add(
            f"plan_code {plan_code!r} is invalid; use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    plan_name = text("plan_name") or plan_code
    _check_length(plan_name, "plan_name", MAX_PLAN_NAME_LENGTH, errors)
    _check_not_formula(plan_name, "plan_name", errors)
    plan_amount_text = text("plan_amount")
    plan_amount_minor = amount_minor
    if plan_amount_text:
        plan_amount_minor = _amount(plan_amount_text, "plan_amount", currency, errors, required=True)

    quantity = _whole_number(text("quantity", "1"), "quantity", 1, MAX_QUANTITY, errors)
    start_date = _start_date(mapping.rules.get("start_date"), text("start_date"), as_of, errors)

    payment_token = text("payment_token")
    token_reported = payment_token is None
    payment_token = payment_token or ""
    _check_length(payment_token, "payment_token", MAX_TOKEN_LENGTH, errors)
    if any(character.isspace() for character in payment_token):
        errors.add(f"payment_token {payment_token!r} contains whitespace; give the gateway's token exactly")
    payment_kind = _choice(text("payment_kind", "card"), "payment_kind", PAYMENT_KINDS, errors)
    if collection_method == "charge_automatically" and not payment_token and not token_reported:
        errors.add(
            "collection_method is charge_automatically but payment_token is blank; "
            "give a payment token or use send_invoice"
        )

    if errors.reasons:
        return None, errors.reasons

    plan = PlanTerms(
        code=plan_code,
        name=plan_name,
        amount_minor=plan_amount_minor,
        currency=currency,
        interval=interval,
        interval_count=interval_count,
    )
    row = ImportRow(
        line_number=record.line_number,
        external_id=external_id,
        name=name,
        email=email,
        currency=currency,
        collection_method=collection_method,
        payment_terms_days=payment_terms_days,
        plan=plan,
        amount_minor=amount_minor,
        quantity=quantity,
        start_date=start_date,
        payment_token=payment_token,
        payment_kind=payment_kind,
    )
    return row, []


class _UnknownValue(ValueError):
    pass


def _resolve(rule: FieldRule, cells: dict[str, str], computed: dict[str, str]) -> str:
    """Return the text of ``rule``'s field for one record: source, then map, default and case."""
    if rule.value is not None:
        raw = rule.value
        origin = "the fixed value"
    elif rule.template is not None:
        raw = _render(rule, cells, computed)
        origin = "the template"
    else:
        column = rule.column or rule.months_before_as_of
        raw = cells.get(column, "")
        origin = f"column {column!r}"
    raw = raw.strip()

    if rule.value_map is not None and (raw or "" in rule.value_map):
        if raw not in rule.value_map:
            known = ", ".join(repr(key) for key in sorted(rule.value_map))
            raise _UnknownValue(
                f"{origin} has {raw!r}, which fields.{rule.field_name}.map does not list "
                f"(it lists {known}); add it to the mapping"
            )
        raw = rule.value_map[raw].strip()
    if not raw and rule.default is not None:
        raw = rule.default.strip()
    if rule.case == "lower":
        raw = raw.lower()
    elif rule.case == "upper":
        raw = raw.upper()
    return raw


def _render(rule: FieldRule, cells: dict[str, str], computed: dict[str, str]) -> str:
    """Fill ``rule``'s template; a blank cell in it makes the whole result blank."""
    pieces = []
    for part in rule.template:
        if part.column is not None:
            value = cells.get(part.column, "").strip()
            if not value:
                return ""
            pieces.append(value)
        elif part.computed is not None:
            if part.computed not in computed:
                raise _Unavailable(part.computed)
            pieces.append(computed[part.computed])
        else:
            pieces.append(part.text)
    return "".join(pieces)


def _required(value: str | None, name: str, errors: _RowErrors) -> str:
    if value is None:
        return ""
    if not value:
        errors.add(f"{name} is missing")
    return value


def _check_length(value: str, name: str, maximum: int, errors: _RowErrors) -> None:
    if len(value) > maximum:
        errors.add(f"{name} is {len(value)} characters long; the maximum is {maximum}")


def _check_not_formula(value: str, name: str, errors: _RowErrors) -> None:
    """Reject text that a spreadsheet would run as a formula when an export shows it."""
    if starts_like_formula(value):
        errors.add(
            f"{name} {value!r} starts with {value[0]!r}, so a spreadsheet opening an export "
            "would run it as a formula; remove the leading character"
        )


def _currency(value: str | None, errors: _RowErrors) -> str:
    if value is None:
        return ""
    if not value:
        errors.add("currency is missing")
        return ""
    try:
        return validate_currency(value.upper())
    except InvalidMoney:
        errors.add(f"currency {value!r} is not a known ISO 4217 code; use a code such as USD or EUR")
        return ""


def _amount(value: str | None, name: str, currency: str, errors: _RowErrors, *, required: bool) -> int | None:
    if value is None:
        return None
    if not value:
        if required:
            errors.add(f"{name} is missing; give the price in major units, such as 29.85")
        return None
    if not _DECIMAL_NUMBER.fullmatch(value):
        hint = " with a dot for decimals and no thousands separator" if "," in value else ""
        errors.add(f"{name} {value!r} is not a decimal number; write it like 29.85{hint}")
        return None
    number = Decimal(value)
    if number < 0:
        errors.add(f"{name} {value!r} is negative; a price is zero or more")
        return None
    if not currency:
        # The currency's error is already reported, and without it the
        # number of decimal places cannot be checked.
        return None
    try:
        amount_minor = to_minor_units(number, currency)
    except InvalidMoney:
        exponent = minor_unit_exponent(currency)
        errors.add(f"{name} {value!r} has more than {exponent} decimal place(s), the precision of {currency}")
        return None
    if amount_minor > MAX_AMOUNT_MINOR:
        errors.add(f"{name} {value!r} is more than {_major(MAX_AMOUNT_MINOR, currency)} {currency}")
        return None
    return amount_minor


def _choice(value: str | None, name: str, choices: tuple[str, ...], errors: _RowErrors) -> str:
    if value is None:
        return ""
    normalized = value.strip().lower()
    if normalized not in choices:
        errors.add(f"{name} {value!r} is not one of {', '.join(choices)}")
        return ""
    return normalized


def _whole_number(
    value: str | None, name: str, minimum: int, maximum: int | None, errors: _RowErrors
) -> int | None:
    if value is None:
        return None
    if not _WHOLE_NUMBER.fullmatch(value):
        errors.add(f"{name} {value!r} is not a whole number")
        return None
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        errors.add(f"{name} {number} is out of range; use at least {minimum}{upper}")
        return None
    return number


def _email(value: str | None, errors: _RowErrors) -> str:
    if not value:
        return ""
    if len(value) > MAX_EMAIL_LENGTH:
        errors.add(f"email is {len(value)} characters long; the maximum is {MAX_EMAIL_LENGTH}")
        return ""
    try:
        validate_email(value)
    except ValidationError:
        errors.add(f"email {value!r} is not a valid email address")
        return ""
    return value


def _start_date(rule: FieldRule | None, value: str | None, as_of: date, errors: _RowErrors) -> date | None:
    if value is None:
        return None
    if not value:
        errors.add("start_date is missing")
        return None
    if rule is not None and rule.months_before_as_of:
        months = _whole_number(value, f"{rule.months_before_as_of} (months before --as-of)", 0,
                               MAX_TENURE_MONTHS, errors)
        if months is None:
            return None
        start_date = as_of - relativedelta(months=months)
    else:
        date_format = rule.date_format if rule is not None else "%Y-%m-%d"
        try:
            start_date = datetime.strptime(value, date_format).date()
        except ValueError:
            example = date(2026, 1, 31).strftime(date_format)
            errors.add(f"start_date {value!r} is not a date in the format {date_format} (such as {example})")
            return None

    # The subscriptions module's own range check, so a row it would reject
    # fails here, before its customer and payment method are written.
    try:
        return billing_date_validate(start_date, "start_date")
    except SubscriptionsError as error:
        errors.add(f"{error}; fix the date in the file")
        return None


def _external_id_hint(record: CsvRecord, mapping: BoundMapping) -> str:
    rule = mapping.rules.get("external_id")
    if rule is None:
        return ""
    try:
        return _resolve(rule, record.cells, {})
    except (_Unavailable, _UnknownValue):
        return ""


def _reject_duplicate_external_ids(
    rows: list[ImportRow], records: list[CsvRecord], mapping: BoundMapping
) -> tuple[list[ImportRow], list[RowRejection]]:
    """Reject every row whose external id appears on more than one line of the file.

    Keeping one of them would pick a price or payment method by file order,
    so all of them wait for the file to be fixed.
    """
    lines_by_id: dict[str, list[int]] = defaultdict(list)
    for record in records:
        external_id = _external_id_hint(record, mapping)
        if external_id:
            lines_by_id[external_id].append(record.line_number)

    kept, rejections = [], []
    for row in rows:
        lines = lines_by_id[row.external_id]
        if len(lines) == 1:
            kept.append(row)
            continue
        others = ", ".join(str(line) for line in lines if line != row.line_number)
        rejections.append(
            RowRejection(
                row.line_number,
                row.external_id,
                f"external_id {row.external_id!r} also appears on line(s) {others}; "
                "keep one row per customer",
            )
        )
    return kept, rejections


def _reject_plan_conflicts(rows: list[ImportRow]) -> tuple[list[ImportRow], list[RowRejection]]:
    """Reject rows whose plan code names a different price or period than its first row.

    The first row of a plan code defines the plan, including its name.
    """
    first: dict[str, tuple[int, PlanTerms]] = {}
    kept, rejections = [], []
    for row in rows:
        terms = row.plan
        if terms.code not in first:
            first[terms.code] = (row.line_number, terms)
            kept.append(row)
            continue
        line, defined = first[terms.code]
        if replace(terms, name=defined.name) == defined:
            kept.append(replace(row, plan=defined))
            continue
        rejections.append(
            RowRejection(
                row.line_number,
                row.external_id,
                f"plan_code {terms.code!r} is {defined.describe()} on line {line}, but this row gives "
                f"{terms.describe()}; give each price its own plan_code, or add a plan_amount "
                "column so the difference becomes a negotiated price",
            )
        )
    return kept, rejections


def _major(amount_minor: int, currency: str) -> str:
    """Return ``amount_minor`` in major units with the currency's decimal places: 2985 -> '29.85'."""
    exponent = minor_unit_exponent(currency)
    return str(Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


def first_period_start_on_or_after(anchor: date, interval: str, interval_count: int, day: date) -> date:
    """Return the first period start, counted from ``anchor``, that is on or after ``day``.

    Period ``k`` starts at ``anchor + k * interval``, computed from the anchor
    as the subscriptions module does, so Jan 31 is followed by Feb 28 and Mar 31.
    """
    if anchor >= day:
        return anchor
    unit = {"day": "days", "week": "weeks", "month": "months", "year": "years"}[interval]
    index = 1
    if interval == "month":
        index = max(1, ((day.year - anchor.year) * 12 + day.month - anchor.month) // interval_count)
    elif interval == "year":
        index = max(1, (day.year - anchor.year) // interval_count)
    else:
        length_days = interval_count * (7 if interval == "week" else 1)
        index = max(1, (day - anchor).days // length_days)
    # The estimate is at most one period early; step forward to the first start on or after ``day``.
    while anchor + relativedelta(**{unit: interval_count * index}) < day:
        index += 1
    return anchor + relativedelta(**{unit: interval_count * index})
