import csv
import io

import pytest
from django.core.management import CommandError, call_command

from ar.models import InvoiceStatus
from ar.tests.factories import NOW, CustomerFactory, InvoiceFactory
from billing.tenancy.services import tenant_ensure

pytestmark = pytest.mark.django_db(databases="__all__")


@pytest.fixture(autouse=True)
def tenants():
    tenant_ensure(tenant_id="acme", now=NOW)
    tenant_ensure(tenant_id="globex", now=NOW)


def run(*args) -> str:
    out = io.StringIO()
    call_command("export_invoices", *args, stdout=out)
    return out.getvalue()


class TestExportInvoicesCommand:
    def test_writes_csv_to_stdout(self):
        invoice = InvoiceFactory(customer=CustomerFactory(name="=cmd"))
        InvoiceFactory(customer=CustomerFactory(tenant_id="globex"))

        rows = list(csv.DictReader(io.StringIO(run("--tenant", "acme"))))

        assert [row["invoice_id"] for row in rows] == [str(invoice.id)]
        assert rows[0]["customer_name"] == "'=cmd"
        assert rows[0]["total"] == "29.85"

    def test_filters_by_status_and_dates(self):
        paid = InvoiceFactory(status=InvoiceStatus.PAID, issued_on="2026-02-10")
        InvoiceFactory(status=InvoiceStatus.OPEN, issued_on="2026-02-11")
        InvoiceFactory(status=InvoiceStatus.PAID, issued_on="2026-03-01")

        output = run("--tenant", "acme", "--status", "paid", "--issued-from", "2026-02-01", "--issued-to", "2026-02-28")

        assert [row["invoice_id"] for row in csv.DictReader(io.StringIO(output))] == [str(paid.id)]

    def test_writes_new_output_file(self, tmp_path):
        InvoiceFactory()
        InvoiceFactory()
        target = tmp_path / "invoices.csv"

        message = run("--tenant", "acme", "--output", str(target))

        assert message == f"Wrote 2 invoice(s) to {target}\n"
        assert target.read_bytes().count(b"\r\n") == 3
        assert [path.name for path in tmp_path.iterdir()] == ["invoices.csv"]

    def test_existing_output_file_is_kept(self, tmp_path):
        target = tmp_path / "invoices.csv"
        target.write_text("keep me")

        with pytest.raises(CommandError) as raised:
            run("--tenant", "acme", "--output", str(target))

        assert str(raised.value) == f"--output {str(target)!r} already exists; choose a new path or remove the file"
        assert target.read_text() == "keep me"

    def test_missing_output_folder_is_rejected(self, tmp_path):
        target = tmp_path / "missing" / "invoices.csv"

        with pytest.raises(CommandError) as raised:
            run("--tenant", "acme", "--output", str(target))

        assert f"folder {str(target.parent)!r} does not exist" in str(raised.value)
        assert not target.parent.exists()

    def test_unknown_tenant_is_rejected(self):
        with pytest.raises(CommandError) as raised:
            run("--tenant", "nobody")

        assert str(raised.value) == "tenant 'nobody' does not exist; check the id with `manage.py tenants list`"

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ["--status", "lost"],
                "--status 'lost' is not an invoice status; use one of draft, open, paid, void, uncollectible",
            ),
            (["--customer", "cus-1"], "--customer 'cus-1' is not a UUID; give the customer's id"),
            (["--issued-from", "2026-13-01"], "--issued-from '2026-13-01' is not a date; use YYYY-MM-DD"),
            (["--issued-to", "yesterday"], "--issued-to 'yesterday' is not a date; use YYYY-MM-DD"),
            (
                ["--issued-from", "2026-03-02", "--issued-to", "2026-03-01"],
                "--issued-from 2026-03-02 is after --issued-to 2026-03-01; swap them",
            ),
        ],
    )
    def test_invalid_filter_values_are_rejected(self, args, message, tmp_path):
        target = tmp_path / "invoices.csv"

        with pytest.raises(CommandError) as raised:
            run("--tenant", "acme", "--output", str(target), *args)

        assert str(raised.value) == message
        assert list(tmp_path.iterdir()) == []
