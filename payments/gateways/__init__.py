"""Payment gateway adapters; ``get_gateway`` returns the one ``PAYMENTS_GATEWAY`` names."""

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from payments.conf import payments_settings
from payments.gateways.base import GatewayResult, PaymentGateway

__all__ = ["GatewayResult", "PaymentGateway", "get_gateway"]


def get_gateway() -> PaymentGateway:
    """Return an instance of the configured gateway.

    ``PAYMENTS_GATEWAY`` is ``"simulated"`` or the dotted path of a
    ``PaymentGateway`` subclass. Raises ``ImproperlyConfigured`` for anything else.
    """
    name = payments_settings().gateway
    if name == "simulated":
        from payments.gateways.simulated import SimulatedGateway

        return SimulatedGateway()

    try:
        gateway_class = import_string(name)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"PAYMENTS_GATEWAY={name!r} cannot be imported ({error}); use 'simulated' or the "
            "dotted path of a payments.gateways.base.PaymentGateway subclass"
        ) from error
    if not (isinstance(gateway_class, type) and issubclass(gateway_class, PaymentGateway)):
        raise ImproperlyConfigured(
            f"PAYMENTS_GATEWAY={name!r} is not a subclass of payments.gateways.base.PaymentGateway"
        )
    return gateway_class()
