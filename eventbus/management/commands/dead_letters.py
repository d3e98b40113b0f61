from django.core.management.base import BaseCommand, CommandError

from eventbus.dead_letters import dead_letter_discard, dead_letter_replay
from eventbus.errors import EventBusError
from eventbus.models import DeadLetterStatus
from eventbus.selectors import dead_letter_list


class Command(BaseCommand):
    help = "List, replay or discard the messages consumers gave up on."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "replay", "discard"], help="What to do.")
        parser.add_argument("--module", metavar="M", help="Only this module's dead letters (required for replay and discard).")
        parser.add_argument("--id", type=int, action="append", dest="ids", metavar="N", help="Dead letter id; repeat for several.")
        parser.add_argument("--all", action="store_true", help="Replay or discard every dead letter of --module.")
        parser.add_argument(
            "--status", choices=[choice for choice, _ in DeadLetterStatus.choices], default=DeadLetterStatus.DEAD,
            help="With list: show rows in this status (default: dead).",
        )
        parser.add_argument("--yes", action="store_true", help="Confirm discard, which cannot be undone.")

    def handle(self, *args, **options):
        try:
            if options["action"] == "list":
                self._list(options)
            else:
                self._resolve(options)
        except EventBusError as error:
            raise CommandError(str(error)) from error

    def _list(self, options):
        rows = dead_letter_list(module=options["module"], status=options["status"])
        for module, row in rows:
            self.stdout.write(
                f"{module:<14} #{row.id:<6} {row.reason:<22} {row.event_type or '-':<40} "
                f"deliveries {row.deliveries}  {row.error.splitlines()[0][:100] if row.error else ''}"
            )
        self.stdout.write(f"{len(rows)} dead letter(s)")

    def _resolve(self, options):
        module = options["module"]
        if not module:
            raise CommandError(f"{options['action']} needs --module M")
        ids = options["ids"] or []
        if not ids and not options["all"]:
            raise CommandError("name the dead letters with --id N (repeatable) or pass --all")
        if options["all"]:
            ids = [row.id for _, row in dead_letter_list(module=module)]
            if not ids:
                self.stdout.write(f"module {module!r} has no dead letters to {options['action']}")
                return
        if options["action"] == "discard" and not options["yes"]:
            raise CommandError(f"discarding {len(ids)} dead letter(s) cannot be undone; add --yes to confirm")

        failures = 0
        for dead_letter_id in ids:
            if options["action"] == "discard":
                dead_letter_discard(module=module, dead_letter_id=dead_letter_id)
                self.stdout.write(f"#{dead_letter_id}: discarded")
                continue
            result = dead_letter_replay(module=module, dead_letter_id=dead_letter_id)
            if result.applied:
                self.stdout.write(f"#{dead_letter_id}: replayed")
            else:
                failures += 1
                self.stderr.write(f"#{dead_letter_id}: failed again: {result.error.splitlines()[-1] if result.error else ''}")
        if failures:
            raise CommandError(f"{failures} replay(s) failed; the rows stay dead with the new error")
