from billing.tenancy.models import Tenant


def tenant_exists(*, tenant_id: str) -> bool:
    return Tenant.objects.using("default").filter(id=tenant_id).exists()


def tenant_ids() -> list[str]:
    return list(Tenant.objects.using("default").order_by("id").values_list("id", flat=True))
