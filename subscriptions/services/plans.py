"""Create and change plans."""

import logging
from datetime import datetime

from django.db import IntegrityError, transaction

from billing.money import InvalidMoney, validate_currency
from subscriptions.errors import InvalidPlan, PlanInUse, PlanNotFound
from subscriptions.models import Plan, PlanInterval
from subscriptions.services.common import (
    ALIAS,
    MAX_UNIT_AMOUNT_MINOR,
    PLAN_CODE_PATTERN,
    is_whole_number,
    require_aware,
    require_tenant,
)

logger = logging.getLogger(__name__)

# Maximum period length, three years in each unit. A longer period is far
# more likely a typo (interval_count=30 for "month") than a real price.
MAX_INTERVAL_COUNT = {"day": 3 * 365, "week": 3 * 52, "month": 3 * 12, "year": 3}
# Maximum trial length: two years.
MAX_TRIAL_DAYS = 730
PLAN_NAME_MAX_LENGTH = 200

# Fields whose change would move the periods or the currency of existing
# subscriptions, whose billed periods were computed with the old values.
_SCHEDULE_FIELDS = ("currency", "interval", "interval_count")


def plan_upsert(
    *,
    tenant_id: str,
    code: str,
    name: str,
    amount_minor: int,
    currency: str,
    interval: str,
    interval_count: int = 1,
    trial_days: int = 0,
    now: datetime,
) -> tuple[Plan, bool]:
    """Create the tenant's plan ``code``, or update it; return the plan and whether it was created.

    A new price applies to each subscription's next billed period. The
    currency and interval of a plan with subscriptions cannot change, because
    its billed periods would no longer line up. ``trial_days`` affects only
    subscriptions created later. An update leaves ``active`` as it is.

    Raises ``InvalidPlan`` naming the bad field, ``UnknownTenant`` and ``PlanInUse``.
    """
    require_aware(now)
    values = _check_plan_fields(
        code=code,
        name=name,
        amount_minor=amount_minor,
        currency=currency,
        interval=interval,
        interval_count=interval_count,
        trial_days=trial_days,
    )
    require_tenant(tenant_id)

    with transaction.atomic(using=ALIAS):
        plan = _lock_plan(tenant_id=tenant_id, code=code)
        if plan is None:
            try:
                with transaction.atomic(using=ALIAS):
                    plan = Plan.objects.using(ALIAS).create(
                        tenant_id=tenant_id, code=code, created_at=now, updated_at=now, **values
                    )
            except IntegrityError:
                # Another call created the same code since the lookup; update it instead.
                plan = _lock_plan(tenant_id=tenant_id, code=code)
                if plan is None:
                    raise
            else:
                logger.info(
                    "Created plan %s", code, extra={"tenant_id": tenant_id, "plan_code": code}
                )
                return plan, True

        changed = [field for field, value in values.items() if getattr(plan, field) != value]
        if not changed:
            return plan, False

        schedule_changes = [field for field in _SCHEDULE_FIELDS if field in changed]
        if schedule_changes:
            subscription_count = plan.subscriptions.count()
            if subscription_count:
                field = schedule_changes[0]
                raise PlanInUse(
                    f"plan {code!r} has {subscription_count} subscription(s), so its {field} cannot "
                    f"change from {getattr(plan, field)!r} to {values[field]!r}; create a plan with a "
                    "new code and change the subscriptions' plan to it, for example with "
                    "POST /api/v1/subscriptions/{id}/change-plan"
                )

        for field in changed:
            setattr(plan, field, values[field])
        plan.updated_at = now
        plan.save(using=ALIAS, update_fields=[*changed, "updated_at"])

    logger.info(
        "Updated plan %s: %s", code, ", ".join(changed), extra={"tenant_id": tenant_id, "plan_code": code}
    )
    return plan, False


def plan_set_active(*, tenant_id: str, code: str, active: bool, now: datetime) -> Plan:
    """Activate or deactivate the tenant's plan ``code``.

    An inactive plan keeps billing its subscriptions but takes no new
    subscriptions or plan changes. Raises ``PlanNotFound``.
    """
    require_aware(now)
    if not isinstance(active, bool):
        raise InvalidPlan(f"active {active!r} is not a boolean; pass True or False")

    with transaction.atomic(using=ALIAS):
        plan = _lock_plan(tenant_id=tenant_id, code=code)
        if plan is None:
            raise PlanNotFound(f"plan {code!r} does not exist in tenant {tenant_id!r}")
        if plan.active == active:
            return plan
        plan.active = active
        plan.updated_at = now
        plan.save(using=ALIAS, update_fields=["active", "updated_at"])

    logger.info(
        "%s plan %s", "Activated" if active else "Deactivated", code,
        extra={"tenant_id": tenant_id, "plan_code": code},
    )
    return plan


def _lock_plan(*, tenant_id: str, code: str) -> Plan | None:
    return Plan.objects.using(ALIAS).select_for_update().filter(tenant_id=tenant_id, code=code).first()


def _check_plan_fields(
    *,
    code: str,
    name: str,
    amount_minor: int,
    currency: str,
    interval: str,
    interval_count: int,
    trial_days: int,
) -> dict:
    """Return the plan's stored field values; raise ``InvalidPlan`` naming the first bad one."""
    if not isinstance(code, str) or not PLAN_CODE_PATTERN.match(code):
        raise InvalidPlan(
            f"plan code {code!r} is invalid; use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )

    if not isinstance(name, str) or not name.strip():
        raise InvalidPlan(f"plan name {name!r} is empty; give the name customers see on invoices")
    name = name.strip()
    if len(name) > PLAN_NAME_MAX_LENGTH:
        raise InvalidPlan(
            f"plan name {name[:20]!r}... is {len(name)} characters long; the maximum is {PLAN_NAME_MAX_LENGTH}"
        )

    if not is_whole_number(amount_minor):
        raise InvalidPlan(
            f"amount_minor {amount_minor!r} is not a whole number of minor units; "
            "convert a decimal price with billing.money.to_minor_units"
        )
    if amount_minor < 0:
        raise InvalidPlan(f"amount_minor {amount_minor} is negative; a price is zero or more minor units")
    if amount_minor > MAX_UNIT_AMOUNT_MINOR:
        raise InvalidPlan(
            f"amount_minor {amount_minor} exceeds the maximum of {MAX_UNIT_AMOUNT_MINOR} minor units"
        )

    try:
        validate_currency(currency)
    except InvalidMoney as error:
        raise InvalidPlan(str(error)) from None

    if interval not in PlanInterval.values:
        raise InvalidPlan(f"interval {interval!r} is invalid; use one of {', '.join(PlanInterval.values)}")
    maximum = MAX_INTERVAL_COUNT[str(interval)]
    if not is_whole_number(interval_count) or not 1 <= interval_count <= maximum:
        raise InvalidPlan(
            f"interval_count {interval_count!r} is invalid; use a whole number from 1 to {maximum} "
            f"for interval {interval!r}"
        )

    if not is_whole_number(trial_days) or not 0 <= trial_days <= MAX_TRIAL_DAYS:
        raise InvalidPlan(
            f"trial_days {trial_days!r} is invalid; use a whole number of days from 0 to {MAX_TRIAL_DAYS}"
        )

    return {
        "name": name,
        "amount_minor": amount_minor,
        "currency": currency,
        "interval": str(interval),
        "interval_count": interval_count,
        "trial_days": trial_days,
    }
