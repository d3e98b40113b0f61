import hashlib

from billing.tenancy.models import ApiKey, Tenant


def tenant_exists(*, tenant_id: str) -> bool:
    return Tenant.objects.using("default").filter(id=tenant_id).exists()


def tenant_ids() -> list[str]:
    return list(Tenant.objects.using("default").order_by("id").values_list("id", flat=True))


def api_key_for_secret(*, secret: str) -> ApiKey | None:
    """Return the unrevoked key whose secret is ``secret``, with its tenant, or None."""
    return (
        ApiKey.objects.using("default")
        .select_related("tenant")
        .filter(secret_sha256=hashlib.sha256(secret.encode()).hexdigest(), revoked_at__isnull=True)
        .first()
    )


def api_key_list(*, tenant_id: str | None = None) -> list[ApiKey]:
    keys = ApiKey.objects.using("default").order_by("tenant_id", "created_at", "id")
    if tenant_id is not None:
        keys = keys.filter(tenant_id=tenant_id)
    return list(keys)
