"""A gateway that charges no real money, for the embedded setup, demos and tests.

The outcome depends on the payment method's token:

====================================  =========================================================
token                                 outcome
====================================  =========================================================
``tok_success``                       succeeds
``tok_decline``                       hard decline ``card_declined``, not retryable
``tok_insufficient_funds``            decline ``insufficient_funds``, retryable
``tok_processing_error``              gateway error ``processing_error``, retryable
``tok_slow``                          succeeds after ``PAYMENTS_SIMULATED_SLOW_SECONDS`` (default 5)
``tok_insufficient_then_success``     ``insufficient_funds`` (retryable) on the first charge of
                                      the customer with this token, success on every later one
any other token                       hard decline ``invalid_token``, not retryable
====================================  =========================================================

Like a real gateway it is idempotent: each charge is recorded in
``SimulatedCharge`` under its idempotency key, and a repeated key returns the
recorded outcome without charging again.
"""

import logging
import time
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.conf import payments_settings
from payments.errors import GatewayError
from payments.gateways.base import GatewayResult, PaymentGateway
from payments.models import SimulatedCharge

logger = logging.getLogger(__name__)

ALIAS = "payments"

TOKEN_SUCCESS = "tok_success"
TOKEN_DECLINE = "tok_decline"
TOKEN_INSUFFICIENT_FUNDS = "tok_insufficient_funds"
TOKEN_PROCESSING_ERROR = "tok_processing_error"
TOKEN_SLOW = "tok_slow"
TOKEN_INSUFFICIENT_THEN_SUCCESS = "tok_insufficient_then_success"

TEST_TOKENS = (
    TOKEN_SUCCESS,
    TOKEN_DECLINE,
    TOKEN_INSUFFICIENT_FUNDS,
    TOKEN_PROCESSING_ERROR,
    TOKEN_SLOW,
    TOKEN_INSUFFICIENT_THEN_SUCCESS,
)

_DECLINED = GatewayResult(
    succeeded=False,
    reference="",
    failure_code="card_declined",
    failure_message="The card was declined; ask the customer for another payment method.",
    retryable=False,
)
_INSUFFICIENT_FUNDS = GatewayResult(
    succeeded=False,
    reference="",
    failure_code="insufficient_funds",
    failure_message="The account has insufficient funds; the charge may succeed later.",
    retryable=True,
)
_PROCESSING_ERROR = GatewayResult(
    succeeded=False,
    reference="",
    failure_code="processing_error",
    failure_message="The gateway failed to process the charge; retry later.",
    retryable=True,
)


class SimulatedGateway(PaymentGateway):
    name = "simulated"

    def charge(
        self,
        *,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        token: str,
        customer_id: str,
    ) -> GatewayResult:
        request = {"customer_id": customer_id, "token": token, "amount_minor": amount_minor, "currency": currency}
        if token == TOKEN_SLOW:
            # A repeated key returns at once, without the delay.
            recorded = SimulatedCharge.objects.using(ALIAS).filter(idempotency_key=idempotency_key).first()
            if recorded is not None:
                return _replay(recorded, idempotency_key, request)
            time.sleep(payments_settings().simulated_slow_seconds)

        outcome = self._decide(token=token, customer_id=customer_id)
        # Insert without looking the key up first, since most keys are new:
        # the unique index rejects a repeated key, which returns the recorded charge.
        try:
            with transaction.atomic(using=ALIAS):
                charge = SimulatedCharge.objects.using(ALIAS).create(
                    idempotency_key=idempotency_key,
                    reference=f"sim_ch_{uuid.uuid4().hex[:24]}",
                    succeeded=outcome.succeeded,
                    failure_code=outcome.failure_code,
                    failure_message=outcome.failure_message,
                    retryable=outcome.retryable,
                    created_at=timezone.now(),
                    **request,
                )
        except IntegrityError:
            # A repeated key, or a concurrent request with the same key that recorded its charge first.
            recorded = SimulatedCharge.objects.using(ALIAS).get(idempotency_key=idempotency_key)
            return _replay(recorded, idempotency_key, request)

        logger.info(
            "Simulated gateway recorded charge %s: %s",
            charge.reference, "succeeded" if charge.succeeded else charge.failure_code,
            extra={"customer_id": customer_id, "idempotency_key": idempotency_key},
        )
        return _result(charge)

    def _decide(self, *, token: str, customer_id: str) -> GatewayResult:
        if token in (TOKEN_SUCCESS, TOKEN_SLOW):
            return GatewayResult(succeeded=True, reference="")
        if token == TOKEN_DECLINE:
            return _DECLINED
        if token == TOKEN_INSUFFICIENT_FUNDS:
            return _INSUFFICIENT_FUNDS
        if token == TOKEN_PROCESSING_ERROR:
            return _PROCESSING_ERROR
        if token == TOKEN_INSUFFICIENT_THEN_SUCCESS:
            charged_before = (
                SimulatedCharge.objects.using(ALIAS).filter(customer_id=customer_id, token=token).exists()
            )
            return GatewayResult(succeeded=True, reference="") if charged_before else _INSUFFICIENT_FUNDS
        return GatewayResult(
            succeeded=False,
            reference="",
            failure_code="invalid_token",
            failure_message=(
                "The payment method's token is not a test token of the simulated gateway; "
                f"store one of {', '.join(TEST_TOKENS)}."
            ),
            retryable=False,
        )


def _replay(recorded: SimulatedCharge, idempotency_key: str, request: dict) -> GatewayResult:
    """Return the recorded outcome after checking that the repeated request describes the same charge."""
    differing = sorted(name for name in request if getattr(recorded, name) != request[name])
    if differing:
        # A real gateway rejects such a request too: the key names one charge.
        # The message leaves out values, because one of them may be the token.
        raise GatewayError(
            f"idempotency key {idempotency_key!r} was reused with a different "
            f"{', '.join(differing)}; a key must always describe the same charge"
        )
    logger.info(
        "Simulated gateway returned recorded charge %s for a repeated key",
        recorded.reference,
        extra={"customer_id": recorded.customer_id, "idempotency_key": idempotency_key},
    )
    return _result(recorded)


def _result(charge: SimulatedCharge) -> GatewayResult:
    return GatewayResult(
        succeeded=charge.succeeded,
        reference=charge.reference,
        failure_code=charge.failure_code,
        failure_message=charge.failure_message,
        retryable=charge.retryable,
    )
