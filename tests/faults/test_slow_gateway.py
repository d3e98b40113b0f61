"""The gateway responds slowly while two ``run_consumers`` processes share the payments durable.

Both tests bill one invoice whose payment method has the simulated gateway's
``tok_slow`` token, so the charge takes several times the ack wait. The
first test shows that the consumer's progress acks keep the collection
request with the process that is charging. The second stops that process
(SIGSTOP) while its charge is in flight, so its progress acks stop too, and
JetStream redelivers the request to the other process. Either way the
invoice must be charged once, and every invariant must hold.
"""

import os
import signal
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections

from billing.invariants import invariants_check
from eventbus.backends import get_bus, reset_bus
from eventbus.relay import relay_follow
from tests.e2e.test_lost_event_scenario import AS_OF, NOW, create_customer_with_subscription
from tests.eventbus.conftest import consumer_info, consumers_running
from tests.faults.conftest import assert_invariants_hold, bus_environment
from tests.support import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]

# Seconds JetStream waits for an ack before it redelivers; short, so the
# stalled charge outlasts it several times.
ACK_WAIT_SECONDS = 2.0
# Seconds the simulated gateway takes to respond for tok_slow.
GATEWAY_SECONDS = 8.0
# Seconds the flow may take from the bill run to the paid invoice.
FLOW_SECONDS = 60
IN_PROCESS_MODULES = ("subscriptions", "ar", "notifications")


@pytest.fixture
def slow_bus(settings, restartable_bus):
    """The throwaway server's bus with an ack wait short enough for a stalled charge to outlast it."""
    settings.EVENTBUS = {**settings.EVENTBUS, "ACK_WAIT_SECONDS": ACK_WAIT_SECONDS}
    reset_bus()
    return get_bus()


@pytest.fixture
def payments_consumers(nats_server, processes):
    """Start two ``run_consumers --module payments`` processes and wait until both consume."""
    environment = {**bus_environment(nats_server.url), "PAYMENTS_SIMULATED_SLOW_SECONDS": str(GATEWAY_SECONDS)}
    started = {
        name: processes.start(name, "run_consumers", "--module", "payments", env=environment)
        for name in ("first", "second")
    }
    for name in started:
        wait_for(
            lambda name=name: "eventbus.runner Consuming for payments" in processes.log(name),
            timeout=60, message=f"payments consumer {name} consuming",
        )
    return started


@contextmanager
def flow_running(bus):
    """Relay every outbox and consume for every module but payments, in this process."""
    stop = threading.Event()

    def relay_until_stopped():
        try:
            relay_follow(
                modules=["subscriptions", "ar", "payments", "notifications"], interval=0.1,
                should_stop=stop.is_set, bus=bus,
            )
        finally:
            connections.close_all()

    relay = threading.Thread(target=relay_until_stopped, daemon=True)
    relay.start()
    try:
        with consumers_running(modules=IN_PROCESS_MODULES):
            yield
    finally:
        stop.set()
        relay.join(timeout=30)
        assert not relay.is_alive(), "the relay thread did not stop within 30 s"


def collection_consumer(nats_server):
    """Return the state of the payments durable consumer on the AR stream."""
    return consumer_info(nats_server.url, "AR_EVENTS", "payments")


def charge_in_flight() -> bool:
    from payments.models import PaymentAttempt, SimulatedCharge

    processing = PaymentAttempt.objects.filter(status="processing").exists()
    return processing and not SimulatedCharge.objects.exists()


def payments_database_ports() -> set[int]:
    """Return the client ports of every connection to the payments database but this process's."""
    database = connections["payments"].settings_dict["NAME"]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT client_port FROM pg_stat_activity "
            "WHERE datname = %s AND client_port IS NOT NULL AND pid <> pg_backend_pid()",
            [database],
        )
        return {row[0] for row in cursor.fetchall()}


def local_tcp_ports(pid: int) -> set[int]:
    """Return the local ports of the TCP sockets process ``pid`` has open, read from /proc."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(descriptor)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def assert_charged_once(*, customer_id: str, deliveries: int, nats_server) -> None:
    from ar.models import Invoice
    from payments.models import PaymentAttempt, ProcessedEvent, SimulatedCharge

    invoice = Invoice.objects.get(customer_id=customer_id)
    assert invoice.status == "paid"
    assert invoice.amount_paid_minor == 4900
    assert SimulatedCharge.objects.count() == 1
    assert SimulatedCharge.objects.get().succeeded
    assert PaymentAttempt.objects.count() == 1
    assert ProcessedEvent.objects.filter(event_type="ar.payment.collection.requested").count() == 1
    info = collection_consumer(nats_server)
    assert info.delivered.consumer_seq == deliveries
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


def wait_until_settled(deadline: float) -> None:
    """Wait for every invariant to hold with nothing counted as in flight."""
    wait_for(
        lambda: invariants_check(stale_after=timedelta(0)).passed,
        timeout=max(deadline - time.monotonic(), 0.1), interval=0.5, message="every invariant holding",
    )


class TestSlowGateway:
    def test_slow_charge_keeps_its_message(self, slow_bus, nats_server, payments_consumers, processes):
        from ar.models import Invoice
        from subscriptions.services import bill_run_execute

        deadline = time.monotonic() + FLOW_SECONDS
        customer_id = create_customer_with_subscription(token="tok_slow")
        assert bill_run_execute(as_of=AS_OF, now=NOW).periods_billed == 1

        with flow_running(slow_bus):
            wait_for(charge_in_flight, timeout=FLOW_SECONDS, message="the charge in flight at the gateway")
            charge_started = time.monotonic()
            wait_for(
                lambda: Invoice.objects.filter(customer_id=customer_id, status="paid").exists(),
                timeout=max(deadline - time.monotonic(), 0.1), message="the invoice paid",
            )
            assert time.monotonic() - charge_started > 2 * ACK_WAIT_SECONDS
            wait_until_settled(deadline)

        for name, process in payments_consumers.items():
            assert process.poll() is None, f"payments consumer {name} exited:\n" + processes.log(name)
        # Progress acks kept the request with the charging process: one delivery.
        assert_charged_once(customer_id=customer_id, deliveries=1, nats_server=nats_server)
        assert_invariants_hold(charged_once=1, payments_applied=1, events_applied=5)

    def test_redelivery_during_charge_charges_once(self, slow_bus, nats_server, payments_consumers, processes):
        from ar.models import Invoice
        from payments.models import SimulatedCharge
        from subscriptions.services import bill_run_execute

        deadline = time.monotonic() + FLOW_SECONDS
        customer_id = create_customer_with_subscription(token="tok_slow")
        assert bill_run_execute(as_of=AS_OF, now=NOW).periods_billed == 1

        with flow_running(slow_bus):
            wait_for(charge_in_flight, timeout=FLOW_SECONDS, message="the charge in flight at the gateway")
            ports = payments_database_ports()
            holders = [name for name, process in payments_consumers.items() if local_tcp_ports(process.pid) & ports]
            assert len(holders) == 1, f"expected one process connected to the payments database, found {holders}"
            holder = payments_consumers[holders[0]]
            holder.send_signal(signal.SIGSTOP)
            try:
                wait_for(
                    lambda: collection_consumer(nats_server).delivered.consumer_seq == 2
                    and collection_consumer(nats_server).num_ack_pending == 0,
                    timeout=GATEWAY_SECONDS, interval=0.1,
                    message="the collection request redelivered to the other process and acked",
                )
                # The redelivery was settled while the first charge was still in flight.
                assert charge_in_flight()
                assert SimulatedCharge.objects.count() == 0
            finally:
                holder.send_signal(signal.SIGCONT)

            wait_for(
                lambda: Invoice.objects.filter(customer_id=customer_id, status="paid").exists(),
                timeout=max(deadline - time.monotonic(), 0.1), message="the invoice paid after the stall",
            )
            wait_until_settled(deadline)

        for name, process in payments_consumers.items():
            assert process.poll() is None, f"payments consumer {name} exited:\n" + processes.log(name)
        other = next(name for name in payments_consumers if name != holders[0])
        assert "Skipped duplicate delivery" in processes.log(other)
        assert_charged_once(customer_id=customer_id, deliveries=2, nats_server=nats_server)
        assert_invariants_hold(charged_once=1, payments_applied=1, events_applied=5)
