"""Factories for the subscriptions tests.

Plans are plain rows; subscriptions go through ``subscription_create``, so
each one has the dates, status and ``created`` event the service gives it.
"""

from datetime import UTC, date, datetime

import factory

from billing.tenancy.services import tenant_ensure
from subscriptions.models import Plan, Subscription
from subscriptions.services import subscription_create

TENANT_ID = "acme"
# The clock every test starts from unless it moves it.
NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        database = "subscriptions"

    tenant_id = TENANT_ID
    code = factory.Sequence(lambda number: f"plan-{number}")
    name = "Pro"
    amount_minor = 2900
    currency = "USD"
    interval = "month"
    interval_count = 1
    trial_days = 0
    active = True
    created_at = NOW
    updated_at = NOW


class SubscriptionFactory(factory.Factory):
    """Create a subscription with ``subscription_create``; pass ``plan`` to choose its plan."""

    class Meta:
        model = Subscription

    tenant_id = TENANT_ID
    customer_id = factory.Faker("uuid4")
    plan = factory.SubFactory(PlanFactory, tenant_id=factory.SelfAttribute("..tenant_id"))
    start_date = date(2026, 1, 1)
    quantity = 1
    price_override_minor = None
    external_id = None
    now = NOW

    @classmethod
    def _create(cls, model_class, plan, **kwargs):
        tenant_ensure(tenant_id=kwargs["tenant_id"], now=NOW)
        return subscription_create(plan_code=plan.code, **kwargs)

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise NotImplementedError("build a subscription through SubscriptionFactory.create")
