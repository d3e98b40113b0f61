from django.core.management.base import BaseCommand, CommandError

from eventbus.conf import bus_settings
from eventbus.errors import EventBusError
from eventbus.metrics import serve_metrics
from eventbus.registry import all_modules, get_module
from eventbus.runner import run_consumers_until_signalled

MAX_PORT = 65535


class Command(BaseCommand):
    help = "Consume events from JetStream for the given modules until SIGTERM or SIGINT."

    def add_arguments(self, parser):
        parser.add_argument(
            "--module", action="append", dest="modules", metavar="M",
            help="Consume for this module; repeat for several (default: every module with handlers).",
        )
        parser.add_argument(
            "--metrics-port", type=int, metavar="N",
            help="Serve Prometheus metrics at http://HOST:N/metrics (default: no metrics server).",
        )
        parser.add_argument(
            "--metrics-host", default="127.0.0.1", metavar="HOST",
            help="Address the metrics server listens on (default: 127.0.0.1; 0.0.0.0 for every interface).",
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

        if options["metrics_port"] is not None and not 1 <= options["metrics_port"] <= MAX_PORT:
            raise CommandError(f"--metrics-port {options['metrics_port']} is not a TCP port; use 1 to {MAX_PORT}")
        if options["metrics_port"] is not None:
            try:
                serve_metrics(host=options["metrics_host"], port=options["metrics_port"])
            except OSError as error:
                raise CommandError(
                    f"cannot serve metrics on {options['metrics_host']}:{options['metrics_port']}: {error}; "
                    "choose a free port with --metrics-port"
                ) from error
            self.stdout.write(
                f"Serving metrics at http://{options['metrics_host']}:{options['metrics_port']}/metrics"
            )
        self.stdout.write(f"Consuming for {', '.join(module.name for module in modules)}; stop with Ctrl-C")
        try:
            processed = run_consumers_until_signalled(modules)
        except EventBusError as error:
            # A stream or consumer that cannot be declared as the code needs it.
            raise CommandError(str(error)) from error
        self.stdout.write(f"Stopped after {processed} message(s)")
