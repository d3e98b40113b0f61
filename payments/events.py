"""Events the payments module publishes: its contract with other modules."""

from dataclasses import dataclass

from eventbus.schema import EventType


@dataclass(frozen=True)
class PaymentSucceeded:
    payment_id: str
    invoice_id: str
    customer_id: str
    amount_minor: int
    currency: str
    gateway_reference: str
    attempt_number: int
    succeeded_at: str


@dataclass(frozen=True)
class PaymentFailed:
    """A failed attempt. ``final`` means no retry follows; ``next_attempt_at`` is set
    when ``retryable`` and not ``final``."""

    payment_id: str
    invoice_id: str
    customer_id: str
    amount_minor: int
    currency: str
    failure_code: str
    failure_message: str
    attempt_number: int
    retryable: bool
    final: bool
    failed_at: str
    next_attempt_at: str | None = None


PAYMENT_SUCCEEDED = EventType("payments.payment.succeeded", PaymentSucceeded)
PAYMENT_FAILED = EventType("payments.payment.failed", PaymentFailed)
