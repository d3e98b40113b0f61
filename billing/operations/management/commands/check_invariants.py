import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.invariants import DEFAULT_STALE_AFTER, invariants_check
from billing.tenancy.selectors import tenant_exists

# A year; work in flight for longer is stuck, whatever the operator expects.
MAX_STALE_AFTER_SECONDS = 365 * 24 * 3600


class Command(BaseCommand):
    help = "Check the billing invariants across every module without writing, and exit 1 when one fails."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="ID", help="Check only this tenant's records (default: every tenant).")
        parser.add_argument(
            "--stale-after", type=float, metavar="SECONDS", default=DEFAULT_STALE_AFTER.total_seconds(),
            help="Seconds work may be in flight before it counts as a violation "
            f"(default: {DEFAULT_STALE_AFTER.total_seconds():.0f}).",
        )
        parser.add_argument(
            "--json", action="store_true",
            help="Print one JSON object with the keys tenant_id, passed and checks.",
        )

    def handle(self, *args, **options):
        tenant_id = options["tenant"]
        if tenant_id is not None and not tenant_exists(tenant_id=tenant_id):
            raise CommandError(f"tenant {tenant_id!r} does not exist; check the id, or leave out --tenant")
        if options["stale_after"] < 0:
            raise CommandError(f"--stale-after must be 0 or more seconds, not {options['stale_after']}")
        # timedelta() raises on nan and past 999999999 days (about 8.6 * 10**13 seconds).
        if not options["stale_after"] <= MAX_STALE_AFTER_SECONDS:
            raise CommandError(
                f"--stale-after {options['stale_after']} is not a number of seconds up to "
                f"{MAX_STALE_AFTER_SECONDS} (a year); pass a smaller number"
            )

        report = invariants_check(
            tenant_id=tenant_id,
            now=timezone.now(),
            stale_after=timedelta(seconds=options["stale_after"]),
        )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._write_text(report)

        if not report.passed:
            raise CommandError(
                f"{len(report.failed_checks)} invariant check(s) failed: {', '.join(report.failed_checks)}",
                returncode=1,
            )

    def _write_text(self, report) -> None:
        for check in report.checks:
            outcome = "passed" if check.passed else f"FAILED ({check.violation_count} violation(s))"
            self.stdout.write(f"{check.name}: {outcome}, {check.rows_checked} row(s) checked")
            for violation in check.violations:
                ids = ", ".join(f"{key}={value}" for key, value in violation.ids.items())
                self.stdout.write(f"  - {violation.message} [{ids}]")
            if check.violation_count > len(check.violations):
                self.stdout.write(f"  ... and {check.violation_count - len(check.violations)} more")
        summary = "all checks passed" if report.passed else f"{len(report.failed_checks)} check(s) failed"
        self.stdout.write(summary)
