import pytest

from notifications import handlers


@pytest.fixture
def contacts(monkeypatch):
    """A customer directory standing in for AR: map a customer id to a factories.Contact."""
    directory = {}
    monkeypatch.setattr(
        handlers,
        "contacts_for_customers",
        lambda customer_ids: {customer_id: directory[customer_id] for customer_id in customer_ids if customer_id in directory},
    )
    return directory
