"""API clients authenticated as a tenant, for the API tests of every module."""

from datetime import UTC, datetime

from rest_framework.test import APIClient

from billing.tenancy.services import api_key_create, tenant_ensure

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def api_client(tenant_id: str = "acme", *, is_staff: bool = False) -> APIClient:
    """Return a client that sends a new API key of ``tenant_id``, creating the tenant if needed."""
    tenant_ensure(tenant_id=tenant_id, now=NOW)
    _, secret = api_key_create(tenant_id=tenant_id, name="test", is_staff=is_staff, now=NOW)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client
