"""Checks on billing: each due period billed once, invoice numbers gapless per tenant."""

import re
from collections import Counter, defaultdict
from datetime import datetime

from ar.selectors import InvoiceAuditRow
from billing.invariants.report import CheckResult
from subscriptions.selectors import BillingPeriodKey

# The format ar.services.numbering gives a number: the tenant id in capitals,
# a hyphen and the sequence number padded with zeros to at least six digits.
INVOICE_NUMBER = re.compile(r"^(?P<prefix>.+)-(?P<sequence>\d{6,})$")


def check_periods_billed_once(
    *, periods: list[BillingPeriodKey], invoices: list[InvoiceAuditRow], cutoff: datetime
) -> CheckResult:
    """Find periods billed twice, periods with no AR invoice, and invoices of unknown periods.

    A period created after ``cutoff`` may still wait for AR to apply its
    invoice request, so it is not reported as missing an invoice.
    """
    result = CheckResult(
        name="periods_billed_once",
        description=(
            "No two billing periods share a subscription and start, "
            "and every period has exactly one AR invoice."
        ),
        rows_checked=len(periods),
    )

    starts = Counter((period.subscription_id, period.period_start) for period in periods)
    for (subscription_id, period_start), count in starts.items():
        if count > 1:
            result.add(
                f"subscription has {count} billing periods starting {period_start.isoformat()}",
                subscription_id=subscription_id,
            )

    invoices_by_period: dict[str, list[str]] = defaultdict(list)
    for invoice in invoices:
        if invoice.billing_period_id is not None:
            invoices_by_period[invoice.billing_period_id].append(invoice.invoice_id)

    period_ids = set()
    for period in periods:
        period_ids.add(period.billing_period_id)
        invoice_ids = invoices_by_period.get(period.billing_period_id, [])
        if len(invoice_ids) > 1:
            result.add(
                f"billing period has {len(invoice_ids)} AR invoices: {', '.join(invoice_ids)}",
                billing_period_id=period.billing_period_id,
            )
        elif not invoice_ids and period.created_at < cutoff:
            result.add(
                "billing period has no AR invoice",
                billing_period_id=period.billing_period_id,
                subscription_id=period.subscription_id,
            )

    for billing_period_id, invoice_ids in invoices_by_period.items():
        if billing_period_id not in period_ids:
            for invoice_id in invoice_ids:
                result.add(
                    "AR invoice refers to a billing period that subscriptions does not have",
                    invoice_id=invoice_id,
                    billing_period_id=billing_period_id,
                )
    return result


def check_invoice_numbers_gapless(
    *, invoices: list[InvoiceAuditRow], last_allocated: dict[str, int]
) -> CheckResult:
    """Find malformed, repeated, missing and unallocated invoice numbers.

    Each tenant's numbers must run 1..N, where N is the last number its
    sequence allocated, so a deleted last invoice shows as a gap too.
    """
    numbered = [invoice for invoice in invoices if invoice.number is not None]
    result = CheckResult(
        name="invoice_numbers_gapless",
        description="Each tenant's invoice numbers are unique and run 1..N with no gap.",
        rows_checked=len(numbered),
    )

    sequences_by_tenant: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for invoice in numbered:
        match = INVOICE_NUMBER.match(invoice.number)
        if match is None or match["prefix"] != invoice.tenant_id.upper():
            result.add(
                f"invoice number {invoice.number!r} does not have the form "
                f"{invoice.tenant_id.upper()}-000001",
                invoice_id=invoice.invoice_id,
                tenant_id=invoice.tenant_id,
            )
            continue
        sequences_by_tenant[invoice.tenant_id][int(match["sequence"])].append(invoice.invoice_id)

    for tenant_id in sorted(set(sequences_by_tenant) | set(last_allocated)):
        sequences = sequences_by_tenant.get(tenant_id, {})
        allocated = last_allocated.get(tenant_id, 0)
        prefix = tenant_id.upper()
        for sequence, invoice_ids in sorted(sequences.items()):
            if len(invoice_ids) > 1:
                result.add(
                    f"invoice number {prefix}-{sequence:06d} is used by {len(invoice_ids)} invoices: "
                    f"{', '.join(invoice_ids)}",
                    tenant_id=tenant_id,
                )
            if sequence > allocated:
                for invoice_id in invoice_ids:
                    result.add(
                        f"invoice number {prefix}-{sequence:06d} is above the last number allocated, "
                        f"{prefix}-{allocated:06d}",
                        invoice_id=invoice_id,
                        tenant_id=tenant_id,
                    )
        for sequence in range(1, allocated + 1):
            if sequence not in sequences:
                result.add(f"invoice number {prefix}-{sequence:06d} is missing", tenant_id=tenant_id)
    return result
