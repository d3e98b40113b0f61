"""Gauges read from the databases at scrape time, so every process reports the same values."""

import logging

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventbus.selectors import outbox_backlogs
from payments.selectors import payment_counts_by_status

logger = logging.getLogger(__name__)


class OutboxCollector(Collector):
    """Each module's outbox backlog, failing rows, oldest pending age and dead letters."""

    def collect(self):
        pending = GaugeMetricFamily(
            "billing_outbox_pending_events", "Outbox rows not yet published.", labels=["module"]
        )
        failing = GaugeMetricFamily(
            "billing_outbox_failing_events",
            "Pending outbox rows whose last publish failed.",
            labels=["module"],
        )
        oldest = GaugeMetricFamily(
            "billing_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row; 0 when none is pending.",
            labels=["module"],
        )
        dead = GaugeMetricFamily(
            "billing_dead_letters", "Dead letters waiting for replay or discard.", labels=["module"]
        )
        try:
            backlogs = outbox_backlogs()
        except DatabaseError:
            # A scrape must still return the process's counters; /readyz names the database.
            logger.exception("Reading outbox backlogs for metrics failed")
            return
        for backlog in backlogs:
            pending.add_metric([backlog.module], backlog.pending)
            failing.add_metric([backlog.module], backlog.failing)
            oldest.add_metric([backlog.module], backlog.oldest_age_seconds() or 0.0)
            dead.add_metric([backlog.module], backlog.dead_letters)
        yield from (pending, failing, oldest, dead)


class PaymentCollector(Collector):
    """Payments by status, from the payments module's selectors."""

    def collect(self):
        payments = GaugeMetricFamily(
            "billing_payments",
            "Payments in each status; succeeded and failed are final outcomes.",
            labels=["status"],
        )
        try:
            counts = payment_counts_by_status()
        except DatabaseError:
            logger.exception("Reading payment counts for metrics failed")
            return
        for status, count in sorted(counts.items()):
            payments.add_metric([status], count)
        yield payments
