from django.core.management.base import BaseCommand, CommandError

from billing.tenancy.selectors import api_key_list, tenant_exists


class Command(BaseCommand):
    help = "List a tenant's REST API keys: id, prefix, name, created and revoked times. Secrets are never shown."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="id of the tenant whose keys to list")

    def handle(self, *args, tenant, **options):
        if not tenant_exists(tenant_id=tenant):
            raise CommandError(f"tenant {tenant!r} does not exist; check the id with manage.py tenants list")
        keys = api_key_list(tenant_id=tenant)
        if not keys:
            self.stdout.write(f"Tenant {tenant} has no API keys; create one with manage.py create_api_key.")
            return
        self.stdout.write("id\tprefix\tname\tstaff\tcreated_at\trevoked_at")
        for key in keys:
            revoked_at = key.revoked_at.isoformat() if key.revoked_at else "-"
            self.stdout.write(
                f"{key.id}\t{key.prefix}...\t{key.name or '-'}\t{'yes' if key.is_staff else 'no'}\t"
                f"{key.created_at.isoformat()}\t{revoked_at}"
            )
