import pytest

from eventbus.backends import reset_bus


@pytest.fixture(autouse=True)
def inprocess_bus(settings):
    """Deliver events inside the test process, as the embedded setup does."""
    settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
    reset_bus()
    yield
    reset_bus()
