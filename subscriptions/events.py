"""Events the subscriptions module publishes: its contract with other modules.

Dates are ISO 8601 strings ("2026-01-31"), timestamps RFC 3339 in UTC, money
integer minor units with an ISO 4217 currency.
"""

from dataclasses import dataclass

from eventbus.schema import EventType


@dataclass(frozen=True)
class InvoiceRequested:
    """One billing period of one subscription to invoice, billed in advance.

    ``billing_period_id`` is unique per period; AR creates at most one invoice per id.
    """

    billing_period_id: str
    subscription_id: str
    customer_id: str
    plan_code: str
    plan_name: str
    period_start: str
    period_end: str
    quantity: int
    unit_amount_minor: int
    amount_minor: int
    currency: str
    description: str
    bill_run_id: str | None = None


@dataclass(frozen=True)
class SubscriptionCreated:
    subscription_id: str
    customer_id: str
    plan_code: str
    plan_name: str
    status: str
    quantity: int
    unit_amount_minor: int
    currency: str
    started_at: str
    trial_end_date: str | None = None


@dataclass(frozen=True)
class SubscriptionCanceled:
    subscription_id: str
    customer_id: str
    plan_code: str
    plan_name: str
    canceled_at: str
    # The date service ends: today for an immediate cancel, else the period end.
    ends_on: str
    at_period_end: bool


@dataclass(frozen=True)
class SubscriptionPlanChanged:
    subscription_id: str
    customer_id: str
    old_plan_code: str
    new_plan_code: str
    # The first period billed on the new plan starts on this date.
    effective_on: str


INVOICE_REQUESTED = EventType("subscriptions.invoice.requested", InvoiceRequested)
SUBSCRIPTION_CREATED = EventType("subscriptions.subscription.created", SubscriptionCreated)
SUBSCRIPTION_CANCELED = EventType("subscriptions.subscription.canceled", SubscriptionCanceled)
SUBSCRIPTION_PLAN_CHANGED = EventType("subscriptions.subscription.plan_changed", SubscriptionPlanChanged)
