from datetime import date, timedelta

from django.utils import timezone
from rest_framework import serializers

from billing.api.serializers import (
    BillingDateField,
    CurrencyField,
    MinorUnitsField,
    StrictBooleanField,
    StrictInputSerializer,
    StrictIntegerField,
)
from subscriptions.models import (
    BillRun,
    BillRunStatus,
    Plan,
    PlanInterval,
    Subscription,
    SubscriptionStatus,
)

# Billing runs in advance, but a bill run more than a year ahead would bill
# every period up to it at once, which is a typo far more often than intent.
MAX_BILL_AHEAD_DAYS = 366


class PlanInputSerializer(StrictInputSerializer):
    code = serializers.CharField(max_length=64, help_text="The tenant's own key for the plan")
    name = serializers.CharField(max_length=200)
    amount_minor = MinorUnitsField(help_text="Price of one unit for one period, in minor units")
    currency = CurrencyField()
    interval = serializers.ChoiceField(choices=PlanInterval.choices)
    interval_count = StrictIntegerField(min_value=1, default=1)
    trial_days = StrictIntegerField(min_value=0, default=0)


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "code",
            "name",
            "amount_minor",
            "currency",
            "interval",
            "interval_count",
            "trial_days",
            "active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SubscriptionInputSerializer(StrictInputSerializer):
    customer_id = serializers.UUIDField()
    plan_code = serializers.CharField(max_length=64)
    start_date = BillingDateField(help_text="YYYY-MM-DD; may be in the past")
    quantity = StrictIntegerField(min_value=1, default=1)
    price_override_minor = MinorUnitsField(
        required=False, allow_null=True, default=None, help_text="Unit price replacing the plan's"
    )
    external_id = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)


class SubscriptionSerializer(serializers.ModelSerializer):
    plan_code = serializers.CharField(source="plan.code", read_only=True)
    pending_plan_code = serializers.CharField(source="pending_plan.code", read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=SubscriptionStatus.choices, read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "external_id",
            "customer_id",
            "plan_code",
            "quantity",
            "price_override_minor",
            "status",
            "billing_anchor_date",
            "started_on",
            "trial_end_date",
            "current_period_start",
            "current_period_end",
            "cancel_at_period_end",
            "canceled_at",
            "ends_on",
            "pending_plan_code",
            "pending_plan_effective_on",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SubscriptionCancelInputSerializer(StrictInputSerializer):
    at_period_end = StrictBooleanField(
        default=False, help_text="End service when the current period ends instead of today"
    )


class SubscriptionChangePlanInputSerializer(StrictInputSerializer):
    plan_code = serializers.CharField(max_length=64, help_text="The plan billed from the next period")


class BillRunInputSerializer(StrictInputSerializer):
    as_of = BillingDateField(
        help_text=f"Bill every period that started on or before this date; at most {MAX_BILL_AHEAD_DAYS} days ahead"
    )
    dry_run = StrictBooleanField(default=False, help_text="Count what would be billed and bill nothing")

    def validate_as_of(self, value: date) -> date:
        latest = timezone.now().date() + timedelta(days=MAX_BILL_AHEAD_DAYS)
        if value > latest:
            raise serializers.ValidationError(
                f"must be no later than {latest.isoformat()}, {MAX_BILL_AHEAD_DAYS} days from today"
            )
        return value


class BillRunSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=BillRunStatus.choices, read_only=True)
    skipped = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    amount_minor_by_currency = serializers.DictField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = BillRun
        fields = [
            "id",
            "as_of",
            "dry_run",
            "status",
            "started_at",
            "finished_at",
            "subscriptions_seen",
            "periods_billed",
            "skipped",
            "amount_minor_by_currency",
            "elapsed_seconds",
            "error",
        ]
        read_only_fields = fields
