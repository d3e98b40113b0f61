from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.tenancy.selectors import tenant_ids
from billing.tenancy.services import InvalidTenant, tenant_ensure


class Command(BaseCommand):
    help = "List the tenants, or create one."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "create"], help="list: print every tenant id; create: add one.")
        parser.add_argument("tenant_id", nargs="?", help="With create: the new id, 1 to 63 lower-case letters, digits and hyphens.")
        parser.add_argument("--name", default="", help="With create: a display name (default: the id).")

    def handle(self, *args, **options):
        if options["action"] == "list":
            ids = tenant_ids()
            for tenant_id in ids:
                self.stdout.write(tenant_id)
            self.stdout.write(f"{len(ids)} tenant(s)")
            return

        if not options["tenant_id"]:
            raise CommandError("create needs a tenant id: manage.py tenants create acme --name 'Acme Inc.'")
        try:
            tenant = tenant_ensure(tenant_id=options["tenant_id"], name=options["name"], now=timezone.now())
        except InvalidTenant as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"tenant {tenant.id} ({tenant.name}) is ready")
