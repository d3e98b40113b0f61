"""Template contexts built from event payloads.

Amounts arrive in integer minor units and leave as major-unit strings with
the currency code ("29.85 USD"); dates leave as "February 14, 2026", so the
templates only place ready-made text.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from ar.events import InvoiceFinalized
from billing.money import format_major
from notifications.errors import UnknownCollectionMethod
from payments.events import PaymentFailed, PaymentSucceeded
from subscriptions.events import SubscriptionCanceled

# Collection methods of ar.invoice.finalized, named as in Stripe's API.
CHARGE_AUTOMATICALLY = "charge_automatically"
SEND_INVOICE = "send_invoice"
COLLECTION_METHODS = [CHARGE_AUTOMATICALLY, SEND_INVOICE]


def format_date(value: date) -> str:
    """Return ``value`` as "February 14, 2026", independent of the active locale."""
    return f"{value:%B} {value.day}, {value.year}"


def parse_date(value: str) -> date:
    return date.fromisoformat(value)


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp ("2026-02-14T09:30:00Z") into an aware UTC datetime."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset; expected RFC 3339 such as '{value}Z'")
    return moment.astimezone(UTC)


def format_period(start: str | None, end: str | None) -> str:
    """Return a line's service period as inclusive dates.

    Billing periods are half-open, [start, end), so the last day of service
    is the day before ``end``. An empty string means the line has no period.
    """
    if not start or not end:
        return ""
    first_day = parse_date(start)
    last_day = parse_date(end) - timedelta(days=1)
    if last_day <= first_day:
        return format_date(first_day)
    return f"{format_date(first_day)} to {format_date(last_day)}"


def invoice_finalized_context(payload: InvoiceFinalized) -> dict[str, Any]:
    """Build the invoice_finalized context: lines, totals, due date and how it is paid.

    Raises ``UnknownCollectionMethod`` for a method the email has no wording
    for, because telling a customer the wrong way to pay is worse than a
    late email.
    """
    if payload.collection_method not in COLLECTION_METHODS:
        raise UnknownCollectionMethod(payload.collection_method, COLLECTION_METHODS)

    currency = payload.currency
    lines = [
        {
            "description": line["description"],
            "quantity": line["quantity"],
            "unit_amount": format_major(line["unit_amount_minor"], currency),
            "amount": format_major(line["amount_minor"], currency),
            "period": format_period(line.get("period_start"), line.get("period_end")),
        }
        for line in payload.lines
    ]
    return {
        "customer_name": payload.customer_name,
        "invoice_number": payload.invoice_number,
        "lines": lines,
        "subtotal": format_major(payload.subtotal_minor, currency),
        "credit_applied": format_major(payload.credit_applied_minor, currency),
        "has_credit_applied": payload.credit_applied_minor > 0,
        "total": format_major(payload.total_minor, currency),
        "amount_due": format_major(payload.amount_due_minor, currency),
        "has_amount_due": payload.amount_due_minor > 0,
        "issued_date": format_date(parse_date(payload.issued_on)),
        "due_date": format_date(parse_date(payload.due_on)),
        "charge_automatically": payload.collection_method == CHARGE_AUTOMATICALLY,
    }


def payment_receipt_context(
    payload: PaymentSucceeded, *, customer_name: str, invoice_number: str | None
) -> dict[str, Any]:
    """Build the payment_receipt context; ``invoice_number`` is None when not known here."""
    return {
        "customer_name": customer_name,
        "amount": format_major(payload.amount_minor, payload.currency),
        "invoice_reference": invoice_number or payload.invoice_id,
        "gateway_reference": payload.gateway_reference,
        "paid_date": format_date(parse_timestamp(payload.succeeded_at).date()),
    }


def payment_failed_context(
    payload: PaymentFailed, *, customer_name: str, invoice_number: str | None
) -> dict[str, Any]:
    """Build the payment_failed context: a retry date when one is scheduled, or a final notice."""
    next_attempt_date = ""
    if not payload.final and payload.next_attempt_at:
        next_attempt_date = format_date(parse_timestamp(payload.next_attempt_at).date())
    return {
        "customer_name": customer_name,
        "amount": format_major(payload.amount_minor, payload.currency),
        "invoice_reference": invoice_number or payload.invoice_id,
        "failure_message": payload.failure_message,
        "failed_date": format_date(parse_timestamp(payload.failed_at).date()),
        "final": payload.final,
        "next_attempt_date": next_attempt_date,
    }


def subscription_canceled_context(payload: SubscriptionCanceled, *, customer_name: str) -> dict[str, Any]:
    return {
        "customer_name": customer_name,
        "plan_name": payload.plan_name,
        "canceled_date": format_date(parse_timestamp(payload.canceled_at).date()),
        "ends_date": format_date(parse_date(payload.ends_on)),
        "at_period_end": payload.at_period_end,
    }
