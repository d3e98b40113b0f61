"""The interface every payment gateway adapter implements."""

import abc
from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayResult:
    """The gateway's definitive outcome of one charge request.

    ``reference`` is the gateway's id for the charge, declined ones included.
    ``retryable`` is true when charging again later may succeed (insufficient
    funds, a gateway error) and false for a hard decline.
    """

    succeeded: bool
    reference: str
    failure_code: str = ""
    failure_message: str = ""
    retryable: bool = False


class PaymentGateway(abc.ABC):
    """A payment gateway adapter.

    ``charge`` must be idempotent on ``idempotency_key``: a repeated key returns
    the outcome recorded for the first request and never charges again. An
    adapter that cannot learn the outcome (a timeout, a connection error, a
    request with this key still in flight) raises ``payments.errors.GatewayError``
    instead of returning a failure, because the charge may have gone through.
    """

    name: str = ""

    @abc.abstractmethod
    def charge(
        self,
        *,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        token: str,
        customer_id: str,
    ) -> GatewayResult:
        """Charge ``amount_minor`` of ``currency`` to the payment method ``token``."""
