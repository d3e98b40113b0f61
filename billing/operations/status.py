"""The billing status report: what every module holds, read through its selectors."""

from ar.selectors import invoice_totals_by_status
from billing.money import format_major
from eventbus.selectors import outbox_backlogs
from notifications.selectors import emails_sent_count
from payments.selectors import payment_counts_by_status
from subscriptions.selectors import subscription_counts_by_status

# The keys of the JSON report, in output order. Scripts depend on them.
STATUS_KEYS = ("subscriptions", "invoices", "payments", "outbox_pending", "dead_letters", "emails_sent")


def billing_status(*, tenant_id: str | None = None) -> dict:
    """Return subscriptions, invoices and payments by status, bus backlogs and emails sent.

    Shape: ``subscriptions`` and ``payments`` map status to count,
    ``invoices`` maps status to currency to ``{"count", "amount_minor"}``,
    ``outbox_pending`` and ``dead_letters`` map bus module to count, and
    ``emails_sent`` is a count. ``tenant_id`` narrows every figure except the
    outbox and dead-letter counts, which the bus keeps per module only.
    """
    backlogs = outbox_backlogs()
    return {
        "subscriptions": subscription_counts_by_status(tenant_id=tenant_id),
        "invoices": invoice_totals_by_status(tenant_id=tenant_id),
        "payments": payment_counts_by_status(tenant_id=tenant_id),
        "outbox_pending": {backlog.module: backlog.pending for backlog in backlogs},
        "dead_letters": {backlog.module: backlog.dead_letters for backlog in backlogs},
        "emails_sent": emails_sent_count(tenant_id=tenant_id),
    }


def status_lines(status: dict) -> list[str]:
    """Return the status report as plain text lines, one section per figure."""
    lines = ["Subscriptions by status:"]
    lines += _count_lines(status["subscriptions"])
    lines.append("Invoices by status:")
    invoice_lines = [
        f"  {state}: {totals['count']} invoice(s), {format_major(totals['amount_minor'] or 0, currency)}"
        for state, by_currency in sorted(status["invoices"].items())
        for currency, totals in sorted(by_currency.items())
    ]
    lines += invoice_lines or ["  none"]
    lines.append("Payments by status:")
    lines += _count_lines(status["payments"])
    lines.append("Outbox events pending, by module:")
    lines += _count_lines(status["outbox_pending"])
    lines.append("Dead letters, by module:")
    lines += _count_lines(status["dead_letters"])
    lines.append(f"Emails sent: {status['emails_sent']}")
    return lines


def _count_lines(counts: dict[str, int]) -> list[str]:
    return [f"  {key}: {count}" for key, count in sorted(counts.items())] or ["  none"]
