import signal

from django.core.management.base import BaseCommand, CommandError

from eventbus.errors import EventBusError
from eventbus.registry import all_modules, get_module
from eventbus.relay import RelayResult, relay_follow, relay_outbox

# Passes over the outboxes before --once gives up. Each pass publishes what
# the previous one caused, and one bill run's events settle in about five.
MAX_PASSES = 100


class Command(BaseCommand):
    help = "Publish committed outbox events to the bus, once or in a loop."

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
        parser.add_argument(
            "--interval", type=float, default=1.0,
            help="Seconds to sleep between passes that found nothing, with --follow (default: 1).",
        )

    def handle(self, *args, **options):
        try:
            modules = [get_module(name).name for name in options["modules"] or []] or [
                module.name for module in all_modules()
            ]
        except EventBusError as error:
            raise CommandError(str(error)) from error
        if options["interval"] <= 0:
            raise CommandError(f"--interval {options['interval']} must be a positive number of seconds")

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
