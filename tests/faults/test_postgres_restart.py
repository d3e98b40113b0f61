"""PostgreSQL restarts while ``relay_outbox --follow`` drains an outbox.

The test starts its own PostgreSQL cluster and nats-server, migrates the
cluster, and runs the relay and a consumer as processes against them. The
server is shut down in fast mode, which ends every session, while the relay
works through the outbox in small batches, then started again. The relay
must reconnect by itself, and every outbox row must end up on the stream
exactly once, including rows that were published before the restart and
whose published mark was lost with it.
"""

import time

import pytest

from tests.eventbus.conftest import stream_envelopes
from tests.faults.conftest import bus_environment
from tests.faults.postgres import PostgresServer
from tests.support import wait_for

pytestmark = pytest.mark.faults
STREAM = "PROBE_EVENTS"
OUTBOX_TABLE = "notifications.probe_outboxevent"
INBOX_TABLE = "notifications.probe_processedevent"
# Rows appended in one transaction before the restart, and after it. The
# relay published 80 to 115 rows, in batches of 2, before a fast shutdown
# took effect on a 2-core machine, so 3,000 rows keep the restart in the
# middle of the drain.
ROWS_BEFORE = 3000
ROWS_AFTER = 20
# Rows the relay claims per batch; small batches spread the drain over many
# transactions.
RELAY_BATCH_SIZE = 2
# Seconds PostgreSQL stays down.
OUTAGE_SECONDS = 2
# Redelivery delays, in seconds, that outlast the outage: a handler that
# fails while the database is down must not use up its deliveries and be
# dead-lettered before the server is back.
CONSUMER_BACKOFF_SECONDS = "0.5,1,2,4"
CONSUMER_MAX_DELIVER = "6"
# Seconds a one-off manage.py command (migrate, shell, check_invariants) may take.
COMMAND_TIMEOUT_SECONDS = 120

APPEND_ROWS = """
from django.db import transaction
from django.utils import timezone

from billing.tenancy.services import tenant_ensure
from eventbus.outbox import outbox_append
from tests.probe import events

tenant_ensure(tenant_id="tenant-a", now=timezone.now())
with transaction.atomic(using="notifications"):
    for number in range({count}):
        outbox_append(
            module="probe", event_type=events.VALUE_SET, aggregate_type="probe",
            aggregate_id=f"{label}-{{number}}", aggregate_version=1, tenant_id="tenant-a",
            payload={{"value": f"{label} {{number}}"}}, occurred_at=timezone.now(),
        )
"""


@pytest.fixture
def postgres_server():
    """A throwaway PostgreSQL cluster that the test may restart, never the shared server."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def run_command(processes, environment: dict[str, str], name: str, *args: str) -> str:
    """Run ``manage.py ARGS`` to completion and return its output; fail on a non-zero exit."""
    process = processes.start(name, *args, env=environment)
    returncode = process.wait(timeout=COMMAND_TIMEOUT_SECONDS)
    output = processes.log(name)
    assert returncode == 0, f"manage.py {' '.join(args)} exited with {returncode}:\n{output}"
    return output


def append_rows(processes, environment: dict[str, str], label: str, count: int) -> None:
    run_command(processes, environment, f"append-{label}", "shell", "-c", APPEND_ROWS.format(label=label, count=count))


def outbox_counts(postgres_server: PostgresServer) -> dict[str, int]:
    rows = postgres_server.query(f"SELECT state, count(*) FROM {OUTBOX_TABLE} GROUP BY state")
    return dict(rows)


class TestPostgresRestart:
    def test_relay_recovers_and_publishes_each_row_once(self, restartable_bus, postgres_server, nats_server, processes):
        environment = {
            **bus_environment(nats_server.url),
            "DATABASE_URL": postgres_server.url,
            # The processes use the throwaway cluster, not the test session's databases.
            "BILLING_ON_TEST_DATABASES": "0",
            "EVENTBUS_BACKOFF_SECONDS": CONSUMER_BACKOFF_SECONDS,
            "EVENTBUS_MAX_DELIVER": CONSUMER_MAX_DELIVER,
        }
        run_command(processes, environment, "migrate", "migrate", "--verbosity", "0")
        consumer = processes.start("consumer", "run_consumers", "--module", "probe", env=environment)
        relay = processes.start(
            "relay", "relay_outbox", "--follow", "--module", "probe", "--interval", "0.2",
            env={**environment, "EVENTBUS_RELAY_BATCH_SIZE": str(RELAY_BATCH_SIZE)},
        )

        append_rows(processes, environment, "before", ROWS_BEFORE)
        wait_for(
            lambda: outbox_counts(postgres_server).get("published", 0) > 0, timeout=30, interval=0.01,
            message="the relay publishing its first batch",
        )
        postgres_server.stop()
        time.sleep(OUTAGE_SECONDS)
        postgres_server.start()
        published_before_restart = outbox_counts(postgres_server).get("published", 0)
        assert published_before_restart < ROWS_BEFORE, "the relay had drained the outbox before the restart"

        append_rows(processes, environment, "after", ROWS_AFTER)
        total = ROWS_BEFORE + ROWS_AFTER
        wait_for(
            lambda: outbox_counts(postgres_server) == {"published": total}, timeout=60, interval=0.3,
            message="every outbox row published after the restart",
        )
        wait_for(
            lambda: postgres_server.query(f"SELECT count(*) FROM {INBOX_TABLE}")[0][0] == total,
            timeout=60, interval=0.3, message="every event applied by the consumer",
        )

        assert relay.poll() is None, "the relay exited:\n" + processes.log("relay")
        assert consumer.poll() is None, "the consumer exited:\n" + processes.log("consumer")
        outbox_ids = [str(row[0]) for row in postgres_server.query(f"SELECT event_id FROM {OUTBOX_TABLE}")]
        stored_ids = [document["event_id"] for document in stream_envelopes(nats_server.url, STREAM)]
        assert len(stored_ids) == total
        assert sorted(stored_ids) == sorted(outbox_ids)
        assert "Relay pass failed" in processes.log("relay")
        check_output = run_command(processes, environment, "check", "check_invariants", "--stale-after", "0")
        assert "all checks passed" in check_output
        assert f"outboxes_published: passed, {total} row(s) checked" in check_output

        assert processes.stop("relay") == 0
        assert "Relay stopped" in processes.log("relay")
        assert processes.stop("consumer") == 0
