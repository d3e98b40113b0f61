"""/metrics: outbox gauges read at scrape time, bus counters moved by a relay and deliveries."""

import io
import urllib.request

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from billing.observability.worker import serve_worker_metrics
from billing.tenancy.services import api_key_create, tenant_ensure
from eventbus.backends import get_bus, reset_bus
from eventbus.relay import relay_outbox
from subscriptions.tasks import scheduled_bill_run_task
from tests.observability.conftest import append_probe, parse_metrics, sample, scrape
from tests.probe import events
from tests.probe.models import ProbeSwitch
from tests.support import NatsServer, free_port, manage_py_process, wait_for

pytestmark = pytest.mark.django_db(databases="__all__")
VALUE_SET = "probe.value.set"
FLAKY = "probe.flaky.happened"


class TestOutboxGauges:
    def test_backlog_after_append(self, client, inprocess_bus):
        before = timezone.now()
        append_probe("a", aggregate_id="a")
        append_probe("b", aggregate_id="b")

        samples = scrape(client)

        assert sample(samples, "billing_outbox_pending_events", module="probe") == 2
        assert sample(samples, "billing_outbox_pending_events", module="ar") == 0
        assert sample(samples, "billing_outbox_failing_events", module="probe") == 0
        age = sample(samples, "billing_outbox_oldest_pending_age_seconds", module="probe")
        assert 0 < age <= (timezone.now() - before).total_seconds()
        assert sample(samples, "billing_outbox_oldest_pending_age_seconds", module="ar") == 0

    def test_backlog_empty_after_relay(self, client, inprocess_bus):
        append_probe("a")

        relay_outbox(module="probe")
        samples = scrape(client)

        assert sample(samples, "billing_outbox_pending_events", module="probe") == 0
        assert sample(samples, "billing_outbox_oldest_pending_age_seconds", module="probe") == 0

    def test_payments_by_status(self, client, inprocess_bus):
        samples = scrape(client)

        for status in ("pending", "processing", "retry_scheduled", "succeeded", "failed"):
            assert sample(samples, "billing_payments", status=status) == 0


class TestBusCounters:
    def test_relay_and_delivery(self, client, inprocess_bus):
        before = scrape(client)
        append_probe("a", aggregate_id="a")
        append_probe("b", aggregate_id="b")

        relay_outbox(module="probe")
        after = scrape(client)

        labels = {"module": "probe", "event_type": VALUE_SET}
        for name in ("eventbus_events_relayed_total", "eventbus_events_consumed_total"):
            assert sample(after, name, **labels) - sample(before, name, **labels) == 2
        handled = "eventbus_handler_duration_seconds_count"
        assert sample(after, handled, **labels) - sample(before, handled, **labels) == 2

    def test_failure_and_dead_letter(self, client, inprocess_bus):
        ProbeSwitch.objects.using("notifications").create(name="flaky-fails")
        before = scrape(client)
        append_probe("x", event_type=events.FLAKY)

        relay_outbox(module="probe")
        after = scrape(client)

        labels = {"module": "probe", "event_type": FLAKY}
        failed = "eventbus_events_failed_total"
        dead = "eventbus_events_dead_lettered_total"
        # MAX_DELIVER is 2 in these tests: two handler errors, then a dead letter.
        assert sample(after, failed, **labels) - sample(before, failed, **labels) == 2
        assert sample(after, dead, reason="handler_failed", **labels) - sample(
            before, dead, reason="handler_failed", **labels
        ) == 1
        assert sample(after, "eventbus_events_consumed_total", **labels) == sample(
            before, "eventbus_events_consumed_total", **labels
        )
        assert sample(after, "billing_dead_letters", module="probe") == 1


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_run_consumers_metrics_port(settings, tmp_path):
    """A consumer process in multiprocess mode serves its delivery counters on --metrics-port."""
    server = NatsServer()
    server.start()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    environment = {"EVENT_BUS": "nats", "NATS_URL": server.url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    process = manage_py_process(
        "run_consumers", "--module", "probe", "--metrics-port", str(port),
        env=environment, log_path=tmp_path / "consumers.log",
    )
    try:
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "nats", "NATS_URLS": [server.url]}
        reset_bus()
        get_bus().ensure()
        append_probe("a")
        assert relay_outbox(module="probe").published == 1

        def consumed() -> float:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    samples = parse_metrics(response.read().decode())
            except OSError:
                return 0
            return sample(samples, "eventbus_events_consumed_total", module="probe", event_type=VALUE_SET)

        assert wait_for(consumed, timeout=30, message="consumed counter on the metrics port") == 1
        assert any(path.name.startswith("counter_") for path in metrics_dir.iterdir())
    finally:
        process.terminate()
        process.wait(timeout=30)
        reset_bus()
        server.cleanup()
    assert process.returncode == 0, (tmp_path / "consumers.log").read_text()


BILL_RUN_COUNT = "billing_bill_run_duration_seconds_count"


def test_bill_run_duration_observed(client):
    labels = {"dry_run": "true"}
    before = scrape(client)

    call_command("bill_run", "--as-of", "2026-01-31", "--dry-run", "--json", stdout=io.StringIO())
    after = scrape(client)

    assert sample(after, BILL_RUN_COUNT, **labels) - sample(before, BILL_RUN_COUNT, **labels) == 1


def test_scheduled_bill_run_duration_observed(client):
    labels = {"dry_run": "false"}
    before = scrape(client)

    scheduled_bill_run_task()
    after = scrape(client)

    assert sample(after, BILL_RUN_COUNT, **labels) - sample(before, BILL_RUN_COUNT, **labels) == 1


def test_api_bill_run_duration_observed(client):
    labels = {"dry_run": "true"}
    tenant_ensure(tenant_id="acme", now=timezone.now())
    _, secret = api_key_create(tenant_id="acme", now=timezone.now())
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    before = scrape(client)

    response = api.post("/api/v1/bill-runs", {"as_of": "2026-01-31", "dry_run": True}, format="json")
    after = scrape(client)

    assert response.status_code == 201, response.content
    assert sample(after, BILL_RUN_COUNT, **labels) - sample(before, BILL_RUN_COUNT, **labels) == 1


def test_worker_metrics_port(settings):
    port = free_port()
    settings.WORKER_METRICS_PORT = port

    serve_worker_metrics()

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "# TYPE eventbus_events_relayed_total counter" in text

