#!/usr/bin/env python
"""Measure this machine's raw limits for the bus's database and JetStream work.

No Django model, relay or consumer code runs in the timed parts. Bare psycopg
writes to tables shaped like an outbox and an inbox. Bare nats-py publishes to
a stream declared with the platform's own stream and consumer settings, which
are read once from Django's settings before timing. Each figure is events per
second:

- outbox insert, one transaction per event: BEGIN, INSERT one row, COMMIT,
  as a service appends one event with its business rows;
- outbox insert, bulk: one multi-row INSERT per transaction, as
  ``outbox_append_many`` does with ``bulk_create``;
- claim and mark: the relay's database side, SELECT the oldest pending rows
  (batch of EVENTBUS_RELAY_BATCH_SIZE), then one UPDATE marking them
  published in its own transaction;
- inbox insert and commit: BEGIN, INSERT one inbox row, COMMIT, per message;
- JetStream publish, pipelined: batches of EVENTBUS_RELAY_BATCH_SIZE, each
  with its Nats-Msg-Id header, every PubAck awaited before the next batch;
- JetStream pull fetch and ack: batches of EVENTBUS_FETCH_BATCH_SIZE from a
  durable pull consumer, each message acked one by one.

Two combined limits follow, each a serial composition because one process does
both steps in turn for every event: relay = 1 / (1/claim_and_mark +
1/publish), consumer = 1 / (1/fetch_and_ack + 1/inbox_commit).

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/raw_limits.py --events 20000
"""

import argparse
import asyncio
import dataclasses
import os
import sys
import time
import uuid

import benchlib

STREAM_MODULE = "benchraw"
# Rows per transaction for the bulk outbox insert, as bus_throughput fills its outbox.
BULK_CHUNK = 1000
# Seconds the fetch-and-ack measurement may take before the script gives up.
FETCH_TIMEOUT_SECONDS = 600

OUTBOX_DDL = """
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL UNIQUE,
    event_type varchar(200) NOT NULL,
    subject varchar(255) NOT NULL,
    aggregate_type varchar(100) NOT NULL,
    aggregate_id varchar(100) NOT NULL,
    aggregate_version bigint NOT NULL,
    tenant_id varchar(100) NOT NULL,
    correlation_id uuid NOT NULL,
    body text NOT NULL,
    state varchar(16) NOT NULL,
    created_at timestamptz NOT NULL,
    published_at timestamptz NULL,
    publish_attempts integer NOT NULL,
    last_error text NOT NULL,
    next_attempt_at timestamptz NULL
);
CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';
CREATE INDEX outbox_published ON outbox (published_at);
CREATE TABLE inbox (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL,
    consumer varchar(100) NOT NULL,
    event_type varchar(200) NOT NULL,
    aggregate_type varchar(100) NOT NULL,
    aggregate_id varchar(100) NOT NULL,
    aggregate_version bigint NOT NULL,
    tenant_id varchar(100) NOT NULL,
    processed_at timestamptz NOT NULL,
    CONSTRAINT inbox_once UNIQUE (event_id, consumer)
);
"""

INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, event_type, subject, aggregate_type, aggregate_id, aggregate_version, "
    "tenant_id, correlation_id, body, state, created_at, publish_attempts, last_error) "
    "VALUES (%s, 'bench.value.set', %s, 'bench', %s, 1, 'bench', %s, %s, 'pending', now(), 0, '')"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="Events per measurement (default: 20000).")
    parser.add_argument(
        "--body-bytes", type=int, default=700,
        help="Size of each event body in bytes; use the platform's typical envelope size (default: 700).",
    )
    parser.add_argument(
        "--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="JetStream server to use (default: $NATS_URL).",
    )
    benchlib.add_json_argument(parser)
    options = parser.parse_args()
    if options.events < 1 or options.body_bytes < 50:
        parser.error(f"--events {options.events} must be at least 1 and --body-bytes {options.body_bytes} at least 50")
    server_url = benchlib.server_url_or_exit(parser)
    benchlib.sigterm_as_exit()

    config = platform_bus_config(server_url, options.nats_url)
    events = make_events(options.events, options.body_bytes)
    figures: dict = {"events": options.events, "body_bytes": options.body_bytes,
                     "relay_batch_size": config["relay_batch_size"], "fetch_batch_size": config["fetch_batch_size"]}

    with benchlib.ThrowawayDatabase(server_url, "raw") as database:
        import psycopg

        with psycopg.connect(benchlib.libpq_url(database.url), autocommit=True) as connection:
            connection.execute(OUTBOX_DDL)
            figures["outbox_insert_per_transaction"] = options.events / outbox_insert_each(connection, events)
            connection.execute("TRUNCATE outbox")
            figures["outbox_insert_bulk"] = options.events / outbox_insert_bulk(connection, events)
            figures["claim_and_mark"] = options.events / claim_and_mark(connection, config["relay_batch_size"])
            figures["inbox_insert_commit"] = options.events / inbox_insert_each(connection, events)

    publish_seconds, fetch_seconds = asyncio.run(jetstream_limits(options.nats_url, events, config))
    figures["jetstream_publish_pipelined"] = options.events / publish_seconds
    figures["jetstream_fetch_ack"] = options.events / fetch_seconds
    figures["relay_limit"] = serial(figures["claim_and_mark"], figures["jetstream_publish_pipelined"])
    figures["consumer_limit"] = serial(figures["jetstream_fetch_ack"], figures["inbox_insert_commit"])

    table = benchlib.Table(
        f"Raw limits: bare psycopg and nats-py, {options.events} events of {options.body_bytes} bytes",
        ["operation", "events/s"],
    )
    table.add("outbox insert, one transaction per event", figures["outbox_insert_per_transaction"])
    table.add(f"outbox insert, {BULK_CHUNK} rows per transaction", figures["outbox_insert_bulk"])
    table.add(f"relay claim ({config['relay_batch_size']}) and mark published", figures["claim_and_mark"])
    table.add("inbox insert and commit, one per message", figures["inbox_insert_commit"])
    table.add(f"JetStream publish, pipelined by {config['relay_batch_size']}", figures["jetstream_publish_pipelined"])
    table.add(f"JetStream pull fetch ({config['fetch_batch_size']}) and ack", figures["jetstream_fetch_ack"])
    table.add("relay limit = 1/(1/claim+mark + 1/publish)", figures["relay_limit"])
    table.add("consumer limit = 1/(1/fetch+ack + 1/inbox commit)", figures["consumer_limit"])
    benchlib.write_result(options.json, [table], figures)
    return 0


def serial(*rates: float) -> float:
    return 1 / sum(1 / rate for rate in rates)


def platform_bus_config(server_url: str, nats_url: str) -> dict:
    """Read the platform's stream, consumer and batch settings through its own code."""
    sys.path.insert(0, str(benchlib.ROOT))
    os.environ.setdefault("DATABASE_URL", server_url)
    os.environ["EVENT_BUS"] = "nats"
    os.environ["NATS_URL"] = nats_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "billing.settings"
    import django

    django.setup()
    from eventbus.backends.nats import consumer_config, stream_config
    from eventbus.conf import bus_settings
    from eventbus.registry import all_modules

    settings = bus_settings()
    stream = dataclasses.replace(stream_config(STREAM_MODULE, settings), subjects=[f"{STREAM_MODULE}.events.>"])
    # Any consuming module's durable serves as the template; only the names and filter differ.
    consuming = next(module for module in all_modules() if module.handlers.producers())
    template = consumer_config(consuming, consuming.handlers.producers()[0], settings)
    consumer = dataclasses.replace(
        template, name="bench-raw", durable_name="bench-raw", filter_subjects=[f"{STREAM_MODULE}.events.>"],
    )
    return {"stream": stream, "consumer": consumer, "relay_batch_size": settings.relay_batch_size,
            "fetch_batch_size": settings.fetch_batch_size}


def make_events(count: int, body_bytes: int) -> list[tuple[uuid.UUID, str, str, bytes]]:
    """Return (event_id, subject, aggregate_id, body) tuples; each body is ``body_bytes`` long."""
    events = []
    for index in range(count):
        event_id = uuid.uuid4()
        prefix = f'{{"event_id":"{event_id}","payload":{{"value":"'
        body = (prefix + "x" * (body_bytes - len(prefix) - 3) + '"}}').encode()
        events.append((event_id, f"{STREAM_MODULE}.events.bench.value.set", f"agg-{index % 1000}", body))
    return events


def outbox_insert_each(connection, events) -> float:
    started = time.perf_counter()
    for event_id, subject, aggregate_id, body in events:
        with connection.transaction():
            connection.execute(INSERT_OUTBOX, (event_id, subject, aggregate_id, uuid.uuid4(), body.decode()))
    return time.perf_counter() - started


def outbox_insert_bulk(connection, events) -> float:
    """Insert BULK_CHUNK rows per transaction with one multi-row INSERT, as Django's bulk_create does."""
    prefix, _, row = INSERT_OUTBOX.partition("VALUES ")
    started = time.perf_counter()
    for start in range(0, len(events), BULK_CHUNK):
        chunk = events[start:start + BULK_CHUNK]
        parameters = []
        for event_id, subject, aggregate_id, body in chunk:
            parameters += [event_id, subject, aggregate_id, uuid.uuid4(), body.decode()]
        with connection.transaction():
            connection.execute(prefix + "VALUES " + ", ".join([row] * len(chunk)), parameters)
    return time.perf_counter() - started


def claim_and_mark(connection, batch_size: int) -> float:
    started = time.perf_counter()
    while True:
        rows = connection.execute(
            "SELECT id, event_id, subject, body, aggregate_type, aggregate_id, publish_attempts, "
            "next_attempt_at, tenant_id, correlation_id FROM outbox WHERE state = 'pending' "
            "ORDER BY id LIMIT %s",
            (batch_size,),
        ).fetchall()
        if not rows:
            break
        with connection.transaction():
            connection.execute(
                "UPDATE outbox SET state = 'published', published_at = now(), "
                "publish_attempts = publish_attempts + 1, last_error = '', next_attempt_at = NULL "
                "WHERE id = ANY(%s)",
                ([row[0] for row in rows],),
            )
    return time.perf_counter() - started


def inbox_insert_each(connection, events) -> float:
    started = time.perf_counter()
    for event_id, _subject, aggregate_id, _body in events:
        with connection.transaction():
            connection.execute(
                "INSERT INTO inbox (event_id, consumer, event_type, aggregate_type, aggregate_id, "
                "aggregate_version, tenant_id, processed_at) "
                "VALUES (%s, 'bench', 'bench.value.set', 'bench', %s, 1, 'bench', now())",
                (event_id, aggregate_id),
            )
    return time.perf_counter() - started


async def jetstream_limits(url: str, events, config: dict) -> tuple[float, float]:
    import nats
    import nats.errors
    import nats.js.errors

    client = await nats.connect(url, name="bench-raw-limits")
    js = client.jetstream(timeout=10)
    stream = config["stream"]
    try:
        try:
            await js.delete_stream(stream.name)
        except nats.js.errors.NotFoundError:
            pass
        await js.add_stream(stream)
        await js.add_consumer(stream.name, config["consumer"])

        batch_size = config["relay_batch_size"]
        started = time.perf_counter()
        for start in range(0, len(events), batch_size):
            futures = [
                await js.publish_async(subject, body, wait_stall=10.0, headers={"Nats-Msg-Id": str(event_id)})
                for event_id, subject, _aggregate, body in events[start:start + batch_size]
            ]
            await asyncio.gather(*futures)
        publish_seconds = time.perf_counter() - started

        subscription = await js.pull_subscribe_bind(durable="bench-raw", stream=stream.name)
        received = 0
        started = time.perf_counter()
        deadline = time.monotonic() + FETCH_TIMEOUT_SECONDS
        while received < len(events):
            if time.monotonic() > deadline:
                raise SystemExit(f"fetched {received} of {len(events)} messages within {FETCH_TIMEOUT_SECONDS} s")
            try:
                messages = await subscription.fetch(config["fetch_batch_size"], timeout=2.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for message in messages:
                await message.ack()
            received += len(messages)
        fetch_seconds = time.perf_counter() - started
        await subscription.unsubscribe()
        await js.delete_stream(stream.name)
    finally:
        await client.close()
    return publish_seconds, fetch_seconds


if __name__ == "__main__":
    sys.exit(main())
