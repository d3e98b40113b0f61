"""LISTEN/NOTIFY wake-up of a following relay when an outbox gets rows."""

import threading
import time

import pytest
from django.db import connections, transaction

from eventbus.models import OutboxState
from eventbus.registry import get_module
from eventbus.relay import relay_follow
from eventbus.wakeup import OUTBOX_AUTOVACUUM_ROWS, OutboxListener
from tests.eventbus.conftest import publish_probe
from tests.probe.models import OutboxEvent
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ALIAS = "notifications"


@pytest.fixture
def listener():
    listener = OutboxListener([get_module("probe")])
    listener.listen()
    yield listener
    listener.close()


class TestOutboxListener:
    def test_committed_insert_wakes_the_listener(self, listener):
        publish_probe("wake up")

        assert listener.wait(10) == {"probe"}

    def test_rolled_back_insert_sends_nothing(self, listener):
        publish_probe("first")
        listener.wait(10)

        with pytest.raises(RuntimeError, match="roll back"):
            with transaction.atomic(using=ALIAS):
                publish_probe("rolled back")
                raise RuntimeError("roll back")

        assert listener.wait(0.5) == set()

    def test_other_modules_inserts_are_ignored(self):
        listener = OutboxListener([get_module("ar")])
        listener.listen()
        try:
            publish_probe("for the probe only")

            assert listener.wait(0.5) == set()
        finally:
            listener.close()


class TestFollowingRelay:
    def test_new_row_is_published_long_before_the_interval(self, nats_bus):
        stop = threading.Event()
        relay = threading.Thread(
            target=relay_follow,
            kwargs={"modules": ["probe"], "interval": 60.0, "should_stop": stop.is_set, "bus": nats_bus},
        )
        relay.start()
        try:
            # Let the relay finish its first pass and start waiting.
            time.sleep(1.0)
            envelope = publish_probe("wake the relay")

            wait_for(
                lambda: OutboxEvent.objects.using(ALIAS).get(event_id=envelope.event_id).state
                == OutboxState.PUBLISHED,
                timeout=10, message="row published while the relay waits out a 60 s interval",
            )
        finally:
            stop.set()
            # One more insert ends the relay's wait, so it checks the stop flag at once.
            publish_probe("stop the relay", aggregate_id="agg-stop")
            relay.join(timeout=20)
        assert not relay.is_alive()

    def test_stop_ends_idle_wait(self, nats_bus):
        stop = threading.Event()
        relay = threading.Thread(
            target=relay_follow,
            kwargs={"modules": ["probe"], "interval": 60.0, "should_stop": stop.is_set, "bus": nats_bus},
        )
        relay.start()
        # Let the relay finish its first pass and start waiting.
        time.sleep(1.0)
        stopped_at = time.monotonic()
        stop.set()

        relay.join(timeout=10)
        assert not relay.is_alive()
        assert time.monotonic() - stopped_at < 2


class TestOutboxAutovacuum:
    @pytest.mark.parametrize("module_name", ["subscriptions", "ar", "payments", "notifications"])
    def test_outbox_autovacuum_thresholds(self, module_name):
        module = get_module(module_name)
        with connections[module.alias].cursor() as cursor:
            cursor.execute(
                "SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [module.outbox._meta.db_table]
            )
            (options,) = cursor.fetchone()

        assert sorted(options) == sorted([
            "autovacuum_vacuum_scale_factor=0",
            f"autovacuum_vacuum_threshold={OUTBOX_AUTOVACUUM_ROWS}",
            "autovacuum_analyze_scale_factor=0",
            f"autovacuum_analyze_threshold={OUTBOX_AUTOVACUUM_ROWS}",
        ])
