import os
import tempfile
import uuid
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ar.exports import invoice_export_csv
from ar.models import InvoiceStatus
from billing.tenancy.selectors import tenant_exists


class Command(BaseCommand):
    help = "Write a tenant's invoices as CSV, the same file as GET /api/v1/invoices/export.csv."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="ID", required=True, help="Export this tenant's invoices.")
        parser.add_argument("--status", help="Only invoices in this status: draft, open, paid, void or uncollectible.")
        parser.add_argument("--customer", metavar="UUID", help="Only this customer's invoices.")
        parser.add_argument(
            "--issued-from", metavar="YYYY-MM-DD", help="Only invoices issued on or after this date (UTC)."
        )
        parser.add_argument(
            "--issued-to", metavar="YYYY-MM-DD", help="Only invoices issued on or before this date (UTC)."
        )
        parser.add_argument(
            "--output", metavar="PATH",
            help="Write to this new file instead of standard output; an existing file is not overwritten.",
        )

    def handle(self, *args, **options):
        tenant_id = options["tenant"]
        if not tenant_exists(tenant_id=tenant_id):
            raise CommandError(f"tenant {tenant_id!r} does not exist; check the id with `manage.py tenants list`")

        filters = _validated_filters(options)
        output = Path(options["output"]) if options["output"] else None
        if output is not None:
            _check_output_path(output)

        lines = invoice_export_csv(tenant_id=tenant_id, **filters)
        if output is None:
            for line in lines:
                self.stdout.write(line, ending="")
            return

        count = _write_new_file(output, lines)
        self.stdout.write(f"Wrote {count} invoice(s) to {output}")


def _validated_filters(options: dict) -> dict:
    """Parse the filter options; raise CommandError naming each invalid value."""
    problems = []
    status = options["status"]
    if status is not None and status not in InvoiceStatus.values:
        problems.append(f"--status {status!r} is not an invoice status; use one of {', '.join(InvoiceStatus.values)}")

    customer_id = options["customer"]
    if customer_id is not None:
        try:
            customer_id = str(uuid.UUID(customer_id))
        except ValueError:
            problems.append(f"--customer {customer_id!r} is not a UUID; give the customer's id")

    dates = {}
    for name in ("issued_from", "issued_to"):
        value = options[name]
        if value is None:
            dates[name] = None
            continue
        try:
            dates[name] = date.fromisoformat(value)
        except ValueError:
            option = "--" + name.replace("_", "-")
            problems.append(f"{option} {value!r} is not a date; use YYYY-MM-DD")

    if problems:
        raise CommandError("; ".join(problems))
    if dates["issued_from"] and dates["issued_to"] and dates["issued_from"] > dates["issued_to"]:
        raise CommandError(
            f"--issued-from {options['issued_from']} is after --issued-to {options['issued_to']}; swap them"
        )
    return {"status": status, "customer_id": customer_id, **dates}


def _check_output_path(output: Path) -> None:
    if output.exists():
        raise CommandError(f"--output {str(output)!r} already exists; choose a new path or remove the file")
    if not output.parent.is_dir():
        raise CommandError(f"--output {str(output)!r}: folder {str(output.parent)!r} does not exist; create it first")


def _write_new_file(output: Path, lines) -> int:
    """Write ``lines`` to a temporary file beside ``output``, then link it in place; return the row count.

    A failed export leaves no file at ``output``, and a file that appeared
    there meanwhile is not overwritten.
    """
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    count = -1
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            for line in lines:
                file.write(line)
                count += 1
        try:
            os.link(temporary, output)
        except FileExistsError:
            raise CommandError(
                f"--output {str(output)!r} was created while exporting; choose a new path or remove the file"
            ) from None
    finally:
        os.unlink(temporary)
    return count
