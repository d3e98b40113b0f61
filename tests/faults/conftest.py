import pytest

from eventbus.backends import get_bus, reset_bus
from tests.eventbus.conftest import FAST_BUS
from tests.support import NatsServer


@pytest.fixture
def nats_server():
    """A throwaway nats-server that a test may stop, wipe and start, never the shared one."""
    server = NatsServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def server_bus(settings, nats_server):
    """The NATS backend on the throwaway server of ``nats_server``."""
    settings.EVENTBUS = {**settings.EVENTBUS, **FAST_BUS, "BACKEND": "nats", "NATS_URLS": [nats_server.url]}
    reset_bus()
    yield get_bus()
    reset_bus()
