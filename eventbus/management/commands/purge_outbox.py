from django.core.management.base import BaseCommand

from eventbus.registry import all_modules
from eventbus.relay import outbox_purge


class Command(BaseCommand):
    help = "Delete published outbox rows older than EVENTBUS_OUTBOX_RETENTION_SECONDS."

    def handle(self, *args, **options):
        for module in all_modules():
            deleted = outbox_purge(module=module.name)
            self.stdout.write(f"{module.name}: purged {deleted} published row(s)")
