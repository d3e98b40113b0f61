from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "billing.tenancy"
    label = "tenancy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from billing.tenancy.selectors import tenant_exists
        from eventbus.tenants import register_tenant_lookup

        # Consumers dead-letter an event whose tenant does not exist instead of applying it.
        register_tenant_lookup(lambda tenant_id: tenant_exists(tenant_id=tenant_id))
