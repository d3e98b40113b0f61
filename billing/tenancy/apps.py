from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "billing.tenancy"
    label = "tenancy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from eventbus.tenants import register_tenant_lookup

        # Consumers dead-letter an event whose tenant does not exist instead of applying it.
        register_tenant_lookup(_tenant_exists_for_consumer)


def _tenant_exists_for_consumer(tenant_id: str) -> bool:
    """Look the tenant up, then close the default connection unless a transaction still uses it.

    Consumer worker threads look tenants up only on a cache miss, so keeping
    a default-database connection open on each thread would hold a
    PostgreSQL connection slot that is almost never used.
    """
    from django.db import connections

    from billing.tenancy.selectors import tenant_exists

    try:
        return tenant_exists(tenant_id=tenant_id)
    finally:
        connection = connections["default"]
        if not connection.in_atomic_block:
            connection.close()
