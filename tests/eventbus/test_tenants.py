"""The consumer's tenant check: a per-process cache of tenant ids that exist."""

import pytest
from django.utils import timezone

from billing.tenancy.services import tenant_ensure
from eventbus.tenants import KnownTenants, known_tenants, tenant_is_known


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lookup:
    """A tenant lookup over an in-memory set that counts its calls."""

    def __init__(self, *tenant_ids: str):
        self.tenant_ids = set(tenant_ids)
        self.calls: list[str] = []

    def __call__(self, tenant_id: str) -> bool:
        self.calls.append(tenant_id)
        return tenant_id in self.tenant_ids


class TestKnownTenants:
    def test_known_tenant_is_looked_up_once(self):
        lookup = Lookup("acme")
        tenants = KnownTenants(lookup, clock=FakeClock())

        assert tenants.contains("acme")
        assert tenants.contains("acme")
        assert lookup.calls == ["acme"]

    def test_unknown_tenant_is_looked_up_every_time(self):
        lookup = Lookup()
        tenants = KnownTenants(lookup, clock=FakeClock())

        assert not tenants.contains("ghost")
        assert not tenants.contains("ghost")
        assert lookup.calls == ["ghost", "ghost"]

    def test_tenant_created_later_is_accepted(self):
        lookup = Lookup("acme")
        tenants = KnownTenants(lookup, clock=FakeClock())
        assert tenants.contains("acme")
        assert not tenants.contains("globex")

        lookup.tenant_ids.add("globex")

        assert tenants.contains("globex")

    def test_entry_expires_after_ttl(self):
        clock = FakeClock()
        lookup = Lookup("acme")
        tenants = KnownTenants(lookup, ttl_seconds=60, clock=clock)
        assert tenants.contains("acme")

        clock.now += 59
        assert tenants.contains("acme")
        assert lookup.calls == ["acme"]

        clock.now += 2
        lookup.tenant_ids.clear()
        assert not tenants.contains("acme")
        assert lookup.calls == ["acme", "acme"]

    def test_least_recently_seen_id_is_dropped(self):
        lookup = Lookup("a", "b", "c")
        tenants = KnownTenants(lookup, max_ids=2, clock=FakeClock())
        for tenant_id in ("a", "b", "a", "c"):
            assert tenants.contains(tenant_id)

        assert tenants.contains("a")
        assert tenants.contains("b")

        assert lookup.calls == ["a", "b", "c", "b"]

    def test_lookup_error_propagates(self):
        def failing(tenant_id: str) -> bool:
            raise ConnectionError("database unavailable")

        tenants = KnownTenants(failing, clock=FakeClock())

        with pytest.raises(ConnectionError):
            tenants.contains("acme")


@pytest.mark.django_db(databases="__all__")
class TestRegisteredLookup:
    def test_tenancy_registers_the_database_lookup(self):
        assert known_tenants() is not None
        assert not tenant_is_known("h-input-ghost")

        tenant_ensure(tenant_id="h-input-ghost", now=timezone.now())

        assert tenant_is_known("h-input-ghost")
