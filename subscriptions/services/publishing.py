"""Build and append the events the subscriptions services publish."""

from datetime import UTC, date, datetime, time

from eventbus.envelope import format_timestamp
from eventbus.outbox import NewEvent, outbox_append
from subscriptions import events
from subscriptions.models import BillingPeriod, Subscription
from subscriptions.services.common import ALIAS

AGGREGATE_TYPE = "subscription"


def publish_subscription_created(subscription: Subscription, *, now: datetime) -> None:
    plan = subscription.plan
    _append(
        subscription,
        events.SUBSCRIPTION_CREATED,
        events.SubscriptionCreated(
            subscription_id=str(subscription.id),
            customer_id=subscription.customer_id,
            plan_code=plan.code,
            plan_name=plan.name,
            status=subscription.status,
            quantity=subscription.quantity,
            unit_amount_minor=subscription.unit_amount_minor,
            currency=plan.currency,
            # The start date at midnight UTC: service starts on that day.
            started_at=format_timestamp(datetime.combine(subscription.started_on, time.min, tzinfo=UTC)),
            trial_end_date=_iso_or_none(subscription.trial_end_date),
        ),
        now,
    )


def publish_subscription_canceled(subscription: Subscription, *, now: datetime) -> None:
    _append(
        subscription,
        events.SUBSCRIPTION_CANCELED,
        events.SubscriptionCanceled(
            subscription_id=str(subscription.id),
            customer_id=subscription.customer_id,
            plan_code=subscription.plan.code,
            plan_name=subscription.plan.name,
            canceled_at=format_timestamp(subscription.canceled_at),
            ends_on=subscription.ends_on.isoformat(),
            at_period_end=subscription.cancel_at_period_end,
        ),
        now,
    )


def publish_plan_changed(
    subscription: Subscription, *, old_plan_code: str, new_plan_code: str, effective_on: date, now: datetime
) -> None:
    _append(
        subscription,
        events.SUBSCRIPTION_PLAN_CHANGED,
        events.SubscriptionPlanChanged(
            subscription_id=str(subscription.id),
            customer_id=subscription.customer_id,
            old_plan_code=old_plan_code,
            new_plan_code=new_plan_code,
            effective_on=effective_on.isoformat(),
        ),
        now,
    )


def invoice_requested_event(
    subscription: Subscription, billing_period: BillingPeriod, *, aggregate_version: int
) -> NewEvent:
    """Return the ``subscriptions.invoice.requested`` event for one billed period."""
    return NewEvent(
        event_type=events.INVOICE_REQUESTED,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=str(subscription.id),
        aggregate_version=aggregate_version,
        tenant_id=subscription.tenant_id,
        payload=events.InvoiceRequested(
            billing_period_id=str(billing_period.id),
            subscription_id=str(subscription.id),
            customer_id=subscription.customer_id,
            plan_code=billing_period.plan_code,
            plan_name=billing_period.plan_name,
            period_start=billing_period.period_start.isoformat(),
            period_end=billing_period.period_end.isoformat(),
            quantity=billing_period.quantity,
            unit_amount_minor=billing_period.unit_amount_minor,
            amount_minor=billing_period.amount_minor,
            currency=billing_period.currency,
            description=billing_period.description,
            bill_run_id=str(billing_period.bill_run_id),
        ),
    )


def _append(subscription: Subscription, event_type, payload, now: datetime) -> None:
    outbox_append(
        module=ALIAS,
        event_type=event_type,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=str(subscription.id),
        aggregate_version=subscription.version,
        tenant_id=subscription.tenant_id,
        payload=payload,
        occurred_at=now,
    )


def _iso_or_none(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None
