from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.tenancy.services import ApiKeyNotFound, api_key_revoke


class Command(BaseCommand):
    help = "Revoke a REST API key, so requests that send it get 401 from then on."

    def add_arguments(self, parser):
        parser.add_argument("--id", type=int, required=True, help="id of the key, as printed by create_api_key")
        parser.add_argument("--yes", action="store_true", help="confirm; clients using the key stop working")

    def handle(self, *args, id, yes, **options):
        if not yes:
            raise CommandError(f"revoking API key {id} stops every client that uses it; pass --yes to confirm")
        try:
            api_key = api_key_revoke(api_key_id=id, now=timezone.now())
        except ApiKeyNotFound as error:
            raise CommandError(f"{error}; list a tenant's keys with manage.py list_api_keys --tenant ID") from None
        self.stdout.write(f"Revoked API key {api_key.id} ({api_key.prefix}...) of tenant {api_key.tenant_id}.")
