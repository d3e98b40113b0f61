import pytest

from notifications import handlers


@pytest.fixture
def contacts(monkeypatch):
    """A customer directory standing in for AR: map a customer id to a factories.Contact."""
    directory = {}
    monkeypatch.setattr(handlers, "contact_for_customer", directory.get)
    return directory
