"""Checks on collection: every automatic invoice settled or on its way, each charged once."""

from collections import defaultdict
from datetime import datetime

from ar.selectors import GatewayPaymentApplication, InvoiceAuditRow
from billing.invariants.report import CheckResult
from payments.selectors import PaymentAuditRow

CHARGE_AUTOMATICALLY = "charge_automatically"
# Invoice statuses after finalization; a draft has no number and nothing to collect.
FINALIZED_STATUSES = ("open", "paid", "uncollectible")
# Payment statuses that mean the collection is still running.
COLLECTING_STATUSES = ("pending", "processing", "retry_scheduled")


def check_invoices_collected(
    *, invoices: list[InvoiceAuditRow], payments: list[PaymentAuditRow], cutoff: datetime
) -> CheckResult:
    """Find automatically collected invoices whose state disagrees with their payment.

    A paid invoice passes. An open one needs a payment that is pending,
    processing or waiting for a retry, unless it was finalized after
    ``cutoff`` and its collection request may be in flight. An uncollectible
    one needs a payment that failed after its final attempt.
    """
    automatic = [
        invoice for invoice in invoices
        if invoice.collection_method == CHARGE_AUTOMATICALLY and invoice.status in FINALIZED_STATUSES
    ]
    result = CheckResult(
        name="invoices_collected",
        description=(
            "Every automatically collected invoice is paid, in its retry schedule, "
            "or uncollectible after its final attempt."
        ),
        rows_checked=len(automatic),
    )
    payment_by_invoice = {payment.invoice_id: payment for payment in payments}

    for invoice in automatic:
        payment = payment_by_invoice.get(invoice.invoice_id)
        if invoice.status == "paid":
            continue
        if payment is None:
            if invoice.finalized_at is None or invoice.finalized_at < cutoff:
                result.add(f"{invoice.status} invoice has no payment", invoice_id=invoice.invoice_id)
            continue
        if invoice.status == "open" and payment.status not in COLLECTING_STATUSES:
            result.add(
                f"open invoice has a {payment.status} payment",
                invoice_id=invoice.invoice_id, payment_id=payment.payment_id,
            )
        elif invoice.status == "uncollectible" and payment.status != "failed":
            result.add(
                f"uncollectible invoice has a {payment.status} payment, not a failed one",
                invoice_id=invoice.invoice_id, payment_id=payment.payment_id,
            )
    return result


def check_charged_once(*, payments: list[PaymentAuditRow]) -> CheckResult:
    """Find invoices with more than one successful attempt or gateway charge."""
    result = CheckResult(
        name="charged_once",
        description="At most one successful payment attempt and one successful gateway charge per invoice.",
        rows_checked=len(payments),
    )
    attempts_by_invoice: dict[str, int] = defaultdict(int)
    charges_by_invoice: dict[str, int] = defaultdict(int)
    for payment in payments:
        attempts_by_invoice[payment.invoice_id] += payment.succeeded_attempts
        charges_by_invoice[payment.invoice_id] += payment.successful_charges

    for invoice_id in attempts_by_invoice:
        if attempts_by_invoice[invoice_id] > 1:
            result.add(
                f"invoice has {attempts_by_invoice[invoice_id]} successful payment attempts",
                invoice_id=invoice_id,
            )
        if charges_by_invoice[invoice_id] > 1:
            result.add(
                f"invoice has {charges_by_invoice[invoice_id]} successful gateway charges",
                invoice_id=invoice_id,
            )
    return result


def check_payments_applied(
    *, payments: list[PaymentAuditRow], applications: list[GatewayPaymentApplication]
) -> CheckResult:
    """Compare succeeded payments with the gateway payments AR applied, per tenant and currency.

    AR applies a payment to the invoice and credits any part above the amount
    due to the customer, so the application's full amount is compared, which
    also covers an invoice partly paid from credit.

    NOTE: a payment that succeeded moments ago may not be applied yet. A run
    while events are in flight can report it, and a rerun clears it.
    """
    succeeded = [payment for payment in payments if payment.status == "succeeded"]
    result = CheckResult(
        name="payments_applied",
        description=(
            "Succeeded payments and AR's gateway payment applications match one to one "
            "and sum to the same amount per tenant and currency."
        ),
        rows_checked=len(succeeded),
    )

    paid: dict[tuple[str, str], int] = defaultdict(int)
    applied: dict[tuple[str, str], int] = defaultdict(int)
    for payment in succeeded:
        paid[(payment.tenant_id, payment.currency)] += payment.amount_minor
    for application in applications:
        applied[(application.tenant_id, application.currency)] += application.amount_minor

    for tenant_id, currency in sorted(set(paid) | set(applied)):
        paid_minor = paid[(tenant_id, currency)]
        applied_minor = applied[(tenant_id, currency)]
        if paid_minor != applied_minor:
            result.add(
                f"succeeded payments sum to {paid_minor} {currency} minor units "
                f"but AR applied {applied_minor}",
                tenant_id=tenant_id,
            )

    applied_ids = {application.payment_id for application in applications}
    succeeded_ids = {payment.payment_id for payment in succeeded}
    for payment in succeeded:
        if payment.payment_id not in applied_ids:
            result.add(
                "succeeded payment was not applied by AR",
                payment_id=payment.payment_id, invoice_id=payment.invoice_id,
            )
    for application in applications:
        if application.payment_id not in succeeded_ids:
            result.add(
                "AR applied a gateway payment that did not succeed",
                payment_id=application.payment_id, invoice_id=application.invoice_id,
            )
    return result
