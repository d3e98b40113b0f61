from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.operations.errors import OperationsError
from billing.operations.imports.mapping import mapping_load
from billing.operations.imports.service import subscriptions_import
from billing.tenancy.services import InvalidTenant


class Command(BaseCommand):
    help = "Import customers, payment methods and subscriptions from a CSV file."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="CSV file, UTF-8, one header row.")
        parser.add_argument(
            "--tenant", required=True, metavar="ID",
            help="Tenant to import into; created when it does not exist.",
        )
        parser.add_argument(
            "--mapping", type=Path, metavar="FILE",
            help="JSON mapping from the file's columns to import fields (default: the documented layout).",
        )
        parser.add_argument(
            "--as-of", metavar="DATE",
            help="Cutover date YYYY-MM-DD (default: today, UTC): tenure in months counts back from it, "
            "and periods starting before it count as billed by the old system. Use the same date "
            "for every import of one file.",
        )
        parser.add_argument(
            "--backfill", action="store_true",
            help="Bill every period since each row's start date, instead of from --as-of on.",
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="Validate every row and report what would be imported, writing nothing.",
        )

    def handle(self, *args, **options):
        now = timezone.now()
        as_of = _parse_as_of(options["as_of"]) if options["as_of"] else now.date()

        try:
            mapping = mapping_load(options["mapping"]) if options["mapping"] else None
            summary = subscriptions_import(
                tenant_id=options["tenant"],
                path=options["path"],
                as_of=as_of,
                now=now,
                mapping=mapping,
                backfill=options["backfill"],
                dry_run=options["dry_run"],
                progress=self._write_progress,
            )
        except (OperationsError, InvalidTenant) as error:
            raise CommandError(f"{error}; nothing was imported") from error

        for rejection in summary.rejections:
            label = f" ({rejection.external_id})" if rejection.external_id else ""
            self.stdout.write(f"line {rejection.line_number}{label} rejected: {rejection.reason}")
        if summary.partially_written:
            self.stdout.write(
                f"{len(summary.partially_written)} rejected row(s) were partly saved; "
                "import the file again after fixing them to complete them"
            )

        verb = "would be " if summary.dry_run else ""
        self.stdout.write("Dry run: nothing was written" if summary.dry_run else "Import finished")
        self.stdout.write(f"rows read: {summary.rows_read}")
        self.stdout.write(f"{verb}imported: {summary.imported}")
        self.stdout.write(f"{verb}updated: {summary.updated}")
        self.stdout.write(f"rejected: {summary.rejected}")
        if not summary.dry_run:
            self.stdout.write(f"plans created: {summary.plans_created}, plans already present: {summary.plans_existing}")
        self.stdout.write(f"elapsed seconds: {summary.elapsed_seconds:.2f}")

        # A non-zero exit status lets a script notice rejected rows.
        if summary.rejected:
            outcome = "the other rows were checked" if summary.dry_run else "the other rows were imported"
            raise CommandError(
                f"{summary.rejected} row(s) rejected, listed above by line; {outcome}. "
                "Fix them and import the file again: accepted rows are updated, not duplicated"
            )

    def _write_progress(self, done: int, total: int) -> None:
        if total > 1000:
            self.stderr.write(f"written {done} of {total} row(s)")


def _parse_as_of(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of {value!r} is not a date; use YYYY-MM-DD") from None
