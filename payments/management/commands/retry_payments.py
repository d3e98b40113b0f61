from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from payments.services import payments_retry_due


class Command(BaseCommand):
    help = "Charge every payment whose next attempt is due, and resume attempts a crash left in processing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", metavar="DATETIME",
            help=(
                "Charge what is due at this moment, an ISO 8601 date and time such as "
                "2026-03-01T09:00:00Z; a value without a UTC offset is read as UTC "
                "(default: now, in UTC)."
            ),
        )
        parser.add_argument(
            "--limit", type=int, metavar="N",
            help="Charge at most N payments, the longest-waiting first (default: every due payment).",
        )

    def handle(self, *args, **options):
        as_of = _parse_as_of(options["as_of"]) if options["as_of"] is not None else timezone.now()
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError(f"--limit {limit} is invalid; pass a whole number of at least 1")

        summary = payments_retry_due(as_of=as_of, limit=limit)
        self.stdout.write(
            f"Charged {summary.attempted} due payment(s) as of {as_of.isoformat()}: "
            f"{summary.succeeded} succeeded, {summary.rescheduled} rescheduled, "
            f"{summary.failed} failed for good, {summary.resumed} resumed after a crash"
        )


def _parse_as_of(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise CommandError(
            f"--as-of {raw!r} is not an ISO 8601 date and time; use a value such as 2026-03-01T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
