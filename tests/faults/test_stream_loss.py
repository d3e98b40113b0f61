"""Acknowledged events lost by a nats-server crash come back with relay_outbox --republish-since.

A single nats-server acknowledges a publish before it flushes the stream
file to disk unless `sync_interval: always` is set, so a host crash can lose
events the relay already marked published. Deleting the stream's files while
the server is stopped leaves the same state behind: the outbox marks them
published, and the stream and its durable consumers are gone.
"""

import shutil
from datetime import timedelta

import nats.js.errors
import pytest
from django.utils import timezone

from eventbus.backends import reset_bus
from eventbus.models import OutboxState
from eventbus.registry import all_modules
from eventbus.relay import relay_outbox
from tests.eventbus.conftest import (
    consumer_info,
    consumers_running,
    publish_probe,
    run_nats,
    stream_envelopes,
)
from tests.probe.models import OutboxEvent, ProbeCounter, ProbeEffect
from tests.support import manage_py_process, stream_message_count, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True, databases="__all__")]
ALIAS = "notifications"
STREAM = "PROBE_EVENTS"
AGGREGATES = 5
# Seconds a manage.py command started by the test may take.
COMMAND_TIMEOUT_SECONDS = 120


def publish_round(round_number: int) -> list:
    """Append two versions for each of the aggregates, interleaved, and return the envelopes."""
    envelopes = []
    for version in (1, 2):
        for aggregate in range(AGGREGATES):
            envelopes.append(
                publish_probe(
                    f"round {round_number} v{version}",
                    aggregate_id=f"agg-{aggregate}",
                    version=2 * (round_number - 1) + version,
                )
            )
    return envelopes


def consuming_modules() -> list:
    """The bus modules with a durable consumer on the probe stream."""
    return [module for module in all_modules() if "probe" in module.handlers.producers()]


def stream_exists(url: str) -> bool:
    async def work(js):
        try:
            await js.stream_info(STREAM)
        except nats.js.errors.NotFoundError:
            return False
        return True

    return run_nats(url, work)


def lose_files(nats_server, lost: str) -> None:
    """Delete the probe stream's directory, or the whole JetStream store, of a stopped server."""
    store = nats_server.store / "data"
    if lost == "store":
        assert store.is_dir()
        shutil.rmtree(store)
        return

    directories = list(store.glob(f"jetstream/*/streams/{STREAM}"))
    assert len(directories) == 1, f"expected one {STREAM} directory under {store}, found {directories}"
    shutil.rmtree(directories[0])


def manage_py(nats_server, tmp_path, *args: str) -> str:
    """Run ``manage.py ARGS`` in a new process against the throwaway server and return its output."""
    log_path = tmp_path / f"{args[0]}.log"
    process = manage_py_process(
        *args, env={"EVENT_BUS": "nats", "NATS_URL": nats_server.url}, log_path=log_path
    )
    returncode = process.wait(timeout=COMMAND_TIMEOUT_SECONDS)
    output = log_path.read_text()
    assert returncode == 0, f"manage.py {' '.join(args)} exited with {returncode}:\n{output}"
    return output


def consumer_caught_up(url: str, consumer: str) -> bool:
    info = consumer_info(url, STREAM, consumer)
    return info.num_pending == 0 and info.num_ack_pending == 0


class TestStreamLoss:
    @pytest.mark.parametrize("lost", ["stream", "store"])
    def test_republish_applies_each_event_once(self, restartable_bus, nats_server, tmp_path, lost):
        since = timezone.now() - timedelta(seconds=1)
        applied = publish_round(1)
        with consumers_running():
            assert relay_outbox(module="probe", bus=restartable_bus).published == 10
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() == 10, timeout=30, message="round 1 applied")
        unapplied = publish_round(2)
        assert relay_outbox(module="probe", bus=restartable_bus).published == 10
        assert stream_message_count(nats_server.url, STREAM) == 20

        nats_server.stop()
        lose_files(nats_server, lost)
        nats_server.start()
        # Every process of a crashed host starts again with a new connection.
        reset_bus()

        assert not stream_exists(nats_server.url)
        assert not OutboxEvent.objects.using(ALIAS).exclude(state=OutboxState.PUBLISHED).exists()
        ensure_output = manage_py(nats_server, tmp_path, "bus", "ensure")
        assert f"created stream {STREAM}\n" in ensure_output
        for module in consuming_modules():
            assert f"created consumer {module.consumer_name} on {STREAM}\n" in ensure_output
        assert stream_message_count(nats_server.url, STREAM) == 0

        republish_output = manage_py(
            nats_server, tmp_path, "relay_outbox", "--republish-since", since.isoformat(), "--yes"
        )

        assert "probe: re-published 20 (0 already in the stream), failed 0, held back 0\n" in republish_output
        stored = [document["event_id"] for document in stream_envelopes(nats_server.url, STREAM)]
        outbox_ids = OutboxEvent.objects.using(ALIAS).order_by("id").values_list("event_id", flat=True)
        assert stored == [str(event_id) for event_id in outbox_ids]

        with consumers_running([module.name for module in consuming_modules()]):
            wait_for(lambda: ProbeEffect.objects.using(ALIAS).count() >= 20, timeout=60, message="round 2 applied")
            for module in consuming_modules():
                wait_for(
                    lambda module=module: consumer_caught_up(nats_server.url, module.consumer_name),
                    timeout=60, message=f"consumer {module.consumer_name} caught up",
                )

        event_ids = sorted(str(envelope.event_id) for envelope in applied + unapplied)
        effect_ids = ProbeEffect.objects.using(ALIAS).values_list("event_id", flat=True)
        assert sorted(str(event_id) for event_id in effect_ids) == event_ids
        for module in consuming_modules():
            inbox = module.inbox.objects.using(module.alias).filter(consumer=module.consumer_name)
            assert sorted(str(event_id) for event_id in inbox.values_list("event_id", flat=True)) == event_ids
        for counter in ProbeCounter.objects.using(ALIAS).all():
            assert counter.version == 4
            assert counter.value == "round 2 v2"
        assert ProbeCounter.objects.using(ALIAS).count() == AGGREGATES
