from django.core.management.base import BaseCommand, CommandError

from eventbus.conf import bus_settings
from eventbus.errors import EventBusError
from eventbus.registry import all_modules, get_module
from eventbus.runner import run_consumers_until_signalled


class Command(BaseCommand):
    help = "Consume events from JetStream for the given modules until SIGTERM or SIGINT."

    def add_arguments(self, parser):
        parser.add_argument(
            "--module", action="append", dest="modules", metavar="M",
            help="Consume for this module; repeat for several (default: every module with handlers).",
        )

    def handle(self, *args, **options):
        if bus_settings().backend != "nats":
            raise CommandError(
                "run_consumers needs EVENT_BUS=nats; the in-process bus delivers inside the relay "
                "(manage.py relay_outbox), so no consumer process is needed"
            )
        try:
            modules = [get_module(name) for name in options["modules"] or []] or [
                module for module in all_modules() if module.handlers.event_types()
            ]
        except EventBusError as error:
            raise CommandError(str(error)) from error

        self.stdout.write(f"Consuming for {', '.join(module.name for module in modules)}; stop with Ctrl-C")
        try:
            processed = run_consumers_until_signalled(modules)
        except EventBusError as error:
            # A stream or consumer that cannot be declared as the code needs it.
            raise CommandError(str(error)) from error
        self.stdout.write(f"Stopped after {processed} message(s)")
