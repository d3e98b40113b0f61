#!/usr/bin/env python
"""Relay the same events with this platform's relay and with the public nats-outbox package.

nats-outbox (PyPI, version pinned in the ``bench`` extra of pyproject.toml)
is a transactional outbox for PostgreSQL and NATS JetStream. Its
``PollingRelay`` claims up to ``batch_size`` pending rows with SELECT ... FOR
UPDATE SKIP LOCKED in one transaction, publishes them one at a time with
``js.publish`` (each PubAck awaited before the next publish, Nats-Msg-Id =
event id), and commits the batch's status updates at the end; it loops
without sleeping while rows are found.

Both relays get --events events whose bodies are the same envelopes: the
probe module's outbox is filled as bench/bus_throughput.py fills it, and
each envelope is also written to nats-outbox's ``outbox_events`` table as its
JSONB payload. Each relay publishes into its own stream declared with the
platform's stream settings, on one throwaway nats-server, from a throwaway
database each. Timed: from the start of the relay until every row is marked
published. Both run in this process, one after the other, with the same batch
size (EVENTBUS_RELAY_BATCH_SIZE).

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/outbox_comparison.py --events 20000
"""

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time

import benchlib

sys.path.insert(0, str(benchlib.ROOT))
# Events appended per transaction while an outbox is filled.
FILL_CHUNK = 1000
AGGREGATES = 1000
STREAM_MODULE = "natsoutbox"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="Events each relay publishes (default: 20000).")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds each relay may take (default: 600).")
    benchlib.add_json_argument(parser)
    options = parser.parse_args()
    if options.events < 1:
        parser.error(f"--events {options.events} must be at least 1")
    server_url = benchlib.server_url_or_exit(parser)
    try:
        import nats_outbox  # noqa: F401
    except ImportError:
        parser.error("nats-outbox is not installed; install the bench extra: pip install -e '.[bench]'")
    benchlib.sigterm_as_exit()

    with (
        benchlib.ThrowawayNats() as nats_server,
        benchlib.ThrowawayDatabase(server_url, "relay_ours") as ours,
        benchlib.ThrowawayDatabase(server_url, "relay_natsoutbox") as theirs,
    ):
        try:
            configure_django(ours.url, nats_server.url)
            bodies = fill_probe_outbox(options.events)
            our_seconds, batch_size = relay_ours(options.events, options.timeout)
            stream = platform_stream()
        finally:
            if "django.db" in sys.modules:
                sys.modules["django.db"].connections.close_all()
            if "eventbus.backends" in sys.modules:
                sys.modules["eventbus.backends"].get_bus().close()
        their_seconds, their_bytes = asyncio.run(
            relay_nats_outbox(theirs.url, nats_server.url, bodies, stream, batch_size, options.timeout)
        )

    our_bytes = sum(len(body) for body in bodies) / len(bodies)
    figures = {
        "events": options.events,
        "batch_size": batch_size,
        "ours": options.events / our_seconds,
        "nats_outbox": options.events / their_seconds,
        "ours_body_bytes": our_bytes,
        "nats_outbox_body_bytes": their_bytes,
    }
    table = benchlib.Table(
        f"Outbox relays side by side: {options.events} events, batch {batch_size}, outbox to JetStream",
        ["relay", "mean body bytes", "seconds", "events/s"],
    )
    table.add("this platform (relay_outbox)", our_bytes, our_seconds, figures["ours"])
    table.add("nats-outbox 0.1.0 (PollingRelay)", their_bytes, their_seconds, figures["nats_outbox"])
    benchlib.write_result(options.json, [table], figures)
    return 0


def configure_django(database_url: str, nats_url: str) -> None:
    os.environ.update({
        "DATABASE_URL": database_url, "EVENT_BUS": "nats", "NATS_URL": nats_url,
        "DJANGO_SETTINGS_MODULE": "tests.settings", "LOG_LEVEL": "WARNING",
    })
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    for alias in connections:
        call_command("migrate", database=alias, verbosity=0)


def fill_probe_outbox(count: int) -> list[bytes]:
    """Append ``count`` probe events to the probe outbox and return their bodies in id order."""
    from django.db import transaction
    from django.utils import timezone

    from eventbus.outbox import NewEvent, outbox_append_many
    from eventbus.registry import get_module
    from tests.probe import events

    for start in range(0, count, FILL_CHUNK):
        batch = [
            NewEvent(events.VALUE_SET, "probe", f"agg-{index % AGGREGATES}", index // AGGREGATES + 1, "bench",
                     {"value": str(index)})
            for index in range(start, min(start + FILL_CHUNK, count))
        ]
        with transaction.atomic(using="notifications"):
            outbox_append_many(module="probe", events=batch, occurred_at=timezone.now())
    probe = get_module("probe")
    return [body.encode() for body in probe.outbox.objects.using(probe.alias).order_by("id").values_list("body", flat=True)]


def relay_ours(count: int, timeout: float) -> tuple[float, int]:
    from eventbus.backends import get_bus
    from eventbus.conf import bus_settings
    from eventbus.relay import relay_outbox

    bus = get_bus()
    bus.ensure()
    started = time.perf_counter()
    published = 0
    while published < count:
        result = relay_outbox(module="probe", bus=bus)
        published += result.published
        if result.failed:
            raise SystemExit(f"our relay failed: {result.errors[0]}")
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"our relay published {published} of {count} events within {timeout:.0f} s")
    return time.perf_counter() - started, bus_settings().relay_batch_size


def platform_stream():
    from eventbus.backends.nats import stream_config
    from eventbus.conf import bus_settings

    return dataclasses.replace(stream_config(STREAM_MODULE, bus_settings()), subjects=[f"{STREAM_MODULE}.events.>"])


async def relay_nats_outbox(database_url, nats_url, bodies, stream, batch_size, timeout) -> tuple[float, float]:
    import nats
    from nats_outbox.core.models import create_tables
    from nats_outbox.publishers.nats_publisher import NatsPublisher
    from nats_outbox.relay.polling import PollingRelay
    from nats_outbox.settings import OutboxSettings
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    dsn = benchlib.libpq_url(database_url).replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(dsn)
    client = await nats.connect(nats_url, name="bench-nats-outbox")
    try:
        js = client.jetstream()
        await js.add_stream(stream)
        await create_tables(engine)
        rows = []
        for body in bodies:
            envelope = json.loads(body)
            rows.append({
                "event_id": envelope["event_id"],
                "subject": f"{STREAM_MODULE}.events.{envelope['event_type']}",
                "headers": json.dumps({"Nats-Msg-Id": envelope["event_id"]}),
                "payload": json.dumps(envelope),
                "aggregate_id": envelope["aggregate_id"],
                "aggregate_type": envelope["aggregate_type"],
            })
        async with engine.begin() as connection:
            for start in range(0, len(rows), FILL_CHUNK):
                await connection.execute(
                    text(
                        "INSERT INTO outbox_events (event_id, subject, headers, payload, status, retry_count, "
                        "aggregate_id, aggregate_type) VALUES (CAST(:event_id AS uuid), :subject, "
                        "CAST(:headers AS jsonb), CAST(:payload AS jsonb), 'pending', 0, :aggregate_id, "
                        ":aggregate_type)"
                    ),
                    rows[start:start + FILL_CHUNK],
                )
        # The bytes it publishes: its publisher serializes the JSONB payload with json.dumps.
        published_bytes = sum(
            len(json.dumps(json.loads(row["payload"]), ensure_ascii=False).encode()) for row in rows
        ) / len(rows)

        settings = OutboxSettings(database_url=dsn, nats_url=nats_url, batch_size=min(batch_size, 1000))
        relay = PollingRelay(async_sessionmaker(engine, expire_on_commit=False), NatsPublisher(js), settings)
        started = time.perf_counter()
        task = asyncio.create_task(relay.start())
        try:
            while True:
                await asyncio.sleep(0.1)
                async with engine.connect() as connection:
                    pending = (await connection.execute(
                        text("SELECT count(*) FROM outbox_events WHERE status <> 'published'")
                    )).scalar_one()
                if pending == 0:
                    break
                if task.done():
                    raise SystemExit(f"nats-outbox's relay stopped with {pending} events unpublished: {task.exception()!r}")
                if time.perf_counter() - started > timeout:
                    raise SystemExit(f"nats-outbox left {pending} events unpublished after {timeout:.0f} s")
            seconds = time.perf_counter() - started
        finally:
            await relay.stop()
            await asyncio.wait_for(task, timeout=60)
    finally:
        await client.close()
        await engine.dispose()
    return seconds, published_bytes


if __name__ == "__main__":
    sys.exit(main())
