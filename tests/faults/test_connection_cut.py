"""A consumer process loses a database connection in the middle of a handler's transaction.

A ``run_consumers`` process applies three slow events of different
aggregates at once, each on its own worker thread and connection, and each
handler keeps its transaction open after writing the inbox row.
``pg_terminate_backend`` cuts one of those connections. That transaction
rolls back with the connection, inbox row included, while the other two
commit. The cut event must be redelivered and applied exactly once, and the
same process must reconnect and keep consuming.
"""

import pytest
from django.db import connections

from eventbus.relay import relay_outbox
from tests.eventbus.conftest import consumer_info, publish_probe
from tests.faults.conftest import assert_invariants_hold, bus_environment
from tests.probe import events
from tests.probe.models import ProbeEffect, ProbeSwitch, ProcessedEvent
from tests.support import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]
ALIAS = "notifications"
STREAM = "PROBE_EVENTS"
# Seconds the slow handler keeps its transaction open, time enough to find
# and cut its connection.
HANDLER_SECONDS = 3.0


def idle_in_transaction_backends() -> list[int]:
    """Return the server pids of other sessions on the probe's database idle inside a transaction."""
    database = connections[ALIAS].settings_dict["NAME"]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = %s AND state = 'idle in transaction' AND pid <> pg_backend_pid()",
            [database],
        )
        return [row[0] for row in cursor.fetchall()]


def terminate_backend(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        return cursor.fetchone()[0]


def probe_consumer(nats_server):
    return consumer_info(nats_server.url, STREAM, "probe")


class TestConsumerConnectionCut:
    def test_cut_transaction_is_redelivered_and_applied_once(self, restartable_bus, nats_server, processes):
        ProbeSwitch.objects.using(ALIAS).create(name="slow-seconds", seconds=HANDLER_SECONDS)
        slow = [publish_probe(f"slow {n}", aggregate_id=f"slow-{n}", event_type=events.SLOW) for n in range(3)]
        assert relay_outbox(module="probe", bus=restartable_bus).published == 3
        consumer = processes.start(
            "consumer", "run_consumers", "--module", "probe", env=bus_environment(nats_server.url)
        )

        backends = wait_for(
            lambda: len(idle_in_transaction_backends()) == 3 and idle_in_transaction_backends(),
            timeout=30, interval=0.05, message="three handler transactions open on the database",
        )
        # Nothing has committed yet: every handler is still asleep.
        assert ProcessedEvent.objects.using(ALIAS).count() == 0
        assert terminate_backend(backends[0])
        ProbeSwitch.objects.using(ALIAS).filter(name="slow-seconds").update(seconds=0)

        wait_for(
            lambda: ProbeEffect.objects.using(ALIAS).count() >= 3, timeout=30,
            message="the slow events applied after the cut",
        )
        # The same process, never restarted, goes on consuming.
        later = [publish_probe(f"later {n}", aggregate_id=f"later-{n}") for n in range(5)]
        assert relay_outbox(module="probe", bus=restartable_bus).published == 5
        wait_for(
            lambda: ProbeEffect.objects.using(ALIAS).count() >= 8, timeout=30,
            message="events published after the cut applied",
        )
        wait_for(
            lambda: probe_consumer(nats_server).num_ack_pending == 0, timeout=20, message="every message acked"
        )

        assert consumer.poll() is None, "the consumer process exited:\n" + processes.log("consumer")
        for envelope in slow + later:
            assert ProbeEffect.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1
            assert ProcessedEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1
        # Eight first deliveries and one redelivery of the event whose transaction was cut.
        info = probe_consumer(nats_server)
        assert info.delivered.consumer_seq == 9
        assert info.num_pending == 0
        assert processes.stop("consumer") == 0
        assert_invariants_hold(outboxes_published=8, events_applied=8)
