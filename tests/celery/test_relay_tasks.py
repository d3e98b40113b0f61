"""Relay tasks through a real Celery worker and Redis broker."""

import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings

from eventbus.models import OutboxState
from tests.eventbus.conftest import publish_probe
from tests.probe.models import OutboxEvent, ProbeEffect
from tests.support import ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def celery_worker(tmp_path):
    """A `celery worker` process on this test session's databases and broker."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "BILLING_ON_TEST_DATABASES": "1",
        "EVENT_BUS": "inprocess",
    }
    log = open(tmp_path / "worker.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "billing", "worker", "--pool", "solo",
         "--concurrency", "1", "--without-heartbeat", "--without-gossip", "--without-mingle",
         "--queues", f"relay-test-{os.getpid()}", "--loglevel", "INFO"],
        cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    yield f"relay-test-{os.getpid()}"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class TestRelayTask:
    def test_worker_relays_outbox_through_redis(self, celery_worker):
        from eventbus.tasks import relay_outbox_task

        envelope = publish_probe("via celery")

        relay_outbox_task.apply_async(args=("probe",), queue=celery_worker)

        wait_for(
            lambda: ProbeEffect.objects.using("notifications").filter(event_id=envelope.event_id).exists(),
            timeout=60, message="the worker relaying and applying the event",
        )
        # The in-process bus applies the event before the relay marks the row
        # published, so the mark can trail the effect by a moment.
        wait_for(
            lambda: OutboxEvent.objects.using("notifications").get().state == OutboxState.PUBLISHED,
            timeout=30, message="the worker marking the row published",
        )
        assert OutboxEvent.objects.using("notifications").get().state == OutboxState.PUBLISHED

    def test_repeated_ticks_publish_each_event_once(self, celery_worker):
        from eventbus.tasks import relay_outbox_task

        envelopes = [publish_probe(f"event {number}", aggregate_id=f"agg-{number}") for number in range(20)]

        for _ in range(3):
            relay_outbox_task.apply_async(args=("probe",), queue=celery_worker)

        wait_for(
            lambda: ProbeEffect.objects.using("notifications").count() >= len(envelopes),
            timeout=60, message="every event applied",
        )
        wait_for(
            lambda: not OutboxEvent.objects.using("notifications").filter(state=OutboxState.PENDING).exists(),
            timeout=30, message="every row marked published",
        )
        assert ProbeEffect.objects.using("notifications").count() == len(envelopes)
        assert OutboxEvent.objects.using("notifications").filter(state=OutboxState.PENDING).count() == 0


class TestBeatSchedule:
    def test_every_module_relays_each_second(self):
        schedule = settings.CELERY_BEAT_SCHEDULE

        for module in ("subscriptions", "ar", "payments", "notifications"):
            entry = schedule[f"relay-{module}-outbox"]
            assert entry["task"] == "eventbus.relay_outbox"
            assert entry["schedule"] == 1.0
            assert entry["args"] == (module,)
