import math
import signal
import time
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from eventbus.conf import bus_settings
from eventbus.errors import EventBusError
from eventbus.registry import all_modules, get_module
from eventbus.relay import (
    RelayResult,
    RepublishResult,
    outbox_republish,
    outbox_republish_count,
    relay_follow,
    relay_outbox,
)

# Passes over the outboxes before --once gives up. Each pass publishes what
# the previous one caused, and one bill run's events settle in about five.
MAX_PASSES = 100
# Tries, LOCK_RETRY_SECONDS apart, to take a module's relay lock for
# --republish-since. A relay running with --follow holds the lock only while a
# pass runs, so an idle or moderately busy relay lets it in within seconds.
LOCK_ATTEMPTS = 40
# Longest --interval: rows in publish backoff wait for a pass over every
# module at least this often.
MAX_INTERVAL_SECONDS = 3600
LOCK_RETRY_SECONDS = 0.5


class Command(BaseCommand):
    help = "Publish committed outbox events to the bus, once or in a loop, or re-publish published ones."

    def add_arguments(self, parser):
        parser.add_argument(
            "--module", action="append", dest="modules", metavar="M",
            help="Relay only this module's outbox; repeat for several (default: every module).",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--once", action="store_true",
            help="Relay until a pass over the outboxes publishes nothing, then exit (the default).",
        )
        mode.add_argument("--follow", action="store_true", help="Keep relaying until SIGTERM or SIGINT.")
        mode.add_argument(
            "--republish-since", metavar="TIME",
            help="Publish again every published row whose published_at is at or after TIME, an ISO 8601 "
            "timestamp with a time zone (2026-12-04T09:30:00Z), with the same Nats-Msg-Id, to recover events "
            "the bus lost. Rows older than EVENTBUS_OUTBOX_RETENTION_SECONDS (default 7 days) are purged "
            "and cannot be re-published. Without --yes it only counts them.",
        )
        parser.add_argument(
            "--yes", action="store_true", help="Re-publish with --republish-since instead of only counting."
        )
        parser.add_argument(
            "--interval", type=float, default=1.0,
            help="With --follow, the longest wait in seconds after a pass that found nothing, above 0 and at "
            f"most {MAX_INTERVAL_SECONDS}; on PostgreSQL a committed outbox insert ends the wait at once "
            "(default: 1).",
        )

    def handle(self, *args, **options):
        try:
            modules = [get_module(name).name for name in options["modules"] or []] or [
                module.name for module in all_modules()
            ]
        except EventBusError as error:
            raise CommandError(str(error)) from error
        if not math.isfinite(options["interval"]) or not 0 < options["interval"] <= MAX_INTERVAL_SECONDS:
            raise CommandError(
                f"--interval {options['interval']} must be a number of seconds above 0 and at most "
                f"{MAX_INTERVAL_SECONDS}"
            )
        if options["yes"] and options["republish_since"] is None:
            raise CommandError("--yes applies only to --republish-since TIME")

        if options["republish_since"] is not None:
            self._republish(modules, parse_since(options["republish_since"]), confirmed=options["yes"])
            return

        if options["follow"]:
            stopping = []
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.append(True))
            self.stdout.write(f"Relaying {', '.join(modules)} until stopped")
            relay_follow(modules=modules, interval=options["interval"], should_stop=lambda: bool(stopping))
            self.stdout.write("Relay stopped")
            return

        totals = {module: RelayResult(module=module) for module in modules}
        # Handlers can append events to other outboxes while a pass runs (the
        # in-process bus applies them at once), so pass again until a pass
        # publishes nothing.
        for _ in range(MAX_PASSES):
            published = 0
            for module in modules:
                result = relay_outbox(module=module)
                total = totals[module]
                total.locked_out = total.locked_out or result.locked_out
                total.published += result.published
                total.failed += result.failed
                total.held = result.held
                total.errors.extend(error for error in result.errors if error not in total.errors)
                published += result.published
            if published == 0:
                break

        failed = False
        for module, result in totals.items():
            if result.locked_out and not result.published:
                self.stdout.write(f"{module}: another relay owns this outbox, skipped")
                continue
            self.stdout.write(
                f"{module}: published {result.published}, failed {result.failed}, held back {result.held}"
            )
            for error in result.errors:
                self.stderr.write(f"{module}: {error}")
            failed = failed or bool(result.failed)
        if failed:
            raise CommandError("some events were not published; they stay pending and are retried")

    def _republish(self, modules: list[str], since: datetime, *, confirmed: bool) -> None:
        retention = timedelta(seconds=bus_settings().outbox_retention_seconds)
        purged_before = timezone.now() - retention
        if since < purged_before:
            self.stdout.write(
                f"Note: rows published before {purged_before.isoformat(timespec='seconds')} may have been "
                f"purged after the retention period of {retention} and cannot be re-published"
            )

        if not confirmed:
            for module in modules:
                count = outbox_republish_count(module=module, since=since)
                self.stdout.write(f"{module}: {count} published row(s) since {since.isoformat()} to re-publish")
            self.stdout.write("Nothing was published; run again with --yes to re-publish them")
            return

        failed = False
        for module in modules:
            result = self._republish_module(module, since)
            if result.locked_out:
                self.stderr.write(f"{module}: another relay held the outbox lock throughout; nothing re-published")
                failed = True
                continue
            self.stdout.write(
                f"{module}: re-published {result.republished} ({result.duplicates} already in the stream), "
                f"failed {result.failed}, held back {result.held}"
            )
            for error in result.errors:
                self.stderr.write(f"{module}: {error}")
            failed = failed or bool(result.failed or result.held)
        if failed:
            raise CommandError(
                "some events were not re-published; run the same command again, which is safe to repeat"
            )

    def _republish_module(self, module: str, since: datetime) -> RepublishResult:
        for attempt in range(LOCK_ATTEMPTS):
            result = outbox_republish(module=module, since=since)
            if not result.locked_out:
                return result
            if attempt < LOCK_ATTEMPTS - 1:
                time.sleep(LOCK_RETRY_SECONDS)
        return result


def parse_since(value: str) -> datetime:
    """Parse ``--republish-since``: an ISO 8601 timestamp with a time zone."""
    try:
        since = datetime.fromisoformat(value)
    except ValueError as error:
        raise CommandError(
            f"--republish-since {value!r} is not an ISO 8601 timestamp; use a form like 2026-12-04T09:30:00+00:00"
        ) from error
    if timezone.is_naive(since):
        raise CommandError(
            f"--republish-since {value!r} has no time zone; add one, as in "
            f"{since.isoformat()}+00:00 or {since.isoformat()}Z"
        )
    return since
