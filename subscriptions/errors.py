"""Errors of the subscriptions module.

Every error has a stable ``code`` for API responses and logs, and a message
that names the rejected value and the fix. A service raises them
before it writes anything, or inside its transaction so nothing commits.
"""


class SubscriptionsError(Exception):
    """Root of every error the subscriptions module raises."""

    code = "subscriptions_error"


class UnknownTenant(SubscriptionsError):
    code = "unknown_tenant"


class InvalidTimestamp(SubscriptionsError):
    """A ``now`` or ``as_of`` argument is not an aware datetime or a plain date."""

    code = "invalid_timestamp"


class InvalidPlan(SubscriptionsError):
    """A plan field has a value a plan cannot hold."""

    code = "invalid_plan"


class PlanNotFound(SubscriptionsError):
    code = "plan_not_found"


class PlanInactive(SubscriptionsError):
    """The plan no longer takes new subscriptions or plan changes."""

    code = "plan_inactive"


class PlanInUse(SubscriptionsError):
    """A change to the plan would alter the billing schedule of its subscriptions."""

    code = "plan_in_use"


class InvalidSubscription(SubscriptionsError):
    """A subscription field has a value a subscription cannot hold."""

    code = "invalid_subscription"


class SubscriptionNotFound(SubscriptionsError):
    code = "subscription_not_found"


class DuplicateExternalId(SubscriptionsError):
    """Another subscription of the tenant already has this import id."""

    code = "duplicate_external_id"


class SubscriptionStateConflict(SubscriptionsError):
    """The subscription's status does not allow the requested change."""

    code = "subscription_state_conflict"


class InvalidBillRun(SubscriptionsError):
    code = "invalid_bill_run"
