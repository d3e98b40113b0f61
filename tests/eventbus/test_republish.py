"""Re-publishing published outbox rows: outbox_republish and relay_outbox --republish-since."""

import io
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from eventbus.backends import PublishOutcome
from eventbus.locks import relay_lock
from eventbus.management.commands import relay_outbox as relay_outbox_command
from eventbus.models import OutboxState
from eventbus.relay import (
    RepublishSinceNaive,
    outbox_republish,
    outbox_republish_count,
    relay_outbox,
)
from tests.eventbus.conftest import publish_probe, run_nats, stream_envelopes
from tests.probe.models import OutboxEvent
from tests.support import stream_message_count

pytestmark = pytest.mark.django_db(databases="__all__")
ALIAS = "notifications"
STREAM = "PROBE_EVENTS"


def run(*args) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def lose_stream(bus, url: str) -> None:
    """Delete the probe stream with its messages and declare it again, empty."""

    async def work(js):
        await js.delete_stream(STREAM)

    run_nats(url, work)
    bus.ensure()


def appended_rows(count: int, *, aggregates: int = 1) -> list:
    """Append ``count`` pending probe events spread over ``aggregates`` and return their envelopes."""
    return [
        publish_probe(f"v{index}", aggregate_id=f"agg-{index % aggregates}", version=index // aggregates + 1)
        for index in range(count)
    ]


def set_published_at(envelope, moment: datetime) -> None:
    OutboxEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).update(published_at=moment)


class FailingBus:
    """A bus wrapper that fails the publishes of the event ids in ``failing`` and records every id sent."""

    def __init__(self, bus, failing: set[str]):
        self.bus = bus
        self.failing = failing
        self.sent: list[str] = []

    def publish_batch(self, messages):
        self.sent.extend(message.event_id for message in messages)
        passing = [message for message in messages if message.event_id not in self.failing]
        stored = iter(self.bus.publish_batch(passing))
        return [
            PublishOutcome(message.event_id, stored=False, error=f"injected failure for {message.event_id}")
            if message.event_id in self.failing
            else next(stored)
            for message in messages
        ]


@contextmanager
def relay_lock_held(*, seconds: float):
    """Hold probe's relay lock on another connection for up to ``seconds``, or until the block ends."""
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with relay_lock(ALIAS, "probe") as acquired:
                assert acquired
                holding.set()
                release.wait(timeout=seconds)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert holding.wait(timeout=10), "the relay lock was not taken within 10 s"
        yield
    finally:
        release.set()
        holder.join(timeout=30)


class TestOutboxRepublish:
    def test_republishes_rows_since_in_id_order(self, restartable_bus, nats_server):
        envelopes = appended_rows(4, aggregates=2)
        assert relay_outbox(module="probe", bus=restartable_bus).published == 4
        since = timezone.now() - timedelta(minutes=5)
        set_published_at(envelopes[0], since - timedelta(seconds=1))
        pending = publish_probe("pending", aggregate_id="agg-9")
        lose_stream(restartable_bus, nats_server.url)

        result = outbox_republish(module="probe", since=since, bus=restartable_bus, batch_size=2)

        assert result.republished == 3
        assert result.duplicates == 0
        assert result.failed == 0
        assert result.held == 0
        assert result.errors == []
        stored = [document["event_id"] for document in stream_envelopes(nats_server.url, STREAM)]
        assert stored == [str(envelope.event_id) for envelope in envelopes[1:]]
        assert OutboxEvent.objects.using(ALIAS).get(event_id=pending.event_id).state == OutboxState.PENDING

    def test_keeps_rows_unchanged(self, restartable_bus, nats_server):
        appended_rows(2)
        relay_outbox(module="probe", bus=restartable_bus)
        before = list(OutboxEvent.objects.using(ALIAS).order_by("id").values())
        lose_stream(restartable_bus, nats_server.url)

        outbox_republish(module="probe", since=timezone.now() - timedelta(hours=1), bus=restartable_bus)

        assert list(OutboxEvent.objects.using(ALIAS).order_by("id").values()) == before

    def test_repeat_is_dropped_as_duplicates(self, restartable_bus, nats_server):
        appended_rows(3)
        relay_outbox(module="probe", bus=restartable_bus)
        since = timezone.now() - timedelta(hours=1)

        result = outbox_republish(module="probe", since=since, bus=restartable_bus)

        assert result.republished == 3
        assert result.duplicates == 3
        assert stream_message_count(nats_server.url, STREAM) == 3

    def test_failed_event_holds_back_its_aggregate(self, restartable_bus, nats_server):
        envelopes = appended_rows(6, aggregates=2)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)
        # agg-0 has envelopes 0, 2 and 4, and the first of them fails.
        failing = FailingBus(restartable_bus, {str(envelopes[0].event_id)})

        result = outbox_republish(
            module="probe", since=timezone.now() - timedelta(hours=1), bus=failing, batch_size=2
        )

        assert result.republished == 3
        assert result.failed == 1
        assert result.held == 2
        assert result.errors == [f"injected failure for {envelopes[0].event_id}"]
        assert failing.sent == [str(envelopes[index].event_id) for index in (0, 1, 3, 5)]
        stored = [document["event_id"] for document in stream_envelopes(nats_server.url, STREAM)]
        assert stored == [str(envelopes[index].event_id) for index in (1, 3, 5)]

    def test_nothing_since_sends_nothing(self, restartable_bus, nats_server):
        appended_rows(2)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)

        result = outbox_republish(module="probe", since=timezone.now() + timedelta(minutes=1), bus=restartable_bus)

        assert result.republished == 0
        assert stream_message_count(nats_server.url, STREAM) == 0

    def test_naive_since_is_rejected(self, restartable_bus, nats_server):
        appended_rows(1)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)

        with pytest.raises(RepublishSinceNaive) as raised:
            outbox_republish(module="probe", since=datetime(2026, 12, 4, 9, 30), bus=restartable_bus)

        assert raised.value.code == "republish_since_naive"
        assert str(raised.value) == "since=2026-12-04T09:30:00 has no time zone; pass an aware datetime"
        assert stream_message_count(nats_server.url, STREAM) == 0

    @pytest.mark.django_db(transaction=True, databases="__all__")
    def test_locked_out_while_relay_holds_lock(self, restartable_bus, nats_server):
        appended_rows(1)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)

        with relay_lock_held(seconds=20):
            result = outbox_republish(module="probe", since=timezone.now() - timedelta(hours=1), bus=restartable_bus)

        assert result.locked_out is True
        assert result.republished == 0
        assert stream_message_count(nats_server.url, STREAM) == 0


class TestOutboxRepublishCount:
    def test_counts_published_rows_since(self, restartable_bus):
        envelopes = appended_rows(3)
        relay_outbox(module="probe", bus=restartable_bus)
        since = timezone.now() - timedelta(minutes=5)
        set_published_at(envelopes[0], since - timedelta(microseconds=1))
        set_published_at(envelopes[1], since)
        publish_probe("pending", aggregate_id="agg-9")

        assert outbox_republish_count(module="probe", since=since) == 2


class TestRelayOutboxRepublishCommand:
    def test_without_yes_only_counts(self, restartable_bus, nats_server):
        appended_rows(3)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)
        since = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)

        stdout, stderr = run("relay_outbox", "--module", "probe", "--republish-since", since.isoformat())

        assert stdout == (
            f"probe: 3 published row(s) since {since.isoformat()} to re-publish\n"
            "Nothing was published; run again with --yes to re-publish them\n"
        )
        assert stderr == ""
        assert stream_message_count(nats_server.url, STREAM) == 0

    def test_yes_republishes_and_reports(self, restartable_bus, nats_server):
        envelopes = appended_rows(3)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)
        since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

        stdout, stderr = run("relay_outbox", "--module", "probe", "--republish-since", since, "--yes")

        assert stdout == "probe: re-published 3 (0 already in the stream), failed 0, held back 0\n"
        assert stderr == ""
        stored = [document["event_id"] for document in stream_envelopes(nats_server.url, STREAM)]
        assert stored == [str(envelope.event_id) for envelope in envelopes]

    def test_repeat_reports_duplicates(self, restartable_bus, nats_server):
        appended_rows(2)
        relay_outbox(module="probe", bus=restartable_bus)
        since = (timezone.now() - timedelta(hours=1)).isoformat()

        stdout, _ = run("relay_outbox", "--module", "probe", "--republish-since", since, "--yes")

        assert stdout == "probe: re-published 2 (2 already in the stream), failed 0, held back 0\n"
        assert stream_message_count(nats_server.url, STREAM) == 2

    def test_since_before_retention_notes_purged_rows(self, restartable_bus, nats_server, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_SECONDS": 3600}
        appended_rows(1)
        relay_outbox(module="probe", bus=restartable_bus)
        since = timezone.now() - timedelta(hours=2)

        stdout, _ = run("relay_outbox", "--module", "probe", "--republish-since", since.isoformat())

        first_line = stdout.splitlines()[0]
        assert first_line.startswith("Note: rows published before ")
        assert first_line.endswith(
            " may have been purged after the retention period of 1:00:00 and cannot be re-published"
        )
        assert stdout.splitlines()[1] == f"probe: 1 published row(s) since {since.isoformat()} to re-publish"

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (
                "2026-12-04T09:30:00",
                "--republish-since '2026-12-04T09:30:00' has no time zone; add one, as in "
                "2026-12-04T09:30:00+00:00 or 2026-12-04T09:30:00Z",
            ),
            (
                "2026-12-01",
                "--republish-since '2026-12-01' has no time zone; add one, as in "
                "2026-12-01T00:00:00+00:00 or 2026-12-01T00:00:00Z",
            ),
            (
                "yesterday",
                "--republish-since 'yesterday' is not an ISO 8601 timestamp; use a form like "
                "2026-12-04T09:30:00+00:00",
            ),
            (
                "2026-13-04T09:30:00Z",
                "--republish-since '2026-13-04T09:30:00Z' is not an ISO 8601 timestamp; use a form like "
                "2026-12-04T09:30:00+00:00",
            ),
        ],
    )
    def test_invalid_time_is_rejected(self, restartable_bus, nats_server, value, message):
        appended_rows(1)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)

        with pytest.raises(CommandError) as raised:
            run("relay_outbox", "--module", "probe", "--republish-since", value, "--yes")

        assert str(raised.value) == message
        assert stream_message_count(nats_server.url, STREAM) == 0

    @pytest.mark.django_db(transaction=True, databases="__all__")
    def test_waits_for_running_relay(self, restartable_bus, nats_server):
        appended_rows(2)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)
        since = (timezone.now() - timedelta(hours=1)).isoformat()

        with relay_lock_held(seconds=1.5):
            stdout, stderr = run("relay_outbox", "--module", "probe", "--republish-since", since, "--yes")

        assert stdout == "probe: re-published 2 (0 already in the stream), failed 0, held back 0\n"
        assert stderr == ""
        assert stream_message_count(nats_server.url, STREAM) == 2

    @pytest.mark.django_db(transaction=True, databases="__all__")
    def test_lock_held_throughout_fails(self, restartable_bus, nats_server, monkeypatch):
        monkeypatch.setattr(relay_outbox_command, "LOCK_ATTEMPTS", 2)
        appended_rows(1)
        relay_outbox(module="probe", bus=restartable_bus)
        lose_stream(restartable_bus, nats_server.url)
        since = (timezone.now() - timedelta(hours=1)).isoformat()
        stdout, stderr = io.StringIO(), io.StringIO()

        with relay_lock_held(seconds=20), pytest.raises(CommandError) as raised:
            call_command(
                "relay_outbox", "--module", "probe", "--republish-since", since, "--yes", stdout=stdout, stderr=stderr
            )

        assert str(raised.value) == (
            "some events were not re-published; run the same command again, which is safe to repeat"
        )
        assert stderr.getvalue() == "probe: another relay held the outbox lock throughout; nothing re-published\n"
        assert stdout.getvalue() == ""
        assert stream_message_count(nats_server.url, STREAM) == 0

    def test_yes_without_republish_is_rejected(self, restartable_bus):
        publish_probe("pending")

        with pytest.raises(CommandError) as raised:
            run("relay_outbox", "--module", "probe", "--yes")

        assert str(raised.value) == "--yes applies only to --republish-since TIME"
        assert OutboxEvent.objects.using(ALIAS).get().state == OutboxState.PENDING

    def test_republish_excludes_follow(self, restartable_bus):
        with pytest.raises(CommandError) as raised:
            run("relay_outbox", "--follow", "--republish-since", "2026-12-04T09:30:00Z")

        assert str(raised.value) == (
            "Error: argument --republish-since: not allowed with argument --follow"
        )
