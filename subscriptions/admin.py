"""Admin pages of the subscriptions module. Every row is read-only: changes go through
the actions, which call the services that validate the change, bump the version and
append the event. Amounts show in major units with their currency ("29.00 USD")."""

from django.contrib import admin
from django.utils import timezone

from billing.money import InvalidMoney, format_major
from eventbus.admin import DeadLetterAdmin, OutboxEventAdmin, ProcessedEventAdmin, ServiceOnlyAdmin
from subscriptions.errors import SubscriptionsError
from subscriptions.models import (
    BillingPeriod,
    BillRun,
    DeadLetter,
    OutboxEvent,
    Plan,
    ProcessedEvent,
    Subscription,
    SubscriptionInvoice,
)
from subscriptions.services import plan_set_active, subscription_cancel

admin.site.register(OutboxEvent, OutboxEventAdmin)
admin.site.register(ProcessedEvent, ProcessedEventAdmin)
admin.site.register(DeadLetter, DeadLetterAdmin)


def money(amount_minor: int | None, currency: str) -> str:
    """Return ``amount_minor`` as "29.00 USD", or the raw minor units when the currency is unknown."""
    if amount_minor is None:
        return "-"
    try:
        return format_major(amount_minor, currency)
    except InvalidMoney:
        return f"{amount_minor} (minor units of {currency!r})"


def all_fields(model) -> list[str]:
    return [field.name for field in model._meta.fields]


@admin.register(Plan)
class PlanAdmin(ServiceOnlyAdmin):
    list_display = ["code", "name", "tenant_id", "price", "interval", "interval_count", "trial_days", "active"]
    list_filter = ["active", "interval", "currency", "tenant_id"]
    search_fields = ["code", "name", "tenant_id"]
    actions = ["activate_plans", "deactivate_plans"]

    def get_readonly_fields(self, request, obj=None):
        return all_fields(self.model)

    @admin.display(description="price", ordering="amount_minor")
    def price(self, plan: Plan) -> str:
        return money(plan.amount_minor, plan.currency)

    @admin.action(description="Activate selected plans", permissions=["service"])
    def activate_plans(self, request, queryset):
        self._set_active(request, queryset, active=True)

    @admin.action(description="Deactivate selected plans (they keep billing their subscriptions)",
                  permissions=["service"])
    def deactivate_plans(self, request, queryset):
        self._set_active(request, queryset, active=False)

    def _set_active(self, request, queryset, *, active: bool) -> None:
        def set_active(plan: Plan) -> str:
            plan_set_active(tenant_id=plan.tenant_id, code=plan.code, active=active, now=timezone.now())
            return f"Plan {plan.code} of {plan.tenant_id} is {'active' if active else 'inactive'}."

        self.run_each(request, queryset, set_active, SubscriptionsError)


@admin.register(Subscription)
class SubscriptionAdmin(ServiceOnlyAdmin):
    list_display = [
        "id", "customer_id", "plan", "quantity", "unit_price", "status", "current_period_start",
        "current_period_end", "cancel_at_period_end", "ends_on", "tenant_id",
    ]
    list_filter = ["status", "cancel_at_period_end", "tenant_id", "plan__code"]
    search_fields = ["id", "customer_id", "external_id", "plan__code"]
    list_select_related = ["plan"]
    date_hierarchy = "started_on"
    actions = ["cancel_now", "cancel_at_end_of_period"]

    def get_readonly_fields(self, request, obj=None):
        return all_fields(self.model)

    @admin.display(description="unit price")
    def unit_price(self, subscription: Subscription) -> str:
        return money(subscription.unit_amount_minor, subscription.plan.currency)

    @admin.action(description="Cancel selected subscriptions now", permissions=["service"])
    def cancel_now(self, request, queryset):
        return self._cancel(
            request,
            queryset,
            at_period_end=False,
            question=(
                "Cancel the selected subscriptions now? Service ends today and no later period is "
                "billed. The unused part of a period billed in advance is not credited."
            ),
        )

    @admin.action(description="Cancel selected subscriptions at the end of their period", permissions=["service"])
    def cancel_at_end_of_period(self, request, queryset):
        return self._cancel(
            request,
            queryset,
            at_period_end=True,
            question="Cancel the selected subscriptions at the end of their current period?",
        )

    def _cancel(self, request, queryset, *, at_period_end: bool, question: str):
        def cancel(subscription: Subscription) -> str:
            canceled = subscription_cancel(
                subscription_id=str(subscription.id), at_period_end=at_period_end, now=timezone.now()
            )
            state = "will be canceled" if at_period_end else "is canceled"
            return f"Subscription {canceled.id} {state}; its service ends on {canceled.ends_on}."

        return self.confirm_then_run_each(request, queryset, question, cancel, SubscriptionsError)


@admin.register(BillingPeriod)
class BillingPeriodAdmin(ServiceOnlyAdmin):
    list_display = [
        "subscription_id", "period_start", "period_end", "plan_code", "quantity", "amount", "bill_run_id",
        "tenant_id",
    ]
    list_filter = ["currency", "tenant_id", "plan_code"]
    search_fields = ["subscription__id", "plan_code", "description", "=bill_run__id"]
    date_hierarchy = "period_start"

    def get_readonly_fields(self, request, obj=None):
        return all_fields(self.model)

    @admin.display(description="amount", ordering="amount_minor")
    def amount(self, period: BillingPeriod) -> str:
        return money(period.amount_minor, period.currency)


@admin.register(BillRun)
class BillRunAdmin(ServiceOnlyAdmin):
    list_display = [
        "id", "as_of", "tenant_id", "dry_run", "status", "subscriptions_seen", "periods_billed", "billed",
        "elapsed_seconds", "started_at",
    ]
    list_filter = ["status", "dry_run", "tenant_id"]
    search_fields = ["id", "tenant_id"]
    date_hierarchy = "as_of"

    def get_readonly_fields(self, request, obj=None):
        return [*all_fields(self.model), "billed"]

    @admin.display(description="billed")
    def billed(self, run: BillRun) -> str:
        totals = sorted((run.amount_minor_by_currency or {}).items())
        return ", ".join(money(amount, currency) for currency, amount in totals) or "-"


@admin.register(SubscriptionInvoice)
class SubscriptionInvoiceAdmin(ServiceOnlyAdmin):
    list_display = ["invoice_id", "subscription_id", "status", "status_changed_at", "tenant_id"]
    list_filter = ["status", "tenant_id"]
    search_fields = ["invoice_id", "subscription__id"]

    def get_readonly_fields(self, request, obj=None):
        return all_fields(self.model)
