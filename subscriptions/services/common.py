"""Argument checks and row lookups shared by the subscriptions services."""

import re
import uuid
from datetime import date, datetime

from django.db import connections

from billing.tenancy.selectors import tenant_exists
from subscriptions.errors import (
    InvalidSubscription,
    InvalidTimestamp,
    PlanInactive,
    PlanNotFound,
    SubscriptionNotFound,
    SubscriptionsError,
    UnknownTenant,
)
from subscriptions.models import BillingPeriod, Plan, Subscription

# The database alias, and the bus module name, of the subscriptions module.
ALIAS = "subscriptions"

# Limits that keep quantity * unit price at most 10**18, inside PostgreSQL's
# bigint (about 9.2 * 10**18), so a period's amount can always be stored.
MAX_UNIT_AMOUNT_MINOR = 10**12
MAX_QUANTITY = 10**6

EXTERNAL_ID_MAX_LENGTH = 100
PLAN_CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def require_aware(now: datetime, name: str = "now") -> datetime:
    """Return ``now`` if it is a timezone-aware datetime; raise ``InvalidTimestamp`` otherwise."""
    if not isinstance(now, datetime):
        raise InvalidTimestamp(
            f"{name} {now!r} is not a datetime; pass an aware UTC datetime such as datetime.now(UTC)"
        )
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidTimestamp(
            f"{name} {now!r} has no time zone; pass an aware UTC datetime such as datetime.now(UTC)"
        )
    return now


# The calendar range billing dates may take; the REST API accepts the same.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(2199, 12, 31)


def require_date(value: date, name: str, error: type[SubscriptionsError]) -> date:
    """Return ``value`` if it is a calendar date in the supported range; raise ``error`` otherwise.

    A datetime is rejected. Dates near year 9999 are too, because period
    arithmetic past them overflows Python's date type.
    """
    if isinstance(value, datetime) or not isinstance(value, date):
        raise error(f"{name} {value!r} is not a date; pass a datetime.date such as date(2026, 1, 31)")
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise error(
            f"{name} {value.isoformat()} is outside the supported range "
            f"{EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}"
        )
    return value


def billing_date_validate(value: date, name: str) -> date:
    """Return ``value`` if it is a date the subscriptions module accepts; raise ``InvalidSubscription`` otherwise.

    Callers outside the module, such as the CSV import, check dates with this
    before they write anything else.
    """
    return require_date(value, name, InvalidSubscription)


def require_tenant(tenant_id: str) -> str:
    """Return ``tenant_id`` if the tenant exists; raise ``UnknownTenant`` otherwise."""
    if not isinstance(tenant_id, str) or not tenant_exists(tenant_id=tenant_id):
        raise UnknownTenant(
            f"tenant {tenant_id!r} does not exist; create it first with "
            f"manage.py tenants create {tenant_id}"
        )
    return tenant_id


def is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_customer_id(customer_id: str) -> str:
    """Return ``customer_id`` as a lower-case hyphenated UUID string."""
    if isinstance(customer_id, uuid.UUID):
        return str(customer_id)
    try:
        return str(uuid.UUID(customer_id))
    except (TypeError, ValueError, AttributeError):
        raise InvalidSubscription(
            f"customer_id {customer_id!r} is not a UUID; pass the id of the AR customer"
        ) from None


def check_quantity(quantity: int) -> int:
    if not is_whole_number(quantity) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidSubscription(
            f"quantity {quantity!r} is invalid; use a whole number from 1 to {MAX_QUANTITY}"
        )
    return quantity


def check_price_override(price_override_minor: int | None) -> int | None:
    if price_override_minor is None:
        return None
    if not is_whole_number(price_override_minor):
        raise InvalidSubscription(
            f"price_override_minor {price_override_minor!r} is not a whole number of minor units; "
            "convert a decimal price with billing.money.to_minor_units, or pass None for the plan's price"
        )
    if price_override_minor < 0:
        raise InvalidSubscription(
            f"price_override_minor {price_override_minor} is negative; use zero or more minor units, "
            "or None for the plan's price"
        )
    if price_override_minor > MAX_UNIT_AMOUNT_MINOR:
        raise InvalidSubscription(
            f"price_override_minor {price_override_minor} exceeds the maximum of "
            f"{MAX_UNIT_AMOUNT_MINOR} minor units"
        )
    return price_override_minor


def check_external_id(external_id: str | None) -> str | None:
    if external_id is None:
        return None
    if not isinstance(external_id, str) or not external_id.strip():
        raise InvalidSubscription(
            f"external_id {external_id!r} is empty; pass the id from the source system, or None"
        )
    external_id = external_id.strip()
    if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
        raise InvalidSubscription(
            f"external_id {external_id[:20]!r}... is {len(external_id)} characters long; "
            f"the maximum is {EXTERNAL_ID_MAX_LENGTH}"
        )
    return external_id


def check_subscription_id(subscription_id: str) -> str:
    """Return ``subscription_id`` as a canonical UUID string; raise ``SubscriptionNotFound`` otherwise."""
    try:
        return str(uuid.UUID(str(subscription_id)))
    except ValueError:
        raise SubscriptionNotFound(
            f"subscription {subscription_id!r} does not exist: it is not a UUID"
        ) from None


def get_active_plan(*, tenant_id: str, plan_code: str) -> Plan:
    """Return the tenant's plan ``plan_code``; raise unless it exists and is active."""
    plan = Plan.objects.using(ALIAS).filter(tenant_id=tenant_id, code=plan_code).first()
    if plan is None:
        raise PlanNotFound(
            f"plan {plan_code!r} does not exist in tenant {tenant_id!r}; create the plan first, for example with POST /api/v1/plans"
        )
    if not plan.active:
        raise PlanInactive(
            f"plan {plan_code!r} in tenant {tenant_id!r} is inactive and takes no new subscriptions; "
            "choose an active plan or reactivate this one"
        )
    return plan


def lock_subscription(
    *,
    subscription_id: str,
    tenant_id: str | None = None,
    with_plans: bool = True,
    billing_period_id: uuid.UUID | None = None,
) -> Subscription:
    """Return the subscription locked for update, or raise ``SubscriptionNotFound``.

    Call inside ``transaction.atomic(using=ALIAS)``. When ``tenant_id`` is
    given, a subscription of another tenant counts as not found. The plans
    are loaded in the same query unless ``with_plans`` is False. Without the
    plans, ``billing_period_id`` may be given: the subscription then has
    ``has_billing_period``, whether that billing period is one of its own,
    read by the same query.
    """
    canonical_id = check_subscription_id(subscription_id)
    if with_plans:
        if billing_period_id is not None:
            raise ValueError("billing_period_id is read only with with_plans=False")
        subscriptions = (
            Subscription.objects.using(ALIAS).select_for_update(of=("self",)).select_related("plan", "pending_plan")
        )
        if tenant_id is not None:
            subscriptions = subscriptions.filter(tenant_id=tenant_id)
        subscription = subscriptions.filter(id=canonical_id).first()
    else:
        subscription = _lock_subscription_row(canonical_id, tenant_id, billing_period_id)
    if subscription is None:
        where = f" in tenant {tenant_id!r}" if tenant_id is not None else ""
        raise SubscriptionNotFound(f"subscription {subscription_id!r} does not exist{where}")
    return subscription


def _lock_subscription_row(
    subscription_id: str, tenant_id: str | None, billing_period_id: uuid.UUID | None
) -> Subscription | None:
    """Return the subscription row locked for update, or None, with one raw statement.

    Raw SQL: the ORM took longer to build this statement than PostgreSQL took
    to run it, for two events of every invoice in a bill run.
    """
    connection = connections[ALIAS]
    quote = connection.ops.quote_name
    pk = Subscription._meta.pk
    columns = "s.*"
    parameters = []
    if billing_period_id is not None:
        period_subscription = quote(BillingPeriod._meta.get_field("subscription").column)
        columns += (
            f", EXISTS (SELECT 1 FROM {quote(BillingPeriod._meta.db_table)} p WHERE p.{quote('id')} = %s"
            f" AND p.{period_subscription} = s.{quote(pk.column)}) AS has_billing_period"
        )
        parameters.append(BillingPeriod._meta.pk.get_db_prep_value(billing_period_id, connection))
    where = f"s.{quote(pk.column)} = %s"
    parameters.append(pk.get_db_prep_value(subscription_id, connection))
    if tenant_id is not None:
        where += f" AND s.{quote('tenant_id')} = %s"
        parameters.append(tenant_id)
    # SQLite takes no row locks: its write lock covers the whole transaction.
    lock = " FOR UPDATE OF s" if connection.features.has_select_for_update else ""
    rows = Subscription.objects.using(ALIAS).raw(
        f"SELECT {columns} FROM {quote(Subscription._meta.db_table)} s WHERE {where}{lock}", parameters
    )
    subscription = next(iter(rows), None)
    if subscription is not None and billing_period_id is not None:
        subscription.has_billing_period = bool(subscription.has_billing_period)
    return subscription


def last_billed_end(subscription: Subscription) -> date | None:
    """Return the end of the subscription's last billed period, or None before its first bill."""
    last = (
        BillingPeriod.objects.using(ALIAS)
        .filter(subscription_id=subscription.id)
        .order_by("-period_end")
        .values_list("period_end", flat=True)
        .first()
    )
    return last
