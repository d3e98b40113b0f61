"""Gateways for fault tests, chosen through the PAYMENTS_GATEWAY setting.

Each wraps the simulated gateway, so charges are still recorded by key.
"""

from django.db import connections

from payments.errors import GatewayError
from payments.gateways.base import GatewayResult, PaymentGateway
from payments.gateways.simulated import SimulatedGateway


class ProcessCrashed(BaseException):
    """Simulates the process dying, so no ``except Exception`` catches it."""


class CrashBeforeChargeGateway(PaymentGateway):
    """Dies after transaction A committed, before the request reaches the gateway."""

    def charge(self, **request) -> GatewayResult:
        raise ProcessCrashed("process killed before calling the gateway")


class CrashAfterChargeGateway(PaymentGateway):
    """Dies after the gateway charged, before transaction B."""

    def charge(self, **request) -> GatewayResult:
        SimulatedGateway().charge(**request)
        raise ProcessCrashed("process killed after the gateway charged")


class TimeoutGateway(PaymentGateway):
    """Charges, then loses the response, as a read timeout would."""

    def charge(self, **request) -> GatewayResult:
        SimulatedGateway().charge(**request)
        raise GatewayError("gateway response timed out after 30 s")


class TransactionProbeGateway(SimulatedGateway):
    """Records whether each charge ran inside a transaction on the payments database."""

    calls: list[bool] = []

    def charge(self, **request) -> GatewayResult:
        TransactionProbeGateway.calls.append(connections["payments"].in_atomic_block)
        return super().charge(**request)


class RacingChargeGateway(SimulatedGateway):
    """Charges, then lets a second call of the same payment resume the attempt and record its outcome first."""

    # Set by each test: whether the second call has run, and the time it charges at.
    raced = False
    now = None

    def charge(self, **request) -> GatewayResult:
        from payments.models import PaymentAttempt
        from payments.services import payment_attempt_charge

        result = super().charge(**request)
        if not RacingChargeGateway.raced:
            RacingChargeGateway.raced = True
            attempt = PaymentAttempt.objects.using("payments").get(idempotency_key=request["idempotency_key"])
            payment_attempt_charge(payment_id=str(attempt.payment_id), now=RacingChargeGateway.now)
        return result


class LongFailureCodeGateway(PaymentGateway):
    """Declines every charge with a failure code longer than the attempt's column."""

    failure_code = "declined_" + "x" * 70

    def charge(self, **request) -> GatewayResult:
        return GatewayResult(succeeded=False, reference="ref_long", failure_code=self.failure_code)
