import json

from django.core.management.base import BaseCommand, CommandError

from billing.operations.status import billing_status, status_lines
from billing.tenancy.selectors import tenant_exists


class Command(BaseCommand):
    help = "Show subscriptions, invoices and payments by status, bus backlogs and emails sent."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="ID", help="Count only this tenant's records (default: every tenant).")
        parser.add_argument(
            "--json", action="store_true",
            help="Print one JSON object with the keys subscriptions, invoices, payments, "
            "outbox_pending, dead_letters and emails_sent.",
        )

    def handle(self, *args, **options):
        tenant_id = options["tenant"]
        if tenant_id is not None and not tenant_exists(tenant_id=tenant_id):
            raise CommandError(f"tenant {tenant_id!r} does not exist; check the id, or leave out --tenant")
        status = billing_status(tenant_id=tenant_id)
        if options["json"]:
            self.stdout.write(json.dumps(status, indent=2, sort_keys=True))
            return
        for line in status_lines(status):
            self.stdout.write(line)
