"""Write operations of the payments module; each is keyword-only and runs in its own transactions."""

from payments.services.charges import payment_attempt_charge, payment_attempt_charge_many
from payments.services.payment_methods import payment_method_upsert, payment_method_validate
from payments.services.payments import (
    CollectionRequest,
    collection_request_check,
    payment_create,
    payment_create_many,
)
from payments.services.retries import RetrySummary, payments_retry_due

__all__ = [
    "CollectionRequest",
    "RetrySummary",
    "collection_request_check",
    "payment_attempt_charge",
    "payment_attempt_charge_many",
    "payment_create",
    "payment_create_many",
    "payment_method_upsert",
    "payment_method_validate",
    "payments_retry_due",
]
