"""A subscription's billing schedule: which plan and anchor govern a period, and which
periods a bill run owes. Pure functions over model instances; nothing here writes.
"""

from dataclasses import dataclass
from datetime import date

from subscriptions.models import Plan, Subscription, SubscriptionStatus
from subscriptions.periods import Period, period_on


class SkipReason:
    """Reasons a bill run billed nothing for a subscription, the keys of ``BillRunSummary.skipped``."""

    # Canceled between the run listing it and locking it.
    CANCELED = "canceled"
    # Its service ended: the next period, due by as_of, starts on or after ends_on.
    ENDED = "ended"
    TRIALING = "trialing"
    # Its start date is after as_of.
    NOT_STARTED = "not_started"
    # Every period that started by as_of is billed already.
    NOT_DUE = "not_due"


@dataclass(frozen=True)
class Terms:
    """The plan and anchor that govern a period, and whether they come from the pending change."""

    plan: Plan
    anchor: date
    from_pending_change: bool


@dataclass(frozen=True)
class DuePeriod:
    """A period a bill run owes, priced with the terms in force on its start date."""

    period: Period
    plan: Plan
    quantity: int
    unit_amount_minor: int
    from_pending_change: bool

    @property
    def amount_minor(self) -> int:
        return self.quantity * self.unit_amount_minor


def changes_schedule(old: Plan, new: Plan) -> bool:
    """Return whether moving from ``old`` to ``new`` changes the period length."""
    return (old.interval, old.interval_count) != (new.interval, new.interval_count)


def terms_on(subscription: Subscription, day: date) -> Terms:
    """Return the plan and anchor that govern the period containing ``day``.

    A pending plan change governs from its effective date. When it changes
    the period length, its periods count from the effective date, because the
    old anchor's multiples do not line up with the new interval. Otherwise the
    anchor stays, so an anchor on the 31st keeps billing on month ends.
    """
    pending = subscription.pending_plan
    if pending is not None and day >= subscription.pending_plan_effective_on:
        if changes_schedule(subscription.plan, pending):
            anchor = subscription.pending_plan_effective_on
        else:
            anchor = subscription.billing_anchor_date
        return Terms(plan=pending, anchor=anchor, from_pending_change=True)
    return Terms(plan=subscription.plan, anchor=subscription.billing_anchor_date, from_pending_change=False)


def next_period_start(subscription: Subscription, day: date, billed_through: date | None) -> date:
    """Return the start of the first period after the one containing ``day`` and after every billed one.

    Before the anchor (during a trial, or before the start date) the current
    period runs from the start date to the anchor, so the result is the
    anchor: the first period that would be billed.
    """
    if day < subscription.billing_anchor_date:
        end = subscription.billing_anchor_date
    else:
        terms = terms_on(subscription, day)
        end = period_on(terms.anchor, terms.plan.interval, terms.plan.interval_count, day).end
    if billed_through is not None and billed_through > end:
        return billed_through
    return end


def due_periods(subscription: Subscription, billed_through: date | None, as_of: date) -> list[DuePeriod]:
    """Return every unbilled period that starts on or before ``as_of`` and before ``ends_on``.

    ``billed_through`` is the end of the last billed period. Periods are
    consecutive from there (or from the anchor), so missed periods are caught
    up in order. A period starting on or after the pending plan change's
    effective date is priced with the new plan, whose own price replaces the
    subscription's price override.
    """
    if subscription.status == SubscriptionStatus.CANCELED:
        return []

    due = []
    start = billed_through or subscription.billing_anchor_date
    while start <= as_of:
        if subscription.ends_on is not None and start >= subscription.ends_on:
            break
        terms = terms_on(subscription, start)
        end = period_on(terms.anchor, terms.plan.interval, terms.plan.interval_count, start).end
        if terms.from_pending_change:
            unit_amount_minor = terms.plan.amount_minor
        else:
            unit_amount_minor = subscription.unit_amount_minor
        due.append(
            DuePeriod(
                period=Period(start=start, end=end),
                plan=terms.plan,
                quantity=subscription.quantity,
                unit_amount_minor=unit_amount_minor,
                from_pending_change=terms.from_pending_change,
            )
        )
        start = end
    return due


def skip_reason(subscription: Subscription, billed_through: date | None, as_of: date) -> str:
    """Return why ``due_periods`` found nothing to bill on ``as_of``."""
    next_start = billed_through or subscription.billing_anchor_date
    if subscription.status == SubscriptionStatus.CANCELED:
        return SkipReason.CANCELED
    if next_start <= as_of:
        # A period is due but was not billed, so ends_on stopped it.
        return SkipReason.ENDED
    if subscription.trial_end_date is not None and as_of < subscription.trial_end_date:
        return SkipReason.TRIALING
    if as_of < subscription.started_on:
        return SkipReason.NOT_STARTED
    return SkipReason.NOT_DUE


def period_description(plan_name: str, period: Period) -> str:
    """Return the invoice line text for a period: 'Pro plan, 2026-01-31 to 2026-02-28'.

    The end date is exclusive, as in every period of this module.
    """
    label = plan_name if plan_name.lower().endswith("plan") else f"{plan_name} plan"
    return f"{label}, {period.start.isoformat()} to {period.end.isoformat()}"
