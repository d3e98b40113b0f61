import csv
import dataclasses
import io
from decimal import Decimal

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from ar.exports import INVOICE_EXPORT_COLUMNS, invoice_export_cells, invoice_export_csv
from ar.selectors import InvoiceExportRow
from ar.tests.factories import InvoiceFactory, InvoiceLineFactory
from billing.csv_cells import neutralise_formula

ROW = InvoiceExportRow(
    invoice_id="5f0c3a52-8d7e-4a53-9a0e-6d0d7c1f2b11",
    number="ACME-000001",
    status="open",
    customer_id="0b9f1e0e-4f57-4d8a-9d7b-1b2f6f7e8a90",
    customer_external_id="cus-1",
    customer_name="Ada",
    customer_email="ada@example.com",
    currency="USD",
    subtotal_minor=2985,
    credit_applied_minor=0,
    total_minor=2985,
    amount_paid_minor=0,
    amount_due_minor=2985,
    issued_on=None,
    due_on=None,
    finalized_at=None,
    paid_at=None,
    voided_at=None,
    marked_uncollectible_at=None,
    subscription_id=None,
    line_descriptions=("Pro plan",),
)


def write(cells) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


class TestNeutraliseFormula:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("@SUM(1)", "'@SUM(1)"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("\0=1", "'\0=1"),
            ("Ada = Lovelace", "Ada = Lovelace"),
            ("", ""),
        ],
    )
    def test_prefixes_only_formula_starts(self, text, expected):
        assert neutralise_formula(text) == expected


class TestInvoiceExportCells:
    def test_negative_amount_stays_a_number(self):
        row = dataclasses.replace(ROW, amount_paid_minor=-1250, customer_name="-12.50")

        cells = invoice_export_cells(row)
        line = write(cells)

        assert cells[INVOICE_EXPORT_COLUMNS.index("amount_paid")] == Decimal("-12.50")
        assert ",-12.50," in line
        assert "\"'-12.50\"" in line

    def test_cells_follow_the_header(self):
        cells = invoice_export_cells(ROW)

        assert len(cells) == len(INVOICE_EXPORT_COLUMNS)
        assert cells[INVOICE_EXPORT_COLUMNS.index("total")] == Decimal("29.85")
        assert cells[INVOICE_EXPORT_COLUMNS.index("issued_on")] == ""


@pytest.mark.django_db(databases="__all__")
class TestInvoiceExportCsv:
    def test_reads_invoices_chunk_by_chunk(self, monkeypatch):
        monkeypatch.setattr("ar.selectors.EXPORT_CHUNK_SIZE", 2)
        for _ in range(5):
            InvoiceLineFactory(invoice=InvoiceFactory())
        lines = invoice_export_csv(tenant_id="acme")

        with CaptureQueriesContext(connections["ar"]) as first_row:
            header = next(lines)
            first = next(lines)
        with CaptureQueriesContext(connections["ar"]) as remaining_rows:
            rest = list(lines)

        assert header.startswith('"invoice_id",')
        assert first.endswith('"Pro plan"\r\n')
        assert len(rest) == 4
        # The cursor's first chunk and its lines; then the lines of two more chunks.
        assert len(first_row.captured_queries) == 2
        assert len(remaining_rows.captured_queries) == 2
