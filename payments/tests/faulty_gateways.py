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
