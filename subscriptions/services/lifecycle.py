"""Create, import, cancel and change the plan of subscriptions."""

import logging
from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction

from subscriptions.errors import (
    DuplicateExternalId,
    InvalidSubscription,
    SubscriptionStateConflict,
)
from subscriptions.models import Plan, Subscription, SubscriptionStatus
from subscriptions.periods import period_on
from subscriptions.schedule import next_period_start
from subscriptions.services.common import (
    ALIAS,
    check_customer_id,
    check_external_id,
    check_price_override,
    check_quantity,
    get_active_plan,
    last_billed_end,
    lock_subscription,
    require_aware,
    require_date,
    require_tenant,
)
from subscriptions.services.publishing import (
    publish_plan_changed,
    publish_subscription_canceled,
    publish_subscription_created,
)

logger = logging.getLogger(__name__)


def subscription_create(
    *,
    tenant_id: str,
    customer_id: str,
    plan_code: str,
    start_date: date,
    quantity: int = 1,
    price_override_minor: int | None = None,
    external_id: str | None = None,
    now: datetime,
) -> Subscription:
    """Subscribe a customer to a plan from ``start_date`` and publish ``subscription.created``.

    A plan with trial days starts with a trial, and the first billed period
    starts when the trial ends; without one it starts on ``start_date``.
    ``start_date`` may be in the past, and the next bill run catches up.

    Raises ``InvalidSubscription``, ``UnknownTenant``, ``PlanNotFound``,
    ``PlanInactive`` and ``DuplicateExternalId``.
    """
    require_aware(now)
    require_date(start_date, "start_date", InvalidSubscription)
    customer_id = check_customer_id(customer_id)
    check_quantity(quantity)
    check_price_override(price_override_minor)
    external_id = check_external_id(external_id)
    require_tenant(tenant_id)

    with transaction.atomic(using=ALIAS):
        plan = get_active_plan(tenant_id=tenant_id, plan_code=plan_code)
        if external_id is not None:
            _reject_taken_external_id(tenant_id=tenant_id, external_id=external_id)
        try:
            subscription = _insert_subscription(
                tenant_id=tenant_id,
                customer_id=customer_id,
                plan=plan,
                start_date=start_date,
                quantity=quantity,
                price_override_minor=price_override_minor,
                external_id=external_id,
                now=now,
            )
        except IntegrityError:
            # A concurrent call took the external_id since the check above.
            if external_id is not None:
                _reject_taken_external_id(tenant_id=tenant_id, external_id=external_id)
            raise
    return subscription


def subscription_upsert_imported(
    *,
    tenant_id: str,
    external_id: str,
    customer_id: str,
    plan_code: str,
    start_date: date,
    quantity: int = 1,
    price_override_minor: int | None = None,
    now: datetime,
) -> tuple[Subscription, bool]:
    """Create the subscription imported as ``external_id``, or update it; return it and whether it was created.

    Importing the same row again changes nothing. A changed row updates the
    subscription without touching billed periods: quantity and price apply
    from the next billed period, and a new plan takes effect at the next
    period, as with ``subscription_change_plan``. Once a period is billed, the
    customer and start date cannot change. Before that, any field can.

    Raises the errors of ``subscription_create``, and ``SubscriptionStateConflict``
    for a change to a canceled subscription or a billed customer or start date.
    """
    require_aware(now)
    require_date(start_date, "start_date", InvalidSubscription)
    if external_id is None:
        raise InvalidSubscription("external_id is missing; an imported subscription needs the source system's id")
    external_id = check_external_id(external_id)
    customer_id = check_customer_id(customer_id)
    check_quantity(quantity)
    check_price_override(price_override_minor)
    require_tenant(tenant_id)

    with transaction.atomic(using=ALIAS):
        subscription = _lock_imported(tenant_id=tenant_id, external_id=external_id)
        if subscription is None:
            plan = get_active_plan(tenant_id=tenant_id, plan_code=plan_code)
            try:
                with transaction.atomic(using=ALIAS):
                    created = _insert_subscription(
                        tenant_id=tenant_id,
                        customer_id=customer_id,
                        plan=plan,
                        start_date=start_date,
                        quantity=quantity,
                        price_override_minor=price_override_minor,
                        external_id=external_id,
                        now=now,
                    )
                return created, True
            except IntegrityError:
                # A concurrent import inserted the same row since the lookup.
                subscription = _lock_imported(tenant_id=tenant_id, external_id=external_id)
                if subscription is None:
                    raise

        _update_imported(
            subscription,
            customer_id=customer_id,
            plan_code=plan_code,
            start_date=start_date,
            quantity=quantity,
            price_override_minor=price_override_minor,
            now=now,
        )
    return subscription, False


def subscription_cancel(*, subscription_id: str, at_period_end: bool, now: datetime) -> Subscription:
    """Cancel a subscription now or at the end of its current period, and publish ``.canceled``.

    ``at_period_end`` sets ``ends_on`` to the end of the current period, or
    of the last billed period if later. The status stays until a bill run as
    of ``ends_on`` or later marks it canceled. Otherwise the subscription is
    canceled at once and service ends today: no period starting today or
    later is billed, nor is any earlier period that was not billed yet.

    NOTE: an immediate cancel neither prorates nor credits the unused part of
    a period billed in advance; a credit is granted in AR by hand.

    Raises ``SubscriptionNotFound`` and ``SubscriptionStateConflict``.
    """
    require_aware(now)
    if not isinstance(at_period_end, bool):
        raise InvalidSubscription(f"at_period_end {at_period_end!r} is not a boolean; pass True or False")
    today = now.date()

    with transaction.atomic(using=ALIAS):
        subscription = lock_subscription(subscription_id=subscription_id)
        if subscription.status == SubscriptionStatus.CANCELED:
            raise SubscriptionStateConflict(
                f"subscription {subscription.id} is already canceled; its service ended on "
                f"{subscription.ends_on}"
            )

        if at_period_end:
            if subscription.cancel_at_period_end:
                raise SubscriptionStateConflict(
                    f"subscription {subscription.id} is already set to cancel on {subscription.ends_on}; "
                    "cancel with at_period_end=False to end it now"
                )
            subscription.ends_on = next_period_start(subscription, today, last_billed_end(subscription))
            subscription.cancel_at_period_end = True
        else:
            if subscription.ends_on is None or subscription.ends_on > today:
                subscription.ends_on = today
            subscription.cancel_at_period_end = False
            subscription.status = SubscriptionStatus.CANCELED

        # A plan change from ends_on onwards would never bill.
        if (
            subscription.pending_plan_id is not None
            and subscription.pending_plan_effective_on >= subscription.ends_on
        ):
            subscription.pending_plan = None
            subscription.pending_plan_effective_on = None

        subscription.canceled_at = now
        subscription.version += 1
        subscription.updated_at = now
        subscription.save(using=ALIAS)
        publish_subscription_canceled(subscription, now=now)

    logger.info(
        "Canceled subscription %s, service ends on %s", subscription.id, subscription.ends_on,
        extra={"tenant_id": subscription.tenant_id, "subscription_id": str(subscription.id)},
    )
    return subscription


def subscription_change_plan(*, subscription_id: str, plan_code: str, now: datetime) -> Subscription:
    """Move a subscription to another plan from its next period and publish ``.plan_changed``.

    The next period is the one after the current period, or after the last
    billed period if later, so billed periods never change. The new plan
    must bill in the same currency. Its price replaces any price override,
    which was negotiated for the old plan. Choosing the current plan again
    withdraws a pending change. The event's ``old_plan_code`` is the plan
    the next period would have had without this change.

    Raises ``SubscriptionNotFound``, ``PlanNotFound``, ``PlanInactive``,
    ``InvalidSubscription`` and ``SubscriptionStateConflict``.
    """
    require_aware(now)
    today = now.date()

    with transaction.atomic(using=ALIAS):
        subscription = lock_subscription(subscription_id=subscription_id)
        _require_changeable(subscription, today)
        plan = get_active_plan(tenant_id=subscription.tenant_id, plan_code=plan_code)
        effective_on = _schedule_plan_change(subscription, plan, today=today, now=now)

    logger.info(
        "Changed subscription %s to plan %s from %s", subscription.id, plan.code, effective_on,
        extra={"tenant_id": subscription.tenant_id, "subscription_id": str(subscription.id)},
    )
    return subscription


def _require_changeable(subscription: Subscription, today: date) -> None:
    """Raise ``SubscriptionStateConflict`` unless a plan change could still bill."""
    if subscription.status == SubscriptionStatus.CANCELED:
        raise SubscriptionStateConflict(
            f"subscription {subscription.id} is canceled; subscribe the customer again instead"
        )
    if subscription.cancel_at_period_end:
        raise SubscriptionStateConflict(
            f"subscription {subscription.id} ends on {subscription.ends_on}, so a plan change from its "
            "next period would never bill; subscribe the customer to the new plan instead"
        )
    pending_effective_on = subscription.pending_plan_effective_on
    if pending_effective_on is not None and pending_effective_on <= today:
        # The next bill run swaps the plans; a second change before that
        # would have to remember both.
        raise SubscriptionStateConflict(
            f"subscription {subscription.id} moved to plan {subscription.pending_plan.code!r} on "
            f"{pending_effective_on}, but no bill run has billed that period yet; run the bill run, "
            "then change the plan"
        )


def _schedule_plan_change(subscription: Subscription, plan: Plan, *, today: date, now: datetime) -> date:
    """Set ``plan`` as the pending plan from the next period, publish, and return its effective date."""
    if plan.currency != subscription.plan.currency:
        raise InvalidSubscription(
            f"plan {plan.code!r} bills in {plan.currency} but subscription {subscription.id} bills in "
            f"{subscription.plan.currency}; choose a plan in {subscription.plan.currency}"
        )

    if plan.id == subscription.plan_id:
        if subscription.pending_plan_id is None:
            raise SubscriptionStateConflict(
                f"subscription {subscription.id} is already on plan {plan.code!r}"
            )
        old_plan_code = subscription.pending_plan.code
        effective_on = subscription.pending_plan_effective_on
        subscription.pending_plan = None
        subscription.pending_plan_effective_on = None
    elif plan.id == subscription.pending_plan_id:
        raise SubscriptionStateConflict(
            f"subscription {subscription.id} already moves to plan {plan.code!r} on "
            f"{subscription.pending_plan_effective_on}"
        )
    else:
        old_plan_code = (subscription.pending_plan or subscription.plan).code
        effective_on = next_period_start(subscription, today, last_billed_end(subscription))
        subscription.pending_plan = plan
        subscription.pending_plan_effective_on = effective_on

    subscription.version += 1
    subscription.updated_at = now
    subscription.save(using=ALIAS)
    publish_plan_changed(
        subscription,
        old_plan_code=old_plan_code,
        new_plan_code=plan.code,
        effective_on=effective_on,
        now=now,
    )
    return effective_on


def _insert_subscription(
    *,
    tenant_id: str,
    customer_id: str,
    plan: Plan,
    start_date: date,
    quantity: int,
    price_override_minor: int | None,
    external_id: str | None,
    now: datetime,
) -> Subscription:
    """Insert a subscription and append its ``created`` event; call inside a transaction.

    Raises ``IntegrityError`` when the external_id is taken.
    """
    subscription = Subscription(
        tenant_id=tenant_id,
        external_id=external_id,
        customer_id=customer_id,
        plan=plan,
        quantity=quantity,
        price_override_minor=price_override_minor,
        version=1,
        created_at=now,
        updated_at=now,
    )
    _set_start(subscription, start_date, today=now.date())
    # A savepoint, so a unique violation on external_id leaves the caller's
    # transaction usable for its own handling.
    with transaction.atomic(using=ALIAS):
        subscription.save(using=ALIAS, force_insert=True)
    publish_subscription_created(subscription, now=now)

    logger.info(
        "Created subscription %s on plan %s", subscription.id, plan.code,
        extra={"tenant_id": tenant_id, "subscription_id": str(subscription.id)},
    )
    return subscription


def _set_start(subscription: Subscription, start_date: date, *, today: date) -> None:
    """Set the start, trial, anchor, status and first current period from the plan and ``start_date``."""
    plan = subscription.plan
    subscription.started_on = start_date
    if plan.trial_days:
        subscription.trial_end_date = start_date + timedelta(days=plan.trial_days)
        subscription.billing_anchor_date = subscription.trial_end_date
        subscription.current_period_start = start_date
        subscription.current_period_end = subscription.trial_end_date
    else:
        subscription.trial_end_date = None
        subscription.billing_anchor_date = start_date
        first = period_on(start_date, plan.interval, plan.interval_count, start_date)
        subscription.current_period_start = first.start
        subscription.current_period_end = first.end

    in_trial = subscription.trial_end_date is not None and today < subscription.trial_end_date
    subscription.status = SubscriptionStatus.TRIALING if in_trial else SubscriptionStatus.ACTIVE


def _lock_imported(*, tenant_id: str, external_id: str) -> Subscription | None:
    return (
        Subscription.objects.using(ALIAS)
        .select_for_update(of=("self",))
        .select_related("plan", "pending_plan")
        .filter(tenant_id=tenant_id, external_id=external_id)
        .first()
    )


def _reject_taken_external_id(*, tenant_id: str, external_id: str) -> None:
    taken_by = (
        Subscription.objects.using(ALIAS)
        .filter(tenant_id=tenant_id, external_id=external_id)
        .values_list("id", flat=True)
        .first()
    )
    if taken_by is not None:
        raise DuplicateExternalId(
            f"external_id {external_id!r} is already used by subscription {taken_by} in tenant "
            f"{tenant_id!r}; update that subscription instead of creating another"
        )


def _update_imported(
    subscription: Subscription,
    *,
    customer_id: str,
    plan_code: str,
    start_date: date,
    quantity: int,
    price_override_minor: int | None,
    now: datetime,
) -> None:
    """Apply an imported row's changes to ``subscription``; change nothing when the row is the same."""
    # The plan the next period bills on: a pending change counts as the imported plan.
    upcoming_plan = subscription.pending_plan or subscription.plan
    differences = [
        name
        for name, old, new in (
            ("customer_id", subscription.customer_id, customer_id),
            ("start_date", subscription.started_on, start_date),
            ("plan_code", upcoming_plan.code, plan_code),
            ("quantity", subscription.quantity, quantity),
            ("price_override_minor", subscription.price_override_minor, price_override_minor),
        )
        if old != new
    ]
    if not differences:
        return

    if subscription.status == SubscriptionStatus.CANCELED:
        raise SubscriptionStateConflict(
            f"imported subscription {subscription.external_id!r} ({subscription.id}) is canceled, so "
            f"its {differences[0]} cannot change; import the row under a new external_id"
        )

    billed_through = last_billed_end(subscription)
    if billed_through is None:
        _update_unbilled(
            subscription,
            customer_id=customer_id,
            plan_code=plan_code,
            start_date=start_date,
            quantity=quantity,
            price_override_minor=price_override_minor,
            now=now,
        )
        return

    for name, old, new in (
        ("customer_id", subscription.customer_id, customer_id),
        ("start date", subscription.started_on, start_date),
    ):
        if old != new:
            raise SubscriptionStateConflict(
                f"imported subscription {subscription.external_id!r} ({subscription.id}) has billed "
                f"periods, so its {name} cannot change from {old} to {new}; cancel it and import the "
                "row under a new external_id"
            )

    subscription.quantity = quantity
    subscription.price_override_minor = price_override_minor
    if plan_code != upcoming_plan.code:
        _require_changeable(subscription, now.date())
        plan = get_active_plan(tenant_id=subscription.tenant_id, plan_code=plan_code)
        # Saves, bumps the version and publishes plan_changed.
        _schedule_plan_change(subscription, plan, today=now.date(), now=now)
    else:
        subscription.version += 1
        subscription.updated_at = now
        subscription.save(using=ALIAS)
    logger.info(
        "Updated imported subscription %s: %s", subscription.id, ", ".join(differences),
        extra={"tenant_id": subscription.tenant_id, "subscription_id": str(subscription.id)},
    )


def _update_unbilled(
    subscription: Subscription,
    *,
    customer_id: str,
    plan_code: str,
    start_date: date,
    quantity: int,
    price_override_minor: int | None,
    now: datetime,
) -> None:
    """Rewrite an imported subscription that has no billed period yet, as if first imported this way."""
    old_plan_code = subscription.plan.code
    if plan_code != old_plan_code:
        plan = get_active_plan(tenant_id=subscription.tenant_id, plan_code=plan_code)
        if plan.currency != subscription.plan.currency:
            raise InvalidSubscription(
                f"plan {plan.code!r} bills in {plan.currency} but subscription {subscription.id} "
                f"bills in {subscription.plan.currency}; choose a plan in {subscription.plan.currency}"
            )
        subscription.plan = plan
    subscription.pending_plan = None
    subscription.pending_plan_effective_on = None
    subscription.customer_id = customer_id
    subscription.quantity = quantity
    subscription.price_override_minor = price_override_minor
    _set_start(subscription, start_date, today=now.date())
    if subscription.ends_on is not None and subscription.cancel_at_period_end:
        # The period end it was canceled at moved with the new start.
        subscription.ends_on = next_period_start(subscription, now.date(), None)

    subscription.version += 1
    subscription.updated_at = now
    subscription.save(using=ALIAS)
    if plan_code != old_plan_code:
        publish_plan_changed(
            subscription,
            old_plan_code=old_plan_code,
            new_plan_code=plan_code,
            effective_on=subscription.billing_anchor_date,
            now=now,
        )
    logger.info(
        "Updated imported subscription %s before its first bill", subscription.id,
        extra={"tenant_id": subscription.tenant_id, "subscription_id": str(subscription.id)},
    )
