import os

import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing.tenancy.services import tenant_ensure
from eventbus.backends import get_bus, reset_bus
from eventbus.outbox import outbox_append
from tests.probe import events
from tests.support import delete_all_streams

# Short delays keep retry tests fast; production defaults are in settings.
FAST_BUS = {"BACKOFF_SECONDS": [0.1, 0.1, 0.1, 0.1], "ACK_WAIT_SECONDS": 3.0, "MAX_DELIVER": 2}


@pytest.fixture
def inprocess_bus(settings):
    settings.EVENTBUS = {**settings.EVENTBUS, **FAST_BUS, "BACKEND": "inprocess"}
    reset_bus()
    yield get_bus()
    reset_bus()


@pytest.fixture
def nats_bus(settings):
    """The NATS backend on this test run's own server, with every stream declared."""
    settings.EVENTBUS = {**settings.EVENTBUS, **FAST_BUS, "BACKEND": "nats", "NATS_URLS": [os.environ["NATS_URL"]]}
    delete_all_streams(os.environ["NATS_URL"])
    reset_bus()
    bus = get_bus()
    bus.ensure()
    yield bus
    reset_bus()


def append_probe(value: str, *, event_type=events.VALUE_SET, aggregate_id: str = "agg-1", version: int = 1):
    # Consumers dead-letter an event of a tenant that does not exist.
    tenant_ensure(tenant_id="tenant-obs", now=timezone.now())
    with transaction.atomic(using="notifications"):
        return outbox_append(
            module="probe",
            event_type=event_type,
            aggregate_type="probe",
            aggregate_id=aggregate_id,
            aggregate_version=version,
            tenant_id="tenant-obs",
            payload={"value": value},
            occurred_at=timezone.now(),
        )


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Return every sample of a Prometheus text exposition, keyed by name and labels."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse_metrics(response.content.decode())


def sample(samples: dict, name: str, **labels) -> float:
    """Return one sample's value; 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)
