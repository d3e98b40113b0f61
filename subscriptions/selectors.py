"""Reads of the subscriptions module, for its interfaces and for other modules."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count

from subscriptions.errors import SubscriptionNotFound
from subscriptions.models import BillingPeriod, BillRun, Plan, Subscription, SubscriptionStatus

ALIAS = "subscriptions"


def subscription_counts_by_status(*, tenant_id: str | None = None) -> dict[str, int]:
    """Return the number of subscriptions in each status, with every status present."""
    subscriptions = Subscription.objects.using(ALIAS)
    if tenant_id is not None:
        subscriptions = subscriptions.filter(tenant_id=tenant_id)
    counts = dict.fromkeys(SubscriptionStatus.values, 0)
    rows = subscriptions.order_by().values_list("status").annotate(count=Count("id"))
    for status, count in rows:
        counts[status] = count
    return counts


def subscription_get(*, subscription_id: str) -> Subscription:
    """Return the subscription with its plan; raise ``SubscriptionNotFound``."""
    canonical_id = _uuid_or_none(subscription_id)
    subscription = None
    if canonical_id is not None:
        subscription = (
            Subscription.objects.using(ALIAS)
            .select_related("plan", "pending_plan")
            .filter(id=canonical_id)
            .first()
        )
    if subscription is None:
        raise SubscriptionNotFound(f"subscription {subscription_id!r} does not exist")
    return subscription


def subscription_list_for_customer(*, tenant_id: str, customer_id: str) -> list[Subscription]:
    """Return the customer's subscriptions, oldest first."""
    return list(
        Subscription.objects.using(ALIAS)
        .select_related("plan", "pending_plan")
        .filter(tenant_id=tenant_id, customer_id=str(customer_id).lower())
        .order_by("created_at", "id")
    )


def billing_period_list(*, subscription_id: str) -> list[BillingPeriod]:
    """Return the subscription's billed periods in date order; none for an id that is not a UUID."""
    canonical_id = _uuid_or_none(subscription_id)
    if canonical_id is None:
        return []
    return list(
        BillingPeriod.objects.using(ALIAS).filter(subscription_id=canonical_id).order_by("period_start")
    )


def bill_run_list(*, tenant_id: str | None = None, limit: int = 20) -> list[BillRun]:
    """Return the latest bill runs, newest first; ``tenant_id`` narrows to runs of that tenant."""
    runs = BillRun.objects.using(ALIAS).order_by("-started_at")
    if tenant_id is not None:
        runs = runs.filter(tenant_id=tenant_id)
    return list(runs[:limit])


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def plan_queryset(*, tenant_id: str):
    """Return the tenant's plans as a queryset, for this module's API."""
    return Plan.objects.using(ALIAS).filter(tenant_id=tenant_id)


def subscription_queryset(*, tenant_id: str):
    """Return the tenant's subscriptions with their plans as a queryset, for this module's API."""
    return (
        Subscription.objects.using(ALIAS)
        .filter(tenant_id=tenant_id)
        .select_related("plan", "pending_plan")
    )


def bill_run_queryset(*, tenant_id: str):
    """Return the bill runs of the tenant as a queryset, for this module's API.

    Runs over every tenant (``tenant_id`` NULL) are left out, because their
    counts include other tenants.
    """
    return BillRun.objects.using(ALIAS).filter(tenant_id=tenant_id)


def billed_start_dates_for_imports(*, tenant_id: str, external_ids: list[str]) -> dict[str, date]:
    """Return the start date of each imported subscription that has billed periods, by external id.

    Those start dates are fixed: an import that would change one is rejected
    by ``subscription_upsert_imported``, so importers check them first.
    """
    rows = (
        Subscription.objects.using(ALIAS)
        .filter(tenant_id=tenant_id, external_id__in=external_ids, billing_periods__isnull=False)
        .values_list("external_id", "started_on")
        .distinct()
    )
    return dict(rows)


@dataclass(frozen=True)
class BillingPeriodKey:
    """The identity of a billed period, which the invariant checks compare with AR."""

    billing_period_id: str
    tenant_id: str
    subscription_id: str
    period_start: date
    created_at: datetime


def billing_period_keys(*, tenant_id: str | None = None) -> list[BillingPeriodKey]:
    """Return every billing period's key, of one tenant or all, in creation order."""
    periods = BillingPeriod.objects.using(ALIAS)
    if tenant_id is not None:
        periods = periods.filter(tenant_id=tenant_id)
    rows = periods.order_by("created_at", "id").values_list(
        "id", "tenant_id", "subscription_id", "period_start", "created_at"
    )
    return [
        BillingPeriodKey(
            billing_period_id=str(period_id),
            tenant_id=period_tenant_id,
            subscription_id=str(subscription_id),
            period_start=period_start,
            created_at=created_at,
        )
        for period_id, period_tenant_id, subscription_id, period_start, created_at in rows
    ]
