import json
from datetime import UTC, date, datetime

from django.core.management.base import BaseCommand, CommandError

from billing.money import format_major
from subscriptions.errors import SubscriptionsError
from subscriptions.services import BillRunSummary, bill_run_execute

# Characters in the progress bar between its brackets.
PROGRESS_BAR_WIDTH = 30
# Days ahead of today an --as-of may be without --allow-future. A run the
# evening before a billing day is normal. A date years ahead is most likely a
# typo, and it would bill periods that have not started.
MAX_DAYS_AHEAD = 31
# Period arithmetic near year 9999 overflows Python's date type, so the
# service accepts dates up to 2199 only.
LATEST_AS_OF = date(2200, 1, 1)


class Command(BaseCommand):
    help = "Bill every subscription period that started by a date and is not billed yet."

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", metavar="DATE",
            help="Bill periods that start on or before this date, as YYYY-MM-DD (default: today in UTC).",
        )
        parser.add_argument(
            "--tenant", metavar="ID",
            help="Bill only this tenant's subscriptions (default: every tenant).",
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="Report what would be billed and bill nothing; the run is recorded marked as a dry run.",
        )
        parser.add_argument(
            "--json", action="store_true",
            help="Print the summary as one JSON object, with no progress bar.",
        )
        parser.add_argument(
            "--allow-future", action="store_true",
            help=f"Accept an --as-of more than {MAX_DAYS_AHEAD} days after today (UTC).",
        )

    def handle(self, *args, **options):
        now = datetime.now(UTC)
        as_of = _parse_date(options["as_of"]) if options["as_of"] is not None else now.date()
        _check_horizon(as_of, today=now.date(), allow_future=options["allow_future"])
        progress = None
        if self.stdout.isatty() and not options["json"]:
            progress = ProgressLine(self.stdout)

        try:
            summary = bill_run_execute(
                as_of=as_of,
                now=now,
                tenant_id=options["tenant"],
                dry_run=options["dry_run"],
                progress=progress,
            )
        except SubscriptionsError as error:
            raise CommandError(str(error)) from error
        finally:
            if progress is not None:
                progress.close()

        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
        else:
            self.stdout.write(format_summary(summary))


class ProgressLine:
    """A progress bar redrawn in place on one terminal line."""

    def __init__(self, stdout):
        self.stdout = stdout
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        filled = int(PROGRESS_BAR_WIDTH * fraction)
        bar = "#" * filled + "-" * (PROGRESS_BAR_WIDTH - filled)
        self.stdout.write(f"\r[{bar}] {done}/{total} subscriptions", ending="")
        self.stdout.flush()
        self.drawn = True

    def close(self) -> None:
        """End the progress line, so the summary starts on a line of its own."""
        if self.drawn:
            self.stdout.write("")


def format_summary(summary: BillRunSummary) -> str:
    """Return the summary as aligned text lines."""
    if summary.dry_run:
        title = f"Dry run {summary.bill_run_id} as of {summary.as_of}: nothing was billed"
        billed_label = "periods to bill"
    else:
        title = f"Bill run {summary.bill_run_id} as of {summary.as_of}"
        billed_label = "periods billed"

    amounts = ", ".join(
        format_major(amount, currency) for currency, amount in sorted(summary.amount_minor_by_currency.items())
    )
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.skipped.items()))
    rows = [
        ("subscriptions seen", str(summary.subscriptions_seen)),
        (billed_label, str(summary.periods_billed)),
        ("amount", amounts or "none"),
        ("skipped", skipped or "none"),
        ("elapsed", f"{summary.elapsed_seconds:.2f} s"),
    ]
    width = max(len(label) for label, _ in rows) + 1
    return "\n".join([title, *(f"  {label + ':':<{width}} {value}" for label, value in rows)])


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of {value!r} is not a date; use YYYY-MM-DD, for example 2026-01-31") from None


def _check_horizon(as_of: date, *, today: date, allow_future: bool) -> None:
    if as_of >= LATEST_AS_OF:
        raise CommandError(f"--as-of {as_of.isoformat()} is too far ahead; use a date before {LATEST_AS_OF.isoformat()}")
    days_ahead = (as_of - today).days
    if days_ahead > MAX_DAYS_AHEAD and not allow_future:
        raise CommandError(
            f"--as-of {as_of.isoformat()} is {days_ahead} days after today ({today.isoformat()}), which would "
            f"bill periods that have not started; check the date, or pass --allow-future to bill ahead on purpose"
        )
