from datetime import date

import pytest

from subscriptions.errors import SubscriptionNotFound
from subscriptions.selectors import (
    bill_run_list,
    bill_run_queryset,
    billing_period_list,
    plan_queryset,
    subscription_counts_by_status,
    subscription_get,
    subscription_list_for_customer,
    subscription_queryset,
)
from subscriptions.services import bill_run_execute, subscription_cancel
from subscriptions.tests.factories import NOW, PlanFactory, SubscriptionFactory
from subscriptions.tests.support import morning_of

pytestmark = pytest.mark.django_db(databases="__all__")


class TestSubscriptionCountsByStatus:
    def test_counts_every_status(self):
        SubscriptionFactory()
        SubscriptionFactory()
        SubscriptionFactory(plan=PlanFactory(trial_days=30))
        canceled = SubscriptionFactory()
        subscription_cancel(subscription_id=str(canceled.id), at_period_end=False, now=NOW)
        SubscriptionFactory(tenant_id="globex")

        assert subscription_counts_by_status(tenant_id="acme") == {
            "trialing": 1,
            "active": 2,
            "past_due": 0,
            "canceled": 1,
        }
        assert subscription_counts_by_status()["active"] == 3

    def test_empty_tenant_has_zero_counts(self):
        assert subscription_counts_by_status(tenant_id="acme") == {
            "trialing": 0,
            "active": 0,
            "past_due": 0,
            "canceled": 0,
        }


class TestSubscriptionGet:
    def test_returns_subscription_with_plan(self):
        subscription = SubscriptionFactory()

        found = subscription_get(subscription_id=str(subscription.id))

        assert found.id == subscription.id
        assert found.plan.code == subscription.plan.code

    @pytest.mark.parametrize("subscription_id", ["5f0e8a52-3c1d-4e6f-8a9b-0c1d2e3f4a5b", "sub-1"])
    def test_unknown_id_raises(self, subscription_id):
        with pytest.raises(SubscriptionNotFound) as raised:
            subscription_get(subscription_id=subscription_id)

        assert str(raised.value) == f"subscription {subscription_id!r} does not exist"


class TestLists:
    def test_customer_subscriptions_oldest_first(self):
        customer_id = "4b0f1c9e-6d3a-4d8e-9d7e-2f1a3c5b7e90"
        first = SubscriptionFactory(customer_id=customer_id)
        second = SubscriptionFactory(customer_id=customer_id, now=morning_of(date(2026, 1, 2)))
        SubscriptionFactory()

        found = subscription_list_for_customer(tenant_id="acme", customer_id=customer_id.upper())

        assert [item.id for item in found] == [first.id, second.id]

    def test_billing_periods_and_bill_runs(self):
        subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
        first = bill_run_execute(as_of=date(2026, 1, 1), now=morning_of(date(2026, 1, 1)))
        second = bill_run_execute(as_of=date(2026, 2, 1), now=morning_of(date(2026, 2, 1)))

        periods = billing_period_list(subscription_id=str(subscription.id))

        assert [(period.period_start, period.period_end) for period in periods] == [
            (date(2026, 1, 1), date(2026, 2, 1)),
            (date(2026, 2, 1), date(2026, 3, 1)),
        ]
        assert billing_period_list(subscription_id="sub-1") == []
        assert [str(run.id) for run in bill_run_list()] == [second.bill_run_id, first.bill_run_id]
        assert bill_run_list(tenant_id="globex") == []


class TestTenantQuerysets:
    def test_each_returns_only_the_tenants_rows(self):
        mine = SubscriptionFactory(tenant_id="acme")
        SubscriptionFactory(tenant_id="globex")
        run = bill_run_execute(tenant_id="acme", as_of=date(2026, 1, 1), now=NOW)
        bill_run_execute(tenant_id="globex", as_of=date(2026, 1, 1), now=NOW)
        bill_run_execute(as_of=date(2026, 1, 1), now=NOW)

        assert list(plan_queryset(tenant_id="acme")) == [mine.plan]
        assert list(subscription_queryset(tenant_id="acme")) == [mine]
        assert [str(row.id) for row in bill_run_queryset(tenant_id="acme")] == [run.bill_run_id]
