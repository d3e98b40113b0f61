"""Errors the payments module raises; each has a stable ``code`` for API clients and logs."""


class PaymentsError(Exception):
    """Root of every error this module raises."""

    code = "payments_error"


class InvalidPaymentMethod(PaymentsError):
    """A payment method cannot be stored as given; the message names the field."""

    code = "invalid_payment_method"


class InvalidCollectionRequest(PaymentsError):
    """A collection request contains a value a payment cannot store; the message names the field."""

    code = "invalid_collection_request"


class PaymentNotFound(PaymentsError):
    code = "payment_not_found"


class GatewayError(PaymentsError):
    """The gateway returned no outcome, so the charge may or may not have happened.

    The attempt stays ``processing``, and ``payments_retry_due`` resumes it
    with the same idempotency key once it is stale.
    """

    code = "gateway_error"
