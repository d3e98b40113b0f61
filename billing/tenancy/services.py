from datetime import datetime

from django.db import transaction

from billing.tenancy.models import TENANT_ID_PATTERN, Tenant


class InvalidTenant(ValueError):
    code = "invalid_tenant"


def tenant_ensure(*, tenant_id: str, name: str = "", now: datetime) -> Tenant:
    """Return the tenant ``tenant_id``, creating it when it does not exist yet."""
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.match(tenant_id):
        raise InvalidTenant(
            f"tenant id {tenant_id!r} is invalid; use 1 to 63 lower-case letters, digits and hyphens"
        )
    with transaction.atomic(using="default"):
        tenant, _ = Tenant.objects.using("default").get_or_create(
            id=tenant_id, defaults={"name": name or tenant_id, "created_at": now}
        )
    return tenant
