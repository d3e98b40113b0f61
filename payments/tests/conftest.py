import pytest

from payments.tests.factories import TenantFactory
from payments.tests.faulty_gateways import TransactionProbeGateway


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def payments_settings(settings):
    """Settings with the production retry schedule and a fast ``tok_slow``."""
    settings.PAYMENTS_GATEWAY = "simulated"
    settings.PAYMENTS_RETRY_SCHEDULE_DAYS = [1, 3, 5]
    settings.PAYMENTS_SIMULATED_SLOW_SECONDS = 0.05
    settings.PAYMENTS_PROCESSING_STALE_SECONDS = 600
    return settings


@pytest.fixture
def transaction_probe(settings):
    settings.PAYMENTS_GATEWAY = "payments.tests.faulty_gateways.TransactionProbeGateway"
    TransactionProbeGateway.calls = []
    return TransactionProbeGateway.calls

