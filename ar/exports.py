"""The invoice CSV export, shared by the REST API and ``manage.py export_invoices``.

One row per invoice. Amounts are decimal numbers in major units of the
row's ``currency`` (29.85 for 2985 minor units of USD). Dates and times are
ISO 8601, with times in UTC. Text cells are quoted, and text that a
spreadsheet would run as a formula gets a leading single quote (see
``billing.csv_cells``). Amount cells are never quoted or prefixed, so they
stay numbers.
"""

import csv
from collections.abc import Iterator
from datetime import date, datetime

from ar.selectors import InvoiceExportRow, invoice_export_rows
from billing.csv_cells import neutralise_formula
from billing.money import to_major_units

# Header names; amount columns hold major units of the row's currency.
INVOICE_EXPORT_COLUMNS = (
    "invoice_id",
    "number",
    "status",
    "customer_id",
    "customer_external_id",
    "customer_name",
    "customer_email",
    "currency",
    "subtotal",
    "credit_applied",
    "total",
    "amount_paid",
    "amount_due",
    "issued_on",
    "due_on",
    "finalized_at",
    "paid_at",
    "voided_at",
    "marked_uncollectible_at",
    "subscription_id",
    "line_items",
)

# Joins the descriptions of an invoice's line items into one cell.
LINE_ITEM_SEPARATOR = "; "


class _LineBuffer:
    """A file-like target for csv.writer that hands back each written line instead of storing it."""

    def write(self, text: str) -> str:
        return text


def invoice_export_csv(
    *,
    tenant_id: str,
    status: str | None = None,
    customer_id: str | None = None,
    issued_from: date | None = None,
    issued_to: date | None = None,
) -> Iterator[str]:
    """Yield the header line, then one CSV line per matching invoice of the tenant.

    Lines end in CRLF as RFC 4180 specifies. The invoices are read in
    chunks as the caller consumes the lines, so a large export never holds
    every row in memory.
    """
    writer = csv.writer(_LineBuffer(), quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    yield writer.writerow(INVOICE_EXPORT_COLUMNS)
    rows = invoice_export_rows(
        tenant_id=tenant_id, status=status, customer_id=customer_id, issued_from=issued_from, issued_to=issued_to
    )
    for row in rows:
        yield writer.writerow(invoice_export_cells(row))


def invoice_export_cells(row: InvoiceExportRow) -> list:
    """Return the cells of ``row`` in ``INVOICE_EXPORT_COLUMNS`` order.

    Text cells are strings with formulas neutralised, amounts are Decimals,
    and a missing date or id is an empty string.
    """
    currency = row.currency
    return [
        _text(row.invoice_id),
        _text(row.number),
        _text(row.status),
        _text(row.customer_id),
        _text(row.customer_external_id),
        _text(row.customer_name),
        _text(row.customer_email),
        _text(currency),
        to_major_units(row.subtotal_minor, currency),
        to_major_units(row.credit_applied_minor, currency),
        to_major_units(row.total_minor, currency),
        to_major_units(row.amount_paid_minor, currency),
        to_major_units(row.amount_due_minor, currency),
        _iso(row.issued_on),
        _iso(row.due_on),
        _iso(row.finalized_at),
        _iso(row.paid_at),
        _iso(row.voided_at),
        _iso(row.marked_uncollectible_at),
        _text(row.subscription_id),
        _text(LINE_ITEM_SEPARATOR.join(row.line_descriptions)),
    ]


def _text(value: str | None) -> str:
    return neutralise_formula(value) if value else ""


def _iso(value: date | datetime | None) -> str:
    return value.isoformat() if value is not None else ""
