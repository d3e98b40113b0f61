import json

from django.core.management.base import BaseCommand, CommandError

from eventbus.backends import get_bus
from eventbus.errors import EventBusError
from eventbus.selectors import outbox_backlogs


class Command(BaseCommand):
    help = "Declare the bus's streams and consumers (ensure) or show their state (status)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["ensure", "status"], help="ensure: declare idempotently; status: report.")
        parser.add_argument("--json", action="store_true", help="Print status as one JSON object.")

    def handle(self, *args, **options):
        bus = get_bus()
        try:
            if options["action"] == "ensure":
                changes = bus.ensure()
                for change in changes:
                    self.stdout.write(change)
                self.stdout.write(f"{bus.name} bus: {len(changes)} change(s); streams and consumers match the code")
                return
            bus_rows = bus.status()
        except EventBusError as error:
            raise CommandError(str(error)) from error

        backlogs = outbox_backlogs()
        if options["json"]:
            self.stdout.write(json.dumps({
                "backend": bus.name,
                "bus": bus_rows,
                "outboxes": [
                    {
                        "module": backlog.module,
                        "pending": backlog.pending,
                        "failing": backlog.failing,
                        "oldest_pending_age_seconds": backlog.oldest_age_seconds(),
                        "dead_letters": backlog.dead_letters,
                    }
                    for backlog in backlogs
                ],
            }, indent=2))
        else:
            self._write_text(bus.name, bus_rows, backlogs)

        # A non-zero exit status lets a health check notice missing declarations.
        missing = [row for row in bus_rows if row.get("missing")]
        if missing:
            raise CommandError(f"{len(missing)} stream(s) or consumer(s) are missing; run manage.py bus ensure")

    def _write_text(self, backend: str, bus_rows: list[dict], backlogs) -> None:
        self.stdout.write(f"Backend: {backend}")
        for row in bus_rows:
            if row.get("missing"):
                what = f"consumer {row['consumer']} on " if "consumer" in row else "stream "
                self.stdout.write(self.style.ERROR(f"  {what}{row['stream']}: MISSING (run manage.py bus ensure)"))
            elif "consumer" in row:
                self.stdout.write(
                    f"  consumer {row['consumer']:<14} on {row['stream']:<22} pending {row.get('pending', 0):>7}  "
                    f"unacked {row.get('ack_pending', 0):>5}  redelivered {row.get('redelivered', 0):>5}"
                )
            else:
                self.stdout.write(f"  stream {row['stream']:<22} messages {row.get('messages', 0):>9}")
        self.stdout.write("Outboxes:")
        for backlog in backlogs:
            age = backlog.oldest_age_seconds()
            self.stdout.write(
                f"  {backlog.module:<14} pending {backlog.pending:>7}  failing {backlog.failing:>5}  "
                f"oldest {'-' if age is None else f'{age:.1f} s':>9}  dead letters {backlog.dead_letters}"
            )
