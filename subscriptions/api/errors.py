"""HTTP statuses of the subscriptions module's errors."""

from billing.api.errors import register_error_statuses
from subscriptions.errors import (
    DuplicateExternalId,
    PlanInactive,
    PlanInUse,
    PlanNotFound,
    SubscriptionNotFound,
    SubscriptionsError,
    SubscriptionStateConflict,
)

ERROR_STATUSES = {
    SubscriptionsError: 400,
    # A plan code or subscription named in a request body that does not exist is bad input.
    PlanNotFound: 400,
    SubscriptionNotFound: 404,
    PlanInactive: 409,
    PlanInUse: 409,
    DuplicateExternalId: 409,
    SubscriptionStateConflict: 409,
}
register_error_statuses(ERROR_STATUSES)
