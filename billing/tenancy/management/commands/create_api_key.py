from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.tenancy.services import InvalidTenant, api_key_create


class Command(BaseCommand):
    help = "Create a REST API key for a tenant and print its secret, which is shown only once."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="id of the tenant the key acts as")
        parser.add_argument("--name", default="", help="label shown in key lists, such as 'ci' or 'erp sync'")
        parser.add_argument(
            "--staff", action="store_true", help="allow replaying and discarding dead letters of every tenant"
        )

    def handle(self, *args, tenant, name, staff, **options):
        try:
            api_key, secret = api_key_create(tenant_id=tenant, name=name, is_staff=staff, now=timezone.now())
        except InvalidTenant as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Created API key {api_key.id} ({api_key.prefix}...) for tenant {tenant}.")
        self.stdout.write("Send it as 'Authorization: Bearer <key>'; it is not shown again:")
        self.stdout.write(secret)
