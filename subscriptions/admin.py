"""Admin pages of the subscriptions module, read-only: every change goes through a service,
which validates it, bumps the version and publishes its event."""

from django.contrib import admin

from subscriptions.models import BillingPeriod, BillRun, Plan, Subscription, SubscriptionInvoice


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admin pages that list and show rows but never add, change or delete them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(ReadOnlyAdmin):
    list_display = ["code", "tenant_id", "name", "amount_minor", "currency", "interval", "interval_count", "trial_days", "active"]
    list_filter = ["active", "interval", "currency"]
    search_fields = ["code", "name", "tenant_id"]


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant_id", "customer_id", "plan", "quantity", "status", "current_period_end", "ends_on"]
    list_filter = ["status", "cancel_at_period_end"]
    search_fields = ["id", "customer_id", "external_id", "tenant_id"]
    list_select_related = ["plan"]


@admin.register(BillingPeriod)
class BillingPeriodAdmin(ReadOnlyAdmin):
    list_display = ["subscription_id", "period_start", "period_end", "plan_code", "amount_minor", "currency", "bill_run_id"]
    list_filter = ["currency"]
    search_fields = ["subscription__id", "tenant_id", "plan_code"]
    date_hierarchy = "period_start"


@admin.register(BillRun)
class BillRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "as_of", "tenant_id", "dry_run", "status", "subscriptions_seen", "periods_billed", "elapsed_seconds", "started_at"]
    list_filter = ["status", "dry_run"]


@admin.register(SubscriptionInvoice)
class SubscriptionInvoiceAdmin(ReadOnlyAdmin):
    list_display = ["invoice_id", "subscription_id", "status", "status_changed_at"]
    list_filter = ["status"]
    search_fields = ["invoice_id", "subscription__id"]
