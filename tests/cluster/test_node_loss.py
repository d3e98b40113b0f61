"""A three-node JetStream cluster loses a node during the flow: nothing is lost.

Streams are replicated to all three nodes, so two nodes keep a quorum while
the third is down. One test kills a follower (neither the meta leader nor
the AR stream's leader) with SIGKILL before the bill run and restarts it
once the invoice is paid. The other kills the AR stream's leader after AR
created the invoice and before AR's collection request is relayed, so that
request is published and consumed while the node is down. After each
restart every replica must catch up and every invariant must hold.
"""

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.db import connections
from django.utils import timezone

from billing.invariants import invariants_check
from eventbus.backends import get_bus, reset_bus
from eventbus.registry import all_modules, get_module
from eventbus.relay import relay_follow, relay_outbox
from eventbus.selectors import outbox_backlogs
from tests.cluster.nats_cluster import NatsCluster, wait_until
from tests.e2e.test_lost_event_scenario import create_customer_with_subscription
from tests.eventbus.conftest import consumers_running

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]

AS_OF = date(2026, 3, 1)
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# Seconds the whole scenario may take, from the bill run to the last
# invariant. Each wait below gets whatever time is left of it.
SCENARIO_SECONDS = 60
# Seconds the killed node stays down after the invoice is paid without it.
OUTAGE_SECONDS = 2
MODULES = ["subscriptions", "ar", "payments", "notifications"]
STREAMS = ["SUBSCRIPTIONS_EVENTS", "AR_EVENTS", "PAYMENTS_EVENTS", "NOTIFICATIONS_EVENTS"]


@pytest.fixture
def cluster():
    nats_cluster = NatsCluster()
    try:
        nats_cluster.start()
        yield nats_cluster
    finally:
        nats_cluster.cleanup()


@pytest.fixture
def cluster_bus(settings, cluster):
    settings.EVENTBUS = {
        **settings.EVENTBUS,
        "BACKEND": "nats",
        "NATS_URLS": cluster.urls,
        "STREAM_REPLICAS": 3,
        "ACK_WAIT_SECONDS": 5.0,
        "BACKOFF_SECONDS": [0.2, 0.5, 1.0],
    }
    reset_bus()
    bus = get_bus()
    # Replicated streams need all three nodes up to be created.
    bus.ensure()
    yield bus
    reset_bus()


def outboxes_pending() -> int:
    return sum(backlog.pending for backlog in outbox_backlogs())


def relay_in_thread(bus, stop: threading.Event) -> threading.Thread:
    """Start relaying every module's outbox on a thread until ``stop`` is set."""

    def relay_until_stopped():
        try:
            relay_follow(modules=MODULES, interval=0.1, should_stop=stop.is_set, bus=bus)
        finally:
            connections.close_all()

    relay = threading.Thread(target=relay_until_stopped, daemon=True)
    relay.start()
    return relay


def assert_nothing_lost(*, customer_id: str) -> None:
    """Assert the invoice is paid, outboxes drained, each event applied once and every invariant holds."""
    from ar.models import Invoice

    invoice = Invoice.objects.get(customer_id=customer_id)
    assert invoice.status == "paid"
    assert invoice.amount_paid_minor == 4900
    assert outboxes_pending() == 0
    for module in all_modules():
        event_ids = list(module.inbox.objects.using(module.alias).values_list("event_id", flat=True))
        assert len(event_ids) == len(set(event_ids)), f"{module.name} applied an event twice"
        assert module.dead_letters.objects.using(module.alias).count() == 0
    payments = get_module("payments")
    requests_applied = payments.inbox.objects.using(payments.alias).filter(
        event_type="ar.payment.collection.requested"
    )
    assert requests_applied.count() == 1
    assert [message.to for message in mail.outbox] == [["ada@example.com"], ["ada@example.com"]]

    report = check_later()
    assert report.failed_checks == []
    assert report.check("events_applied").rows_checked > 0
    assert report.check("payments_applied").rows_checked == 1


def wait_until_settled(cluster: NatsCluster, *, deadline: float) -> None:
    """Wait for every replica to catch up, the emails, the outboxes and the invariants."""
    for stream in STREAMS:
        wait_until(
            lambda stream=stream: cluster.stream_caught_up(stream), deadline=deadline,
            message=f"every replica of {stream} current after the restart",
        )
    wait_until(lambda: len(mail.outbox) >= 2, deadline=deadline, message="the emails being sent")
    wait_until(lambda: outboxes_pending() == 0, deadline=deadline, message="every outbox drained")
    # Consumers may still be applying what the last relay pass published.
    wait_until(lambda: check_later().passed, deadline=deadline, interval=0.5, message="every invariant holding")


def check_later():
    """Check with the clock an hour ahead, so every row the relay just published counts as settled."""
    return invariants_check(now=timezone.now() + timedelta(hours=1))


class TestClusterNodeLoss:
    def test_follower_killed_for_whole_flow(self, cluster, cluster_bus):
        from ar.models import Invoice
        from subscriptions.services import bill_run_execute

        deadline = time.monotonic() + SCENARIO_SECONDS
        leaders = {cluster.meta_leader(), cluster.stream_leader("AR_EVENTS")}
        killed = next(node for node in cluster.nodes if node.name not in leaders)
        cluster.kill_node(killed)

        customer_id = create_customer_with_subscription()
        assert bill_run_execute(as_of=AS_OF, now=NOW).periods_billed == 1
        stop = threading.Event()
        relay = relay_in_thread(cluster_bus, stop)
        try:
            with consumers_running(modules=tuple(MODULES)):
                wait_until(
                    lambda: Invoice.objects.filter(customer_id=customer_id, status="paid").exists(),
                    deadline=deadline, message="the invoice becoming paid with one node down",
                )
                assert not killed.running
                cluster.start_node(killed)
                wait_until_settled(cluster, deadline=deadline)
        finally:
            stop.set()
            relay.join(timeout=30)

        assert_nothing_lost(customer_id=customer_id)

    def test_stream_leader_killed_mid_flow(self, cluster, cluster_bus):
        from ar.models import Invoice
        from ar.models import OutboxEvent as ArOutbox
        from subscriptions.services import bill_run_execute

        deadline = time.monotonic() + SCENARIO_SECONDS
        customer_id = create_customer_with_subscription()
        assert bill_run_execute(as_of=AS_OF, now=NOW).periods_billed == 1

        # The bill run reaches AR over the full cluster.
        assert relay_outbox(module="subscriptions", bus=cluster_bus).published >= 1
        with consumers_running(modules=("ar",)):
            wait_until(
                lambda: Invoice.objects.filter(customer_id=customer_id).exists(),
                deadline=deadline, message="AR creating the invoice",
            )
        for stream in STREAMS:
            assert cluster.stream_info(stream).config.num_replicas == 3

        leader = wait_until(
            lambda: cluster.stream_leader("AR_EVENTS"), deadline=deadline, message="a leader for AR_EVENTS"
        )
        killed = cluster.node(leader)
        cluster.kill_node(killed)
        killed_at = timezone.now()

        stop = threading.Event()
        relay = relay_in_thread(cluster_bus, stop)
        try:
            with consumers_running(modules=tuple(MODULES)):
                wait_until(
                    lambda: Invoice.objects.filter(customer_id=customer_id, status="paid").exists(),
                    deadline=deadline, message="the invoice becoming paid with one node down",
                )
                assert not killed.running
                time.sleep(OUTAGE_SECONDS)
                cluster.start_node(killed)
                wait_until_settled(cluster, deadline=deadline)
        finally:
            stop.set()
            relay.join(timeout=30)

        request = ArOutbox.objects.get(event_type="ar.payment.collection.requested")
        assert request.published_at > killed_at
        assert cluster.stream_leader("AR_EVENTS") is not None
        assert_nothing_lost(customer_id=customer_id)
