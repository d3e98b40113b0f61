import pytest
from django.utils import timezone

from billing.tenancy.services import tenant_ensure
from subscriptions.tests.factories import TENANT_ID


@pytest.fixture
def tenant(db):
    """The tenant the factories use, existing in the tenancy tables."""
    return tenant_ensure(tenant_id=TENANT_ID, now=timezone.now())
