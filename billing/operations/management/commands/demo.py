import json
import logging
import os
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from billing.operations.embedded import embedded_setup_problems
from billing.operations.management.commands.seed_demo import (
    add_seed_arguments,
    check_seed_arguments,
    seed_summary_line,
)
from billing.operations.seed import demo_seed
from billing.operations.settle import flow_settle
from billing.operations.status import billing_status, status_lines
from subscriptions.services import bill_run_execute

# Simulated days the demo may move its clock forward for payment retries;
# the default schedule retries 1, 3 and 5 days after the first failure.
DEFAULT_MAX_DAYS = 10


class Command(BaseCommand):
    help = "Run the whole billing flow on the embedded setup: migrate, seed, bill, collect, email."

    def add_arguments(self, parser):
        add_seed_arguments(parser)
        parser.add_argument(
            "--max-days", type=int, default=DEFAULT_MAX_DAYS,
            help=f"Simulated days the clock may advance for payment retries (default: {DEFAULT_MAX_DAYS}).",
        )
        parser.add_argument(
            "--force", action="store_true",
            help="Run even when the databases or the bus are not the embedded SQLite and in-process setup.",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object.")

    def handle(self, *args, **options):
        # The services log every customer, email and expected decline of the
        # seeded test tokens, which would bury the summary; -v 2 shows them.
        if options["verbosity"] < 2:
            logging.disable(logging.WARNING)
        try:
            self._run(options)
        finally:
            logging.disable(logging.NOTSET)

    def _run(self, options: dict) -> None:
        started = time.monotonic()
        check_seed_arguments(options)
        if options["max_days"] < 0:
            raise CommandError(f"--max-days {options['max_days']} must be 0 or more")
        problems = embedded_setup_problems()
        if problems and not options["force"]:
            raise CommandError(
                "the demo writes demo data and runs every step in this process, so it runs only on "
                f"the embedded setup, but {'; '.join(problems)}. Unset DATABASE_URL and EVENT_BUS, "
                "or pass --force to run it here anyway"
            )
        report = self.stderr if options["json"] else self.stdout
        mail_folder = self._send_mail_to_folder()
        if mail_folder:
            report.write(f"Emails go to {mail_folder} (set EMAIL_URL to send them elsewhere)")

        report.write("Migrating every database")
        for alias in connections:
            call_command("migrate", database=alias, interactive=False, verbosity=0)

        now = timezone.now()
        seed = demo_seed(
            tenant_count=options["tenants"],
            customers_per_tenant=options["customers"],
            seed=options["seed"],
            as_of=now.date(),
            now=now,
        )
        report.write(seed_summary_line(seed))

        bill_run = bill_run_execute(as_of=now.date(), now=now)
        report.write(f"Bill run as of {bill_run.as_of}: {bill_run.periods_billed} period(s) billed")

        settle = flow_settle(now=now, max_days=options["max_days"])
        report.write(
            f"Relayed {settle.events_relayed} event(s), retried {settle.payment_retries} payment(s), "
            f"moved the clock {settle.days_advanced} day(s) for retries"
        )

        status = billing_status()
        elapsed = time.monotonic() - started
        if options["json"]:
            document = {
                "settled": settle.settled,
                "periods_billed": bill_run.periods_billed,
                "days_advanced": settle.days_advanced,
                "elapsed_seconds": round(elapsed, 3),
                "status": status,
            }
            self.stdout.write(json.dumps(document, indent=2, sort_keys=True))
        else:
            for line in status_lines(status):
                self.stdout.write(line)
            self.stdout.write(f"Elapsed seconds: {elapsed:.2f}")

        if not settle.settled:
            raise CommandError(
                f"the flow did not settle within {options['max_days']} simulated day(s): "
                f"{settle.outbox_pending} outbox event(s) pending, {settle.payments_awaiting_retry} "
                "payment(s) awaiting a retry; raise --max-days or check the dead letters"
            )

    def _send_mail_to_folder(self) -> str | None:
        """Write the demo's emails to files under the data folder unless EMAIL_URL is set.

        The console backend would print one email per invoice and payment
        among the summary lines.
        """
        if os.environ.get("EMAIL_URL"):
            return None
        folder = settings.DATA_DIR / "mail"
        settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
        settings.EMAIL_FILE_PATH = str(folder)
        return str(folder)
