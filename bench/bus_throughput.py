#!/usr/bin/env python
"""Measure the event bus's throughput on PostgreSQL and NATS JetStream.

Two figures, for orientation rather than as a benchmark record:

- relay: events per second from a full outbox into JetStream
  (``relay_outbox`` with pipelined publishes, waiting for every PubAck);
- consumer: events per second from a full stream through the inbox and a
  handler that does nothing (``ConsumerRunner``, one durable pull consumer).

It creates a throwaway database on the PostgreSQL server of DATABASE_URL,
migrates it, and drops it at the end. On the NATS server it deletes and
recreates the stream PROBE_EVENTS, and declares the other modules' streams
and consumers as ``manage.py bus ensure`` would. Run it through
scripts/testenv.py, which provides both servers:

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bus_throughput.py --events 20000
"""

import argparse
import asyncio
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import benchlib

ROOT = Path(__file__).resolve().parent.parent
# Events appended per transaction while the outbox is filled.
FILL_CHUNK = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="Events to relay and consume (default: 20000).")
    parser.add_argument(
        "--aggregates", type=int, default=1000,
        help="Distinct aggregates the events belong to; the relay publishes at most one event "
        "per aggregate at a time (default: 1000).",
    )
    parser.add_argument(
        "--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="JetStream server to use (default: $NATS_URL or nats://127.0.0.1:4222).",
    )
    parser.add_argument("--timeout", type=float, default=600, help="Seconds each phase may take (default: 600).")
    benchlib.add_json_argument(parser)
    options = parser.parse_args()
    if options.events < 1 or options.aggregates < 1:
        parser.error("--events and --aggregates must be at least 1")

    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must point at a PostgreSQL server; run through scripts/testenv.py")

    benchlib.sigterm_as_exit()
    database = f"bench_bus_{uuid.uuid4().hex[:8]}"
    create_database(server_url, database)
    try:
        configure_django(server_url.rsplit("/", 1)[0] + "/" + database, options.nats_url)
        rows, body_bytes = run_benchmark(options)
    finally:
        close_django_connections()
        drop_database(server_url, database)

    print_table(rows, options, body_bytes)
    return 0


def create_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def configure_django(database_url: str, nats_url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ["EVENT_BUS"] = "nats"
    os.environ["NATS_URL"] = nats_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def run_benchmark(options) -> list[tuple[str, int, float]]:
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from billing.tenancy.services import tenant_ensure
    from eventbus.backends import get_bus

    for alias in connections:
        call_command("migrate", database=alias, verbosity=0)
    module = install_trivial_handler()
    delete_probe_stream(options.nats_url)
    bus = get_bus()
    bus.ensure()

    # The consumer dead-letters events of a tenant that does not exist.
    tenant_ensure(tenant_id="bench", name="Benchmark tenant", now=timezone.now())
    fill_outbox(options.events, options.aggregates)
    body_bytes = mean_body_bytes(module)
    relay_seconds = measure_relay(bus, options.events, options.timeout)
    consume_seconds = measure_consumer(module, options.events, options.timeout)
    bus.close()
    return [("relay: outbox -> JetStream", options.events, relay_seconds),
            ("consumer: JetStream -> inbox + handler", options.events, consume_seconds)], body_bytes


def mean_body_bytes(module) -> int:
    from django.db.models import Avg
    from django.db.models.functions import Length

    average = module.outbox.objects.using(module.alias).aggregate(size=Avg(Length("body")))["size"]
    return round(average or 0)


def install_trivial_handler():
    """Register the probe module again with one handler that does nothing."""
    from eventbus.registry import BusModule, HandlerRegistry, get_module, register_module
    from tests.probe import events

    registry = HandlerRegistry()

    @registry.on(events.VALUE_SET)
    def do_nothing(envelope, payload) -> None:
        pass

    probe = get_module("probe")
    module = BusModule(
        name="probe", alias=probe.alias, outbox=probe.outbox, inbox=probe.inbox,
        dead_letters=probe.dead_letters, handlers=registry,
    )
    register_module(module)
    return module


def delete_probe_stream(url: str) -> None:
    import nats
    import nats.js.errors

    async def run():
        client = await nats.connect(url)
        try:
            await client.jetstream().delete_stream("PROBE_EVENTS")
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await client.close()

    asyncio.run(run())


def fill_outbox(count: int, aggregates: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from eventbus.outbox import NewEvent, outbox_append_many
    from tests.probe import events

    versions = [0] * aggregates
    for start in range(0, count, FILL_CHUNK):
        batch = []
        for index in range(start, min(start + FILL_CHUNK, count)):
            aggregate = index % aggregates
            versions[aggregate] += 1
            batch.append(
                NewEvent(events.VALUE_SET, "probe", f"agg-{aggregate}", versions[aggregate], "bench", {"value": str(index)})
            )
        with transaction.atomic(using="notifications"):
            outbox_append_many(module="probe", events=batch, occurred_at=timezone.now())


def measure_relay(bus, count: int, timeout: float) -> float:
    from eventbus.relay import relay_outbox

    started = time.perf_counter()
    published = 0
    while published < count:
        result = relay_outbox(module="probe", bus=bus)
        published += result.published
        if result.failed:
            raise SystemExit(f"relay failed: {result.errors[0]}")
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"relay published {published} of {count} events within {timeout:.0f} s")
    return time.perf_counter() - started


def measure_consumer(module, count: int, timeout: float) -> float:
    from django.db import connections

    from eventbus.runner import ConsumerRunner

    inbox = module.inbox.objects.using(module.alias)
    runner = ConsumerRunner([module], name="bench-consumer")
    loop = asyncio.new_event_loop()
    errors = []

    def run():
        try:
            loop.run_until_complete(runner.run())
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        while runner.processed < count:
            if errors:
                raise SystemExit(f"consumer failed: {errors[0]!r}")
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"consumer applied {runner.processed} of {count} events within {timeout:.0f} s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        loop.call_soon_threadsafe(runner.stop)
        thread.join(timeout=30)
    applied = inbox.count()
    if applied != count:
        raise SystemExit(f"the inbox contains {applied} events, expected {count}")
    return elapsed


def print_table(rows, options, body_bytes: int) -> None:
    table = benchlib.Table(
        f"Bus throughput: {options.events} events of {body_bytes} bytes over {options.aggregates} aggregates",
        ["phase", "events", "seconds", "events/s"],
    )
    for phase, count, seconds in rows:
        table.add(phase, count, seconds, count / seconds)
    figures = {
        "events": options.events,
        "body_bytes": body_bytes,
        "relay": rows[0][1] / rows[0][2],
        "consumer": rows[1][1] / rows[1][2],
    }
    benchlib.write_result(options.json, [table], figures)


if __name__ == "__main__":
    sys.exit(main())
