from datetime import datetime

import pytest

from subscriptions.errors import (
    InvalidPlan,
    InvalidTimestamp,
    PlanInactive,
    PlanInUse,
    UnknownTenant,
)
from subscriptions.models import Plan
from subscriptions.services import plan_set_active, plan_upsert, subscription_create
from subscriptions.tests.factories import NOW, TENANT_ID, PlanFactory, SubscriptionFactory
from subscriptions.tests.support import ALIAS, morning_of

pytestmark = pytest.mark.django_db(databases="__all__")

PRO = {
    "tenant_id": TENANT_ID,
    "code": "pro",
    "name": "Pro",
    "amount_minor": 2900,
    "currency": "USD",
    "interval": "month",
}


class TestPlanUpsert:
    def test_creates_plan(self, tenant):
        plan, created = plan_upsert(**PRO, interval_count=3, trial_days=14, now=NOW)

        assert created is True
        stored = Plan.objects.using(ALIAS).get(id=plan.id)
        assert stored.tenant_id == TENANT_ID
        assert stored.code == "pro"
        assert stored.name == "Pro"
        assert stored.amount_minor == 2900
        assert stored.currency == "USD"
        assert stored.interval == "month"
        assert stored.interval_count == 3
        assert stored.trial_days == 14
        assert stored.active is True
        assert stored.created_at == NOW

    def test_same_values_change_nothing(self, tenant):
        first, _ = plan_upsert(**PRO, now=NOW)

        second, created = plan_upsert(**PRO, now=morning_of(NOW.date().replace(day=5)))

        assert created is False
        assert second.id == first.id
        assert Plan.objects.using(ALIAS).get().updated_at == NOW

    def test_new_price_updates_plan(self, tenant):
        later = morning_of(NOW.date().replace(day=5))
        plan_upsert(**PRO, now=NOW)

        plan, created = plan_upsert(**{**PRO, "amount_minor": 3900, "name": "Pro 2026"}, now=later)

        assert created is False
        stored = Plan.objects.using(ALIAS).get(id=plan.id)
        assert stored.amount_minor == 3900
        assert stored.name == "Pro 2026"
        assert stored.updated_at == later

    def test_same_code_in_other_tenant_is_another_plan(self, tenant):
        from billing.tenancy.services import tenant_ensure

        tenant_ensure(tenant_id="globex", now=NOW)
        plan_upsert(**PRO, now=NOW)

        _, created = plan_upsert(**{**PRO, "tenant_id": "globex"}, now=NOW)

        assert created is True
        assert Plan.objects.using(ALIAS).count() == 2

    def test_interval_of_unused_plan_can_change(self, tenant):
        plan_upsert(**PRO, now=NOW)

        plan, _ = plan_upsert(**{**PRO, "interval": "year"}, now=NOW)

        assert plan.interval == "year"

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (
                {"currency": "EUR"},
                "plan 'pro' has 1 subscription(s), so its currency cannot change from 'USD' to 'EUR'; "
                "create a plan with a new code and change the subscriptions' plan to it, for example with "
                "POST /api/v1/subscriptions/{id}/change-plan",
            ),
            (
                {"interval": "week"},
                "plan 'pro' has 1 subscription(s), so its interval cannot change from 'month' to 'week'; "
                "create a plan with a new code and change the subscriptions' plan to it, for example with "
                "POST /api/v1/subscriptions/{id}/change-plan",
            ),
            (
                {"interval_count": 2},
                "plan 'pro' has 1 subscription(s), so its interval_count cannot change from 1 to 2; "
                "create a plan with a new code and change the subscriptions' plan to it, for example with "
                "POST /api/v1/subscriptions/{id}/change-plan",
            ),
        ],
        ids=["currency", "interval", "interval-count"],
    )
    def test_schedule_of_used_plan_cannot_change(self, change, message):
        plan = PlanFactory(code="pro", amount_minor=2900)
        SubscriptionFactory(plan=plan)

        with pytest.raises(PlanInUse) as raised:
            plan_upsert(**{**PRO, **change}, now=NOW)

        assert raised.value.code == "plan_in_use"
        assert str(raised.value) == message
        stored = Plan.objects.using(ALIAS).get(id=plan.id)
        assert (stored.currency, stored.interval, stored.interval_count) == ("USD", "month", 1)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (
                {"code": "basic plan"},
                "plan code 'basic plan' is invalid; use 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
            ),
            ({"name": "  "}, "plan name '  ' is empty; give the name customers see on invoices"),
            ({"amount_minor": -1}, "amount_minor -1 is negative; a price is zero or more minor units"),
            (
                {"amount_minor": 29.0},
                "amount_minor 29.0 is not a whole number of minor units; "
                "convert a decimal price with billing.money.to_minor_units",
            ),
            (
                {"amount_minor": 10**12 + 1},
                "amount_minor 1000000000001 exceeds the maximum of 1000000000000 minor units",
            ),
            (
                {"currency": "usd"},
                "currency 'usd' is not an ISO 4217 code; use three capital letters such as 'USD'",
            ),
            ({"currency": "XTS"}, "currency 'XTS' is not a known ISO 4217 currency"),
            ({"interval": "fortnight"}, "interval 'fortnight' is invalid; use one of day, week, month, year"),
            (
                {"interval_count": 0},
                "interval_count 0 is invalid; use a whole number from 1 to 36 for interval 'month'",
            ),
            (
                {"interval": "year", "interval_count": 4},
                "interval_count 4 is invalid; use a whole number from 1 to 3 for interval 'year'",
            ),
            (
                {"trial_days": -1},
                "trial_days -1 is invalid; use a whole number of days from 0 to 730",
            ),
        ],
        ids=[
            "code", "name", "negative-price", "float-price", "price-too-high", "lower-case-currency",
            "test-currency", "interval", "zero-count", "count-too-high", "negative-trial",
        ],
    )
    def test_invalid_field_is_rejected(self, tenant, change, message):
        with pytest.raises(InvalidPlan) as raised:
            plan_upsert(**{**PRO, **change}, now=NOW)

        assert raised.value.code == "invalid_plan"
        assert str(raised.value) == message
        assert Plan.objects.using(ALIAS).count() == 0

    def test_unknown_tenant_is_rejected(self, tenant):
        with pytest.raises(UnknownTenant) as raised:
            plan_upsert(**{**PRO, "tenant_id": "initech"}, now=NOW)

        assert str(raised.value) == (
            "tenant 'initech' does not exist; create it first with manage.py tenants create initech"
        )
        assert Plan.objects.using(ALIAS).count() == 0

    def test_naive_now_is_rejected(self, tenant):
        with pytest.raises(InvalidTimestamp) as raised:
            plan_upsert(**PRO, now=datetime(2026, 1, 1, 9, 0))

        assert str(raised.value) == (
            "now datetime.datetime(2026, 1, 1, 9, 0) has no time zone; "
            "pass an aware UTC datetime such as datetime.now(UTC)"
        )
        assert Plan.objects.using(ALIAS).count() == 0


class TestPlanSetActive:
    def test_inactive_plan_takes_no_subscriptions(self, tenant):
        plan_upsert(**PRO, now=NOW)

        plan = plan_set_active(tenant_id=TENANT_ID, code="pro", active=False, now=NOW)

        assert plan.active is False
        with pytest.raises(PlanInactive) as raised:
            subscription_create(
                tenant_id=TENANT_ID,
                customer_id="4b0f1c9e-6d3a-4d8e-9d7e-2f1a3c5b7e90",
                plan_code="pro",
                start_date=NOW.date(),
                now=NOW,
            )
        assert raised.value.code == "plan_inactive"
        assert str(raised.value) == (
            "plan 'pro' in tenant 'acme' is inactive and takes no new subscriptions; "
            "choose an active plan or reactivate this one"
        )

    def test_upsert_keeps_plan_inactive(self, tenant):
        plan_upsert(**PRO, now=NOW)
        plan_set_active(tenant_id=TENANT_ID, code="pro", active=False, now=NOW)

        plan, _ = plan_upsert(**{**PRO, "amount_minor": 3100}, now=NOW)

        assert plan.active is False
