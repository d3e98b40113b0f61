"""The consumer's check that an event's tenant exists, with the known ids cached per process.

The bus imports no domain code, so the project registers the lookup at
start-up (``billing.tenancy`` does, in its ``AppConfig.ready``). Until one
is registered every tenant counts as known.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# How long a tenant id found once is trusted without another query. No code
# in the platform deletes a tenant, so this only bounds how long a tenant
# removed by hand in the database would still be accepted.
KNOWN_TENANT_TTL_SECONDS = 300.0
# Distinct tenant ids kept per process; the least recently seen is dropped first.
KNOWN_TENANT_MAX_IDS = 10_000


class KnownTenants:
    """A thread-safe, size-bounded set of tenant ids that exist, each trusted for ``ttl_seconds``.

    Only ids that exist are cached: an unknown id is looked up again every
    time, so a tenant created after the cache was filled is accepted at once.
    """

    def __init__(
        self,
        lookup: Callable[[str], bool],
        *,
        ttl_seconds: float = KNOWN_TENANT_TTL_SECONDS,
        max_ids: int = KNOWN_TENANT_MAX_IDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._lookup = lookup
        self._ttl_seconds = ttl_seconds
        self._max_ids = max_ids
        self._clock = clock
        self._found_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.lookups = 0

    def contains(self, tenant_id: str) -> bool:
        """Return True when ``tenant_id`` exists; query the lookup unless a recent result is cached.

        Raises what the lookup raises, such as a database error, so the
        caller retries the message instead of rejecting it.
        """
        now = self._clock()
        with self._lock:
            found_at = self._found_at.get(tenant_id)
            if found_at is not None and now - found_at < self._ttl_seconds:
                self._found_at.move_to_end(tenant_id)
                return True

        with self._lock:
            self.lookups += 1
        if not self._lookup(tenant_id):
            return False

        with self._lock:
            self._found_at[tenant_id] = now
            self._found_at.move_to_end(tenant_id)
            while len(self._found_at) > self._max_ids:
                self._found_at.popitem(last=False)
        return True


_known_tenants: KnownTenants | None = None


def register_tenant_lookup(lookup: Callable[[str], bool]) -> None:
    """Make ``lookup(tenant_id) -> bool`` the consumer's tenant check, with a new empty cache."""
    global _known_tenants
    _known_tenants = KnownTenants(lookup)


def known_tenants() -> KnownTenants | None:
    """Return the registered tenant check, or None when no lookup is registered."""
    return _known_tenants


def tenant_is_known(tenant_id: str) -> bool:
    """Return True when ``tenant_id`` exists, or when no lookup is registered."""
    if _known_tenants is None:
        return True
    return _known_tenants.contains(tenant_id)
