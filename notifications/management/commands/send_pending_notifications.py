from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notifications.selectors import notification_counts_by_status
from notifications.services import notifications_send_pending


class Command(BaseCommand):
    help = "Send the notification emails left pending by a crashed or interrupted sender."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=int, default=60, metavar="SECONDS", dest="older_than_seconds",
            help=(
                "Send only notifications with no send attempt in this many seconds (default: 60). "
                "Keep it above the email backend's timeout, so a send in progress is not repeated."
            ),
        )

    def handle(self, *args, **options):
        older_than_seconds = options["older_than_seconds"]
        if older_than_seconds < 0:
            raise CommandError(f"--older-than {older_than_seconds} must be 0 or more seconds")

        sent = notifications_send_pending(now=timezone.now(), older_than_seconds=older_than_seconds)

        counts = notification_counts_by_status()
        self.stdout.write(
            f"Sent {sent} pending notification(s); now {counts['pending']} pending, "
            f"{counts['sent']} sent, {counts['failed']} failed"
        )
