"""The bus's management commands: relay_outbox, bus, dead_letters, purge_outbox, run_consumers, migrate."""

import io
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from eventbus.consumer import deliver
from eventbus.models import DeadLetterStatus, OutboxState
from eventbus.registry import all_modules, get_module
from tests.eventbus.conftest import publish_probe
from tests.probe import events
from tests.probe.models import DeadLetter, OutboxEvent, ProbeEffect, ProbeSwitch
from tests.support import ROOT, free_port

pytestmark = pytest.mark.django_db(databases="__all__")
ALIAS = "notifications"


def run(*args) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def registered_modules() -> str:
    return ", ".join(sorted(module.name for module in all_modules()))


class TestRelayOutboxCommand:
    def test_once_publishes_pending_rows(self, nats_bus):
        publish_probe("a", aggregate_id="a")
        publish_probe("b", aggregate_id="b")

        stdout, stderr = run("relay_outbox", "--once", "--module", "probe")

        assert stdout == "probe: published 2, failed 0, held back 0\n"
        assert stderr == ""
        assert not OutboxEvent.objects.using(ALIAS).filter(state=OutboxState.PENDING).exists()

    def test_unknown_module_is_named(self, nats_bus):
        with pytest.raises(CommandError) as raised:
            run("relay_outbox", "--once", "--module", "probe", "--module", "nope")

        assert str(raised.value) == f"unknown bus module 'nope'; registered modules: {registered_modules()}"

    def test_non_positive_interval_is_rejected(self, nats_bus):
        with pytest.raises(CommandError) as raised:
            run("relay_outbox", "--follow", "--interval", "0")

        assert str(raised.value) == "--interval 0.0 must be a number of seconds above 0 and at most 3600"

    @pytest.mark.parametrize("value", ["nan", "inf", "-1", "3601", "1e300"])
    def test_interval_that_is_no_duration_is_rejected(self, nats_bus, value):
        publish_probe("stays pending")

        with pytest.raises(CommandError) as raised:
            run("relay_outbox", "--follow", "--interval", value)

        assert str(raised.value) == f"--interval {float(value)} must be a number of seconds above 0 and at most 3600"
        assert OutboxEvent.objects.using(ALIAS).get().state == OutboxState.PENDING

    def test_unreachable_bus_leaves_rows_pending(self, settings):
        url = f"nats://127.0.0.1:{free_port()}"
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "nats", "NATS_URLS": [url]}
        from eventbus.backends import reset_bus

        reset_bus()
        publish_probe("stuck")

        with pytest.raises(CommandError) as raised:
            run("relay_outbox", "--once", "--module", "probe")

        reset_bus()
        assert str(raised.value) == "some events were not published; they stay pending and are retried"
        row = OutboxEvent.objects.using(ALIAS).get()
        assert row.state == OutboxState.PENDING
        assert row.publish_attempts == 1
        assert row.last_error.startswith(f"cannot connect to NATS at {url} within 5 s: ")


class TestBusCommand:
    def test_ensure_creates_streams_and_consumers(self, nats_bus):
        stdout, _ = run("bus", "ensure")

        lines = stdout.splitlines()
        assert "created stream PROBE_EVENTS" in lines
        assert "created consumer probe on PROBE_EVENTS" in lines
        for module in all_modules():
            assert f"created stream {module.stream}" in lines
        assert lines[-1] == f"nats bus: {len(lines) - 1} change(s); streams and consumers match the code"

    def test_status_reports_streams_consumers_and_outbox_backlog(self, nats_bus):
        run("relay_outbox", "--once", "--module", "probe")
        publish_probe("published", aggregate_id="a")
        run("relay_outbox", "--once", "--module", "probe")
        publish_probe("waiting", aggregate_id="b")
        OutboxEvent.objects.using(ALIAS).filter(state=OutboxState.PENDING).update(
            created_at=timezone.now() - timedelta(seconds=90)
        )

        text, _ = run("bus", "status")
        document = json.loads(run("bus", "status", "--json")[0])

        probe_lines = [line for line in text.splitlines() if "probe" in line.lower()]
        assert probe_lines[0] == "  stream PROBE_EVENTS           messages         1"
        assert probe_lines[1] == "  consumer probe          on PROBE_EVENTS           pending       1  unacked     0  redelivered     0"
        assert re.fullmatch(
            r"  probe          pending       1  failing     0  oldest  +(9\d|1[0-4]\d)\.\d s  dead letters 0",
            probe_lines[2],
        )
        assert text.splitlines()[0] == "Backend: nats"
        assert document["backend"] == "nats"
        stream = next(row for row in document["bus"] if row["stream"] == "PROBE_EVENTS" and "consumer" not in row)
        assert stream["messages"] == 1
        consumer = next(row for row in document["bus"] if row.get("consumer") == "probe")
        assert consumer["pending"] == 1
        assert consumer["ack_pending"] == 0
        outbox = next(row for row in document["outboxes"] if row["module"] == "probe")
        assert outbox["pending"] == 1
        assert outbox["failing"] == 0
        assert outbox["dead_letters"] == 0
        assert 90 <= outbox["oldest_pending_age_seconds"] < 150

    def test_status_flags_missing_consumer(self, nats_bus):
        from tests.eventbus.conftest import run_nats

        nats_bus.ensure()

        async def delete(js):
            await js.delete_consumer("PROBE_EVENTS", "probe")

        run_nats(os.environ["NATS_URL"], delete)
        stdout = io.StringIO()

        with pytest.raises(CommandError) as raised:
            call_command("bus", "status", stdout=stdout)

        assert "  consumer probe on PROBE_EVENTS: MISSING (run manage.py bus ensure)" in stdout.getvalue().splitlines()
        assert str(raised.value) == "1 stream(s) or consumer(s) are missing; run manage.py bus ensure"

    def test_empty_outbox_has_no_oldest_age(self, nats_bus):
        nats_bus.ensure()
        document = json.loads(run("bus", "status", "--json")[0])

        outbox = next(row for row in document["outboxes"] if row["module"] == "probe")
        assert outbox == {
            "module": "probe", "pending": 0, "failing": 0, "oldest_pending_age_seconds": None, "dead_letters": 0,
        }


def make_dead_letter() -> DeadLetter:
    ProbeSwitch.objects.using(ALIAS).create(name="flaky-fails")
    envelope = publish_probe("flaky", event_type=events.FLAKY)
    row = OutboxEvent.objects.using(ALIAS).get(event_id=envelope.event_id)
    deliver(module=get_module("probe"), subject=row.subject, body=row.body.encode(), delivery=1, max_deliver=1)
    return DeadLetter.objects.using(ALIAS).get(event_id=envelope.event_id)


class TestDeadLettersCommand:
    def test_list_shows_dead_letters(self, bus):
        dead = make_dead_letter()

        stdout, _ = run("dead_letters", "list", "--module", "probe")

        lines = stdout.splitlines()
        assert lines[0].startswith(f"probe          #{dead.id:<6} handler_failed         probe.flaky.happened")
        assert "deliveries 1  Traceback (most recent call last):" in lines[0]
        assert lines[1] == "1 dead letter(s)"

    def test_replay_applies_after_the_fix(self, bus):
        dead = make_dead_letter()
        ProbeSwitch.objects.using(ALIAS).all().delete()

        stdout, _ = run("dead_letters", "replay", "--module", "probe", "--id", str(dead.id))

        assert stdout == f"#{dead.id}: replayed\n"
        dead.refresh_from_db()
        assert dead.status == DeadLetterStatus.REPLAYED
        assert ProbeEffect.objects.using(ALIAS).filter(event_id=dead.event_id).count() == 1

    def test_replay_that_fails_again_keeps_the_row_dead(self, bus):
        dead = make_dead_letter()

        with pytest.raises(CommandError) as raised:
            run("dead_letters", "replay", "--module", "probe", "--all")

        assert str(raised.value) == "1 replay(s) failed; the rows stay dead with the new error"
        dead.refresh_from_db()
        assert dead.status == DeadLetterStatus.DEAD
        assert ProbeEffect.objects.using(ALIAS).count() == 0

    def test_discard_needs_yes(self, bus):
        dead = make_dead_letter()

        with pytest.raises(CommandError) as raised:
            run("dead_letters", "discard", "--module", "probe", "--id", str(dead.id))

        assert str(raised.value) == "discarding 1 dead letter(s) cannot be undone; add --yes to confirm"
        dead.refresh_from_db()
        assert dead.status == DeadLetterStatus.DEAD

        stdout, _ = run("dead_letters", "discard", "--module", "probe", "--id", str(dead.id), "--yes")

        assert stdout == f"#{dead.id}: discarded\n"
        dead.refresh_from_db()
        assert dead.status == DeadLetterStatus.DISCARDED
        assert ProbeEffect.objects.using(ALIAS).count() == 0

    def test_unknown_dead_letter_is_named(self, bus):
        with pytest.raises(CommandError) as raised:
            run("dead_letters", "replay", "--module", "probe", "--id", "999999")

        assert str(raised.value) == (
            "dead letter 999999 does not exist in module 'probe'; list them with manage.py "
            "dead_letters list --module probe"
        )

    @pytest.mark.parametrize("action", ["list", "replay"])
    def test_unknown_module_is_named(self, bus, action):
        with pytest.raises(CommandError) as raised:
            run("dead_letters", action, "--module", "nope", "--id", "1")

        assert str(raised.value) == f"unknown bus module 'nope'; registered modules: {registered_modules()}"

    def test_negative_id_is_not_found(self, bus):
        with pytest.raises(CommandError) as raised:
            run("dead_letters", "discard", "--module", "probe", "--id", "-3", "--yes")

        assert str(raised.value) == (
            "dead letter -3 does not exist in module 'probe'; list them with manage.py "
            "dead_letters list --module probe"
        )

    def test_replay_needs_module(self, bus):
        with pytest.raises(CommandError) as raised:
            run("dead_letters", "replay", "--id", "1")

        assert str(raised.value) == "replay needs --module M"

    def test_replay_needs_ids(self, bus):
        with pytest.raises(CommandError) as raised:
            run("dead_letters", "replay", "--module", "probe")

        assert str(raised.value) == "name the dead letters with --id N (repeatable) or pass --all"


class TestPurgeOutboxCommand:
    def test_purge_reports_each_module(self, bus, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "OUTBOX_RETENTION_SECONDS": 3600}
        envelope = publish_probe("old")
        OutboxEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).update(
            state=OutboxState.PUBLISHED, published_at=timezone.now() - timedelta(hours=2)
        )

        stdout, _ = run("purge_outbox")

        assert "probe: purged 1 published row(s)" in stdout.splitlines()
        assert len(stdout.splitlines()) == len(all_modules())
        assert OutboxEvent.objects.using(ALIAS).count() == 0


class TestRunConsumersCommand:
    def test_in_process_bus_is_refused(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}

        with pytest.raises(CommandError) as raised:
            run("run_consumers", "--module", "probe")

        assert str(raised.value) == (
            "run_consumers needs EVENT_BUS=nats; the in-process bus delivers inside the relay "
            "(manage.py relay_outbox), so no consumer process is needed"
        )

    def test_unknown_module_is_named(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "nats"}

        with pytest.raises(CommandError) as raised:
            run("run_consumers", "--module", "nope")

        assert str(raised.value) == f"unknown bus module 'nope'; registered modules: {registered_modules()}"

    @pytest.mark.parametrize("port", ["-1", "70000"])
    def test_port_out_of_range_is_rejected(self, settings, port):
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "nats"}

        with pytest.raises(CommandError) as raised:
            run("run_consumers", "--module", "probe", "--metrics-port", port)

        assert str(raised.value) == f"--metrics-port {port} is not a TCP port; use 1 to 65535"


class TestRunConsumersMisconfigured:
    pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

    def test_memory_stream_stops_the_command(self, nats_bus):
        from nats.js.api import StorageType, StreamConfig

        from tests.eventbus.conftest import run_nats

        async def work(js):
            await js.add_stream(StreamConfig(name="PROBE_EVENTS", subjects=["probe.events.>"], storage=StorageType.MEMORY))

        run_nats(os.environ["NATS_URL"], work)

        with pytest.raises(CommandError) as raised:
            run("run_consumers", "--module", "probe")

        assert str(raised.value) == (
            "stream PROBE_EVENTS uses memory storage but must be file-backed; move its messages "
            "elsewhere, delete it (nats stream rm PROBE_EVENTS) and run manage.py bus ensure"
        )


@pytest.fixture
def fresh_database():
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    server_url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    name = f"test_bus_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name
    yield url
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TestMigrateCommand:
    def test_migrate_sets_up_every_module(self, fresh_database):
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "billing.settings",
            "DATABASE_URL": fresh_database,
            "BILLING_ON_TEST_DATABASES": "",
        }
        command = [sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input"]

        first = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True, timeout=120)
        second = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True, timeout=120)

        assert first.returncode == 0, first.stderr
        assert second.returncode == 0, second.stderr
        assert second.stdout.count("No migrations to apply.") == 5
        with psycopg.connect(fresh_database) as connection:
            tables = set(
                connection.execute(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables"
                ).fetchall()
            )
        tables = {table for (table,) in tables}
        for module in ("subscriptions", "ar", "payments", "notifications"):
            assert f"{module}.django_migrations" in tables
            for model in ("outboxevent", "processedevent", "deadletter"):
                assert f"{module}.{module}_{model}" in tables
        assert "public.django_migrations" in tables
        assert "public.auth_user" in tables
        assert "public.ar_outboxevent" not in tables


class TestCommandEdges:
    def test_replay_all_with_no_dead_letters_succeeds(self, bus):
        stdout, _ = run("dead_letters", "replay", "--module", "probe", "--all")

        assert stdout == "module 'probe' has no dead letters to replay\n"
