"""Prometheus counters and histograms of the relay and the consumers.

Each process counts for itself. When PROMETHEUS_MULTIPROC_DIR is set before
the process starts, prometheus_client writes the values to files in that
folder, so one scrape sums every gunicorn worker, Celery child and consumer
process that shares it (``billing.observability.metrics``).
"""

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server
from prometheus_client.registry import REGISTRY

EVENTS_RELAYED = Counter(
    "eventbus_events_relayed",
    "Events the bus acknowledged for a module's outbox.",
    ["module", "event_type"],
)
EVENTS_PUBLISH_FAILED = Counter(
    "eventbus_events_publish_failed",
    "Publishes of outbox rows that the bus did not acknowledge; the row is retried.",
    ["module", "event_type"],
)
EVENTS_CONSUMED = Counter(
    "eventbus_events_consumed",
    "Events a consuming module applied, duplicates skipped by the inbox included.",
    ["module", "event_type"],
)
EVENTS_FAILED = Counter(
    "eventbus_events_failed",
    "Handler errors; the message is redelivered until its last delivery.",
    ["module", "event_type"],
)
EVENTS_DEAD_LETTERED = Counter(
    "eventbus_events_dead_lettered",
    "Messages written to a consuming module's dead-letter table.",
    ["module", "event_type", "reason"],
)
# Bucket bounds in seconds, from a fast inbox insert to a slow gateway call.
HANDLER_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HANDLER_DURATION = Histogram(
    "eventbus_handler_duration_seconds",
    "Time to apply one event: inbox insert, handler and commit, failures included. An event applied "
    "in a group adds an equal share of the group's inbox statements, deferred work and commit.",
    ["module", "event_type"],
    buckets=HANDLER_DURATION_BUCKETS,
)


def event_type_of_subject(subject: str) -> str:
    """Return the event type of a subject ``<producer>.events.<event_type>``, or the subject."""
    _, separator, event_type = subject.partition(".events.")
    return event_type if separator else subject


def process_registry() -> CollectorRegistry:
    """Return the registry of this process's metrics, or of every process in multiprocess mode.

    In multiprocess mode the registry's MultiProcessCollector sums the value
    files in PROMETHEUS_MULTIPROC_DIR at each scrape; otherwise the default
    registry contains the live values.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def serve_metrics(*, host: str, port: int) -> None:
    """Serve ``process_registry()`` at http://HOST:PORT/metrics on a daemon thread."""
    start_http_server(port, addr=host, registry=process_registry())
